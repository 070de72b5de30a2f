"""Loading a GTFS feed into PostGIS as a new immutable version, then switching to it.

The order (docs/transit.md, "Loading a feed"):

1. The source is read: a path, or an http(s) URL fetched through the guarded outbound client
   (app/platform/outbound.py) with a size limit and a deadline.
2. Its sha256 equal to the active version's: nothing to do (said so in the result).
3. The zip is parsed and validated off the event loop (`app/transit/gtfs.py`); a fatal
   finding stops here and is recorded as the feed's ``last_error``.
4. One transaction: the feed's row locked (one load of a feed at a time), a version row, every
   table written with binary ``COPY`` (stops through one ``unnest`` insert, which builds their
   points), the footpaths (stops within the radius by PostGIS ``ST_DWithin`` on geography, plus
   ``transfers.txt``, by the reader's rule), ``transit_feeds.active_version`` switched and the
   older versions deleted (their rows cascade). Readers read a version in one snapshot
   (`app/transit/repository.py`), so they see the old version or the new one, whole.
5. A failure anywhere rolls all of 4 back: the previous version stays active, and the error is
   recorded as ``last_error`` in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
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
from app.transit.gtfs import GtfsFeed, GtfsFinding, footpath_rows, read_gtfs

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
        # Parsing is CPU work of a second or more for a large feed: off the event loop.
        gtfs = await asyncio.to_thread(read_gtfs, data)
        if gtfs.sha256 == active_sha and not force:
            say("unchanged: the source is the active version")
            return LoadResult(slug, gtfs.sha256, active_id, unchanged=True)
        if gtfs.fatal:
            fatal = [f for f in gtfs.findings if f.severity == "fatal"]
            raise FeedLoadFailed(
                "the feed cannot be loaded: " + "; ".join(f.message for f in fatal),
                list(gtfs.findings),
            )
        say(
            f"parsed: {len(gtfs.stops):,} stops, {len(gtfs.trips):,} trips, "
            f"{len(gtfs.stop_times):,} stop times"
        )
        async with transaction(sessions) as session:
            result = await write_version(session, settings, slug, gtfs, progress=say)
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
    gtfs: GtfsFeed,
    *,
    progress: Progress | None = None,
) -> LoadResult:
    """Steps 4 of the module's docstring, in the caller's transaction (it commits)."""
    say = progress or (lambda _message: None)
    pg = await _raw(session)
    locked = await pg.fetchrow(
        "SELECT f.slug, v.sha256, f.active_version FROM transit_feeds f "
        "LEFT JOIN transit_feed_versions v ON v.id = f.active_version "
        "WHERE f.slug = $1 FOR UPDATE OF f",
        slug,
    )
    if locked is None:
        raise UnknownTransitFeed(f"unknown transit feed {slug!r}")
    findings_json = orjson.dumps([f.as_json() for f in gtfs.findings]).decode()
    counts = gtfs.counts()
    version: int = await pg.fetchval(
        "INSERT INTO transit_feed_versions (feed, sha256, feed_version, counts, findings) "
        "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) RETURNING id",
        slug,
        gtfs.sha256,
        gtfs.feed_version,
        orjson.dumps(counts).decode(),
        findings_json,
    )
    v = version
    await pg.copy_records_to_table(
        "transit_agencies",
        records=[(v, a.agency_id, a.name, a.timezone) for a in gtfs.agencies],
        columns=["version_id", "agency_id", "name", "timezone"],
    )
    stops = gtfs.stops
    # One statement: the points are built from the coordinates (COPY cannot call a function).
    await pg.execute(
        "INSERT INTO transit_stops (version_id, stop_id, name, lat, lon, geom, location_type, "
        "parent_station, platform_code, code) "
        "SELECT $1, s.stop_id, s.name, s.lat, s.lon, "
        "ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326), s.location_type, s.parent_station, "
        "s.platform_code, s.code "
        "FROM unnest($2::text[], $3::text[], $4::float8[], $5::float8[], $6::int2[], "
        "$7::text[], $8::text[], $9::text[]) "
        "AS s(stop_id, name, lat, lon, location_type, parent_station, platform_code, code)",
        v,
        [s.stop_id for s in stops],
        [s.name for s in stops],
        [s.lat for s in stops],
        [s.lon for s in stops],
        [s.location_type for s in stops],
        [s.parent_station for s in stops],
        [s.platform_code for s in stops],
        [s.code for s in stops],
    )
    await pg.copy_records_to_table(
        "transit_routes",
        records=[
            (
                v,
                r.route_id,
                r.agency_id,
                r.short_name,
                r.long_name,
                r.route_type,
                r.color,
                r.text_color,
            )
            for r in gtfs.routes
        ],
        columns=[
            "version_id",
            "route_id",
            "agency_id",
            "short_name",
            "long_name",
            "route_type",
            "color",
            "text_color",
        ],
    )
    await pg.copy_records_to_table(
        "transit_trips",
        records=[
            (v, t.trip_id, t.route_id, t.service_id, t.headsign, t.direction_id, t.short_name)
            for t in gtfs.trips
        ],
        columns=[
            "version_id",
            "trip_id",
            "route_id",
            "service_id",
            "headsign",
            "direction_id",
            "short_name",
        ],
    )
    say(f"copying {len(gtfs.stop_times):,} stop times")
    await pg.copy_records_to_table(
        "transit_stop_times",
        records=[
            (
                v,
                s.trip_id,
                s.stop_sequence,
                s.stop_id,
                s.arrival,
                s.departure,
                s.headsign,
                s.pickup_type,
                s.drop_off_type,
            )
            for s in gtfs.stop_times
        ],
        columns=list(STOP_TIME_COLUMNS),
    )
    await pg.copy_records_to_table(
        "transit_calendars",
        records=[
            (v, c.service_id, list(c.weekdays), c.start_date, c.end_date) for c in gtfs.calendars
        ],
        columns=["version_id", "service_id", "weekdays", "start_date", "end_date"],
    )
    await pg.copy_records_to_table(
        "transit_calendar_dates",
        records=[(v, d.service_id, d.date, d.added) for d in gtfs.calendar_dates],
        columns=["version_id", "service_id", "date", "added"],
    )
    await pg.copy_records_to_table(
        "transit_frequencies",
        records=[
            (v, f.trip_id, f.start_time, f.end_time, f.headway_seconds, f.exact_times)
            for f in gtfs.frequencies
        ],
        columns=[
            "version_id",
            "trip_id",
            "start_time",
            "end_time",
            "headway_seconds",
            "exact_times",
        ],
    )
    # The planner's statistics predate this version's stops: without fresh ones it joins them
    # by scanning (0.3 s for Cairns' 416 stops instead of 10 ms through the geography index).
    await pg.execute("ANALYZE transit_stops")
    say("footpaths between nearby stops")
    footpaths = await _footpaths(pg, v, gtfs, settings)
    await pg.copy_records_to_table(
        "transit_footpaths",
        records=[(v, f.from_stop_id, f.to_stop_id, f.seconds) for f in footpaths],
        columns=["version_id", "from_stop_id", "to_stop_id", "seconds"],
    )
    say("switching to the new version")
    await pg.execute(
        "UPDATE transit_feeds SET active_version = $2, timezone = $3, last_loaded_at = now(), "
        "last_error = NULL, updated_at = now() WHERE slug = $1",
        slug,
        v,
        gtfs.timezone,
    )
    # A reader already inside a snapshot of the old version keeps reading it until its
    # transaction ends.
    await delete_versions(pg, slug, keep=v)
    return LoadResult(
        slug,
        gtfs.sha256,
        v,
        unchanged=False,
        counts=counts,
        footpaths=len(footpaths),
        findings=list(gtfs.findings),
    )


async def delete_versions(pg: asyncpg.Connection, slug: str, *, keep: int | None) -> None:
    """Delete the feed's versions but ``keep``: their stop times first (they have no foreign
    key, migration 0016 says why), the other tables' rows by ``ON DELETE CASCADE``."""
    await pg.execute(
        "DELETE FROM transit_stop_times WHERE version_id IN (SELECT id FROM "
        "transit_feed_versions WHERE feed = $1 AND id IS DISTINCT FROM $2)",
        slug,
        keep,
    )
    await pg.execute(
        "DELETE FROM transit_feed_versions WHERE feed = $1 AND id IS DISTINCT FROM $2", slug, keep
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
    pg: asyncpg.Connection, version: int, gtfs: GtfsFeed, settings: Settings
) -> list[Any]:
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
        gtfs.transfers,
        gtfs.stops,
        settings.walking_speed_kmh,
    )
