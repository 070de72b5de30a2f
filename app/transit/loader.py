"""Loading a GTFS feed into PostGIS as a new immutable version, then switching to it.

The order (docs/transit.md, "Loading a feed"):

1. The source is read: a path, or an http(s) URL fetched through the guarded outbound client
   (app/platform/outbound.py) with a size limit and a deadline.
2. Its sha256 equal to the active version's: nothing to do (said so in the result).
3. One transaction: the feed's row locked (one load of a feed at a time), a version row, the
   older versions deleted (their stop times explicitly, the other rows by cascade), and the
   zip read meanwhile, in a thread (`app/transit/gtfs.py`), which hands over what it has read
   as it goes, so PostgreSQL (another process) writes while Python parses: the head (every
   table but the stop times and frequencies) written in one statement of ``unnest`` inserts
   (which also builds the stops' points), the footpaths (stops within the radius by PostGIS
   ``ST_DWithin`` on geography, plus ``transfers.txt``, by the reader's rule), then one
   ``COPY`` of the stop times, fed block by block while the reader reads the next. Blocks
   copied ahead are only the reader's guess at the final rows (clean and in order so far): a
   later row that breaks a rule or is out of order undoes them (a savepoint) and the final
   rows are copied whole. A fatal finding stops the load (the transaction rolls back) and is
   recorded as the feed's ``last_error``. Then the trips left without two stop times deleted,
   the frequencies, the version's counts and findings, and
   ``transit_feeds.active_version`` switched. Readers read a version in one snapshot
   (`app/transit/repository.py`), so they see the old version or the new one, whole.
4. A failure anywhere rolls all of 3 back: the previous version stays active, and the error is
   recorded as ``last_error`` in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.platform import outbound
from app.platform.db import transaction
from app.platform.errors import DomainError, NotFound
from app.platform.settings import Settings
from app.transit.footpaths import footpath_rows
from app.transit.gtfs import read_gtfs
from app.transit.gtfs_feed import GtfsFinding, GtfsHead, StopTimeColumns
from app.transit.gtfs_zip import feed_sha256
from app.transit.timetable import FootpathRow

__all__ = [
    "FeedLoadFailed",
    "LoadResult",
    "Progress",
    "UnknownTransitFeed",
    "delete_versions",
    "fetch_source",
    "load_feed",
    "write_version",
]

Progress = Callable[[str], None]

_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_USER_AGENT = "mobility-transit/1 (GTFS loader)"


class FeedLoadFailed(DomainError):
    """The feed could not be loaded; the previous version (if any) stays active."""

    code = "TRANSIT_FEED_LOAD_FAILED"

    def __init__(self, message: str, findings: list[GtfsFinding] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


class UnknownTransitFeed(NotFound):
    code = "UNKNOWN_TRANSIT_FEED"


@dataclass(slots=True)
class LoadResult:
    feed: str
    sha256: str
    version_id: int | None  # the active version after the load
    unchanged: bool  # the source equals the active version: nothing was loaded
    counts: dict[str, int] = field(default_factory=dict)
    footpaths: int = 0
    findings: list[GtfsFinding] = field(default_factory=list)
    seconds: float = 0.0


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _policy(settings: Settings) -> outbound.DestinationPolicy:
    # Outside production a feed may be served from this machine (a test's or a developer's).
    if settings.environment == "production":
        return outbound.PUBLIC_ONLY
    return outbound.DestinationPolicy(also_allowed=_LOOPBACK)


async def fetch_source(
    source: str, settings: Settings, *, policy: outbound.DestinationPolicy | None = None
) -> Path | bytes:
    """A path as a Path (checked readable), a URL as its body, within the size limit and the
    deadline. Raises FeedLoadFailed with a message fit for staff (no internals)."""
    if not _is_url(source):
        path = Path(source)
        if not await asyncio.to_thread(path.is_file):
            raise FeedLoadFailed(f"no such file: {source}")
        return path
    limit = settings.transit_max_feed_bytes
    client = outbound.guarded_client(
        policy if policy is not None else _policy(settings),
        timeout=httpx.Timeout(settings.transit_download_timeout_seconds, connect=15.0),
        headers={"User-Agent": _USER_AGENT},
        # Feed URLs commonly redirect (to a CDN); each connection is still checked.
        follow_redirects=True,
    )
    try:
        async with (
            asyncio.timeout(settings.transit_download_timeout_seconds),
            client,
            client.stream("GET", source) as response,
        ):
            if response.status_code != 200:
                raise FeedLoadFailed(f"fetching the feed answered HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise FeedLoadFailed(f"the feed is larger than {limit} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > limit:
                    raise FeedLoadFailed(f"the feed is larger than {limit} bytes")
            return bytes(body)
    except TimeoutError:
        raise FeedLoadFailed(
            f"fetching the feed took longer than {settings.transit_download_timeout_seconds:g} s"
        ) from None
    except outbound.DestinationRefused:
        raise FeedLoadFailed("the feed's host is not allowed (it must be public)") from None
    except httpx.HTTPError as exc:
        raise FeedLoadFailed(f"fetching the feed failed ({exc.__class__.__name__})") from None


async def _active(session: AsyncSession, slug: str) -> tuple[int | None, str | None]:
    row = (
        await session.execute(
            text(
                "SELECT f.active_version, v.sha256 FROM transit_feeds f "
                "LEFT JOIN transit_feed_versions v ON v.id = f.active_version WHERE f.slug = :s"
            ),
            {"s": slug},
        )
    ).one_or_none()
    if row is None:
        raise UnknownTransitFeed(f"unknown transit feed {slug!r}")
    return row[0], row[1]


async def _record_error(
    sessions: async_sessionmaker[AsyncSession], slug: str, message: str
) -> None:
    async with transaction(sessions) as session:
        await session.execute(
            text("UPDATE transit_feeds SET last_error = :e, updated_at = now() WHERE slug = :s"),
            {"s": slug, "e": message[:2000]},
        )


async def load_feed(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    slug: str,
    *,
    source: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> LoadResult:
    """Load the feed ``slug`` from ``source`` (its stored source by default). Raises
    UnknownTransitFeed, or FeedLoadFailed after recording it as the feed's ``last_error``."""
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    async with sessions() as session:
        stored = await session.scalar(
            text("SELECT source FROM transit_feeds WHERE slug = :s"), {"s": slug}
        )
        if stored is None:
            raise UnknownTransitFeed(f"unknown transit feed {slug!r}")
        active_id, active_sha = await _active(session, slug)
    where = source or str(stored)
    try:
        say(f"reading {where}")
        data = await fetch_source(where, settings)
        sha256 = await asyncio.to_thread(feed_sha256, data)
        if sha256 == active_sha and not force:
            say("unchanged: the source is the active version")
            return LoadResult(slug, sha256, active_id, unchanged=True)
        async with transaction(sessions) as session:
            result = await write_version(session, settings, slug, data, sha256, progress=say)
    except FeedLoadFailed as exc:
        await _record_error(sessions, slug, exc.message)
        raise
    except UnknownTransitFeed:
        raise  # removed meanwhile: nothing to record on
    except Exception as exc:
        # The transaction rolled back: the previous version is still the active one.
        await _record_error(sessions, slug, f"loading failed: {exc.__class__.__name__}")
        raise FeedLoadFailed(
            f"loading the feed failed ({exc.__class__.__name__}); the previous version stays active"
        ) from exc
    result.seconds = time.perf_counter() - started
    return result


async def _raw(session: AsyncSession) -> asyncpg.Connection:
    conn = await session.connection()
    # SQLAlchemy opens the driver-level transaction lazily: open it now, so the COPYs below
    # run inside it (as providers/sync.py does).
    await conn.execute(text("SELECT 1"))
    raw = await conn.get_raw_connection()
    pg: asyncpg.Connection = raw.driver_connection
    return pg


async def write_version(
    session: AsyncSession,
    settings: Settings,
    slug: str,
    source: Path | bytes,
    sha256: str,
    *,
    progress: Progress | None = None,
) -> LoadResult:
    """Step 3 of the module's docstring, in the caller's transaction (it commits). A fatal
    finding raises FeedLoadFailed, and the caller's rollback undoes all of it."""
    say = progress or (lambda _message: None)
    pg = await _raw(session)
    locked = await pg.fetchrow(
        "SELECT f.slug FROM transit_feeds f WHERE f.slug = $1 FOR UPDATE OF f", slug
    )
    if locked is None:
        raise UnknownTransitFeed(f"unknown transit feed {slug!r}")
    # Its counts, findings and feed_version are set once the zip is read (the last step).
    v: int = await pg.fetchval(
        "INSERT INTO transit_feed_versions (feed, sha256) VALUES ($1, $2) RETURNING id",
        slug,
        sha256,
    )
    loop = asyncio.get_running_loop()
    # From the reader's thread: the head, then blocks of stop times as COPY text; None last.
    parts: asyncio.Queue[GtfsHead | tuple[int, bytes] | None] = asyncio.Queue()

    def heard(part: GtfsHead | StopTimeColumns) -> None:  # in the reader's thread
        told = part if isinstance(part, GtfsHead) else (len(part), _copy_text(v, part))
        loop.call_soon_threadsafe(parts.put_nowait, told)

    reading = asyncio.ensure_future(
        asyncio.to_thread(read_gtfs, source, sha256=sha256, listener=heard)
    )
    # After every part the reader told (those were queued first, from its thread).
    reading.add_done_callback(lambda _done: parts.put_nowait(None))
    head: GtfsHead | None = None
    footpaths: list[FootpathRow] = []
    streamed = 0

    async def stop_time_blocks() -> AsyncIterator[bytes]:
        nonlocal streamed
        while (part := await parts.get()) is not None:
            assert isinstance(part, tuple)  # the head came first
            streamed += part[0]
            yield part[1]

    try:
        # A reader inside a snapshot of the old version keeps reading it until its
        # transaction ends; the others see it go with the switch, at commit.
        await delete_versions(pg, slug, keep=v)
        first = await parts.get()
        if isinstance(first, GtfsHead):
            head = first
            say(f"writing {len(head.stops):,} stops, {len(head.trips):,} trips")
            footpaths = await _write_head(pg, v, head, settings)
            say("copying stop times")
            # Rows the reader hands over before it has read the whole file: undone if it
            # finds them not to be the final rows.
            await pg.execute("SAVEPOINT stop_times")
            await pg.copy_to_table(
                "transit_stop_times",
                source=stop_time_blocks(),
                columns=list(STOP_TIME_COLUMNS),
                format="text",
            )
        gtfs = await reading
    finally:
        if not reading.done():
            # Failed meanwhile: the reader stops by itself, soon; nothing is left running.
            await asyncio.wait([reading])
    if gtfs.fatal or head is None:
        fatal = [f for f in gtfs.findings if f.severity == "fatal"]
        raise FeedLoadFailed(
            "the feed cannot be loaded: " + "; ".join(f.message for f in fatal),
            list(gtfs.findings),
        )
    if not gtfs.stop_times_streamed:
        if streamed:
            await pg.execute("ROLLBACK TO SAVEPOINT stop_times")
        await _copy_stop_times(pg, v, gtfs.stop_time_columns)
    say(f"copied {len(gtfs.stop_time_columns):,} stop times")
    kept = {t.trip_id for t in gtfs.trips}
    dropped = [t.trip_id for t in head.trips if t.trip_id not in kept]
    if dropped:  # trips left with fewer than two usable stop times
        await pg.execute(
            "DELETE FROM transit_trips WHERE version_id = $1 AND trip_id = ANY($2::text[])",
            v,
            dropped,
        )
    await _copy(
        pg,
        "transit_frequencies",
        [
            (v, f.trip_id, f.start_time, f.end_time, f.headway_seconds, f.exact_times)
            for f in gtfs.frequencies
        ],
        ["version_id", "trip_id", "start_time", "end_time", "headway_seconds", "exact_times"],
    )
    counts = gtfs.counts()
    say("switching to the new version")
    await pg.execute(
        "UPDATE transit_feed_versions SET feed_version = $2, counts = $3::jsonb, "
        "findings = $4::jsonb WHERE id = $1",
        v,
        gtfs.feed_version,
        orjson.dumps(counts).decode(),
        orjson.dumps([f.as_json() for f in gtfs.findings]).decode(),
    )
    await pg.execute(
        "UPDATE transit_feeds SET active_version = $2, timezone = $3, last_loaded_at = now(), "
        "last_error = NULL, updated_at = now() WHERE slug = $1",
        slug,
        v,
        gtfs.timezone,
    )
    return LoadResult(
        slug,
        gtfs.sha256,
        v,
        unchanged=False,
        counts=counts,
        footpaths=len(footpaths),
        findings=list(gtfs.findings),
    )


def _copy_text(version: int, rows: StopTimeColumns) -> bytes:
    """Stop times as the text of ``COPY ... FROM STDIN`` (columns of STOP_TIME_COLUMNS): built
    column by column with C loops in the reader's thread, so the event loop only passes the
    bytes on (encoding tuples there, as binary COPY does, would hold the interpreter while the
    reader reads)."""
    texts: dict[int | str | None, str] = {None: r"\N"}
    numbers = {*rows.arrival, *rows.departure, *rows.pickup_type, *rows.drop_off_type}
    for value in numbers - texts.keys():
        texts[value] = str(value)
    for headsign in set(rows.headsign):
        if headsign is not None and headsign not in texts:
            texts[headsign] = _escaped(headsign)

    def as_text(values: list[Any]) -> Iterator[str]:
        return map(texts.__getitem__, values)

    lines = map(
        "\t".join,
        zip(
            itertools.repeat(str(version)),
            _escaped_all(rows.trip_id),
            map(str, rows.stop_sequence),
            _escaped_all(rows.stop_id),
            as_text(rows.arrival),
            as_text(rows.departure),
            as_text(rows.headsign),
            as_text(rows.pickup_type),
            as_text(rows.drop_off_type),
            strict=False,  # the version is repeated endlessly; the columns end the lines
        ),
    )
    return ("\n".join(lines) + "\n").encode()


# What COPY's text format escapes (a backslash first, so the others' are not doubled).
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _escaped(value: str) -> str:
    for plain, escaped in _COPY_ESCAPES:
        value = value.replace(plain, escaped)
    return value


def _escaped_all(values: list[str]) -> Iterable[str]:
    joined = "".join(values)
    if any(plain in joined for plain, _ in _COPY_ESCAPES):
        return map(_escaped, values)
    return values


async def _copy(
    pg: asyncpg.Connection, table: str, records: list[tuple[Any, ...]], columns: list[str]
) -> None:
    if records:  # nothing to copy: no round trips
        await pg.copy_records_to_table(table, records=records, columns=columns)


async def _copy_stop_times(pg: asyncpg.Connection, version: int, rows: StopTimeColumns) -> None:
    await pg.copy_records_to_table(
        "transit_stop_times", records=rows.records(version), columns=list(STOP_TIME_COLUMNS)
    )


# Every table of the head in one statement (one round trip: the reader's thread holds the
# interpreter most of the time, and each round trip waits for it); ``unnest`` of arrays, the
# stops' points built from their coordinates.
_HEAD_SQL = """
WITH agencies AS (
    INSERT INTO transit_agencies (version_id, agency_id, name, timezone)
    SELECT $1, a.* FROM unnest($2::text[], $3::text[], $4::text[]) AS a
), stops AS (
    INSERT INTO transit_stops (version_id, stop_id, name, lat, lon, geom, location_type,
        parent_station, platform_code, code)
    SELECT $1, s.stop_id, s.name, s.lat, s.lon, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326),
        s.location_type, s.parent_station, s.platform_code, s.code
    FROM unnest($5::text[], $6::text[], $7::float8[], $8::float8[], $9::int2[], $10::text[],
        $11::text[], $12::text[])
        AS s(stop_id, name, lat, lon, location_type, parent_station, platform_code, code)
), routes AS (
    INSERT INTO transit_routes (version_id, route_id, agency_id, short_name, long_name,
        route_type, color, text_color)
    SELECT $1, r.* FROM unnest($13::text[], $14::text[], $15::text[], $16::text[], $17::int4[],
        $18::text[], $19::text[]) AS r
), trips AS (
    INSERT INTO transit_trips (version_id, trip_id, route_id, service_id, headsign,
        direction_id, short_name)
    SELECT $1, t.* FROM unnest($20::text[], $21::text[], $22::text[], $23::text[], $24::int2[],
        $25::text[]) AS t
), calendars AS (
    INSERT INTO transit_calendars (version_id, service_id, weekdays, start_date, end_date)
    SELECT $1, c.service_id, ARRAY[c.mo, c.tu, c.we, c.th, c.fr, c.sa, c.su], c.start_date,
        c.end_date
    FROM unnest($26::text[], $27::bool[], $28::bool[], $29::bool[], $30::bool[], $31::bool[],
        $32::bool[], $33::bool[], $34::date[], $35::date[])
        AS c(service_id, mo, tu, we, th, fr, sa, su, start_date, end_date)
)
INSERT INTO transit_calendar_dates (version_id, service_id, date, added)
SELECT $1, d.* FROM unnest($36::text[], $37::date[], $38::bool[]) AS d
"""


async def _write_head(
    pg: asyncpg.Connection, v: int, head: GtfsHead, settings: Settings
) -> list[FootpathRow]:
    """Every table but the stop times and frequencies (all the trips: those the stop times
    leave without two usable stops are deleted after), and the footpaths, which it returns."""
    a, s, r, t, c, d = (
        head.agencies,
        head.stops,
        head.routes,
        head.trips,
        head.calendars,
        head.calendar_dates,
    )
    await pg.execute(
        _HEAD_SQL,
        v,
        [x.agency_id for x in a],
        [x.name for x in a],
        [x.timezone for x in a],
        [x.stop_id for x in s],
        [x.name for x in s],
        [x.lat for x in s],
        [x.lon for x in s],
        [x.location_type for x in s],
        [x.parent_station for x in s],
        [x.platform_code for x in s],
        [x.code for x in s],
        [x.route_id for x in r],
        [x.agency_id for x in r],
        [x.short_name for x in r],
        [x.long_name for x in r],
        [x.route_type for x in r],
        [x.color for x in r],
        [x.text_color for x in r],
        [x.trip_id for x in t],
        [x.route_id for x in t],
        [x.service_id for x in t],
        [x.headsign for x in t],
        [x.direction_id for x in t],
        [x.short_name for x in t],
        [x.service_id for x in c],
        *([x.weekdays[day] for x in c] for day in range(7)),
        [x.start_date for x in c],
        [x.end_date for x in c],
        [x.service_id for x in d],
        [x.date for x in d],
        [x.added for x in d],
    )
    # The planner's statistics predate this version's stops: without fresh ones it joins them
    # by scanning (0.3 s for Cairns' 416 stops instead of 10 ms through the geography index).
    await pg.execute("ANALYZE transit_stops")
    footpaths = await _footpaths(pg, v, head, settings)
    if footpaths:
        await pg.execute(
            "INSERT INTO transit_footpaths (version_id, from_stop_id, to_stop_id, seconds) "
            "SELECT $1, f.* FROM unnest($2::text[], $3::text[], $4::int4[]) AS f",
            v,
            [f.from_stop_id for f in footpaths],
            [f.to_stop_id for f in footpaths],
            [f.seconds for f in footpaths],
        )
    return footpaths


async def delete_versions(pg: asyncpg.Connection, slug: str, *, keep: int | None) -> None:
    """Delete the feed's versions but ``keep``: their stop times (they have no foreign key,
    migration 0016 says why), then the versions, whose other tables' rows go by ``ON DELETE
    CASCADE``. One statement: one round trip."""
    await pg.execute(
        "WITH old AS (SELECT id FROM transit_feed_versions WHERE feed = $1 "
        "AND id IS DISTINCT FROM $2), "
        "times AS (DELETE FROM transit_stop_times WHERE version_id IN (SELECT id FROM old)) "
        "DELETE FROM transit_feed_versions WHERE id IN (SELECT id FROM old)",
        slug,
        keep,
    )


STOP_TIME_COLUMNS = (
    "version_id",
    "trip_id",
    "stop_sequence",
    "stop_id",
    "arrival",
    "departure",
    "headsign",
    "pickup_type",
    "drop_off_type",
)


async def _footpaths(
    pg: asyncpg.Connection, version: int, head: GtfsHead, settings: Settings
) -> list[FootpathRow]:
    """Stops of the version within the radius, measured by PostGIS on the spheroid (the
    geography index), then the reader's rule with ``transfers.txt``."""
    near = await pg.fetch(
        "SELECT a.stop_id, b.stop_id, ST_Distance(a.geom::geography, b.geom::geography) "
        "FROM transit_stops a JOIN transit_stops b "
        "ON b.version_id = a.version_id AND b.stop_id <> a.stop_id AND b.location_type = 0 "
        "AND ST_DWithin(a.geom::geography, b.geom::geography, $2) "
        "WHERE a.version_id = $1 AND a.location_type = 0",
        version,
        settings.transit_footpath_radius_m,
    )
    return footpath_rows(
        ((r[0], r[1], float(r[2])) for r in near),
        head.transfers,
        head.stops,
        settings.walking_speed_kmh,
    )
