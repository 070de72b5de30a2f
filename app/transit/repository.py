"""Reading the loaded feeds: a feed's active timetable, and stops near a point or in a box.

A version is read in one snapshot (``REPEATABLE READ``, read only): the active version and all
of its rows come from the same moment, so a load switching versions meanwhile
(`app/transit/loader.py`) is seen entirely or not at all. The stop searches are one statement
each, over the active versions of the enabled feeds, with the geography index
(``ix_transit_stops_geog``) for the radius.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.platform.errors import InvalidInput
from app.transit.timetable import (
    AgencyRow,
    CalendarDateRow,
    CalendarRow,
    FootpathRow,
    FrequencyRow,
    RouteRow,
    StopRow,
    StopTimeRow,
    Timetable,
    TimetableRows,
    TripRow,
    build_timetable,
)

__all__ = [
    "MAX_STOPS",
    "MAX_STOPS_RADIUS_M",
    "STOP_KINDS",
    "NearbyStop",
    "VersionRows",
    "active_timetable",
    "active_versions",
    "read_version_rows",
    "stops_near",
    "stops_within",
]

MAX_STOPS = 500
MAX_STOPS_RADIUS_M = 20_000.0
# The stops a rider boards at (location_type 0: a stop or a platform) and stations (1); the
# entrances, nodes and boarding areas are parts of a station, not places to search for.
STOP_KINDS = (0, 1)


@dataclass(frozen=True, slots=True)
class NearbyStop:
    feed: str
    stop: StopRow
    distance_m: float | None  # None for a box search

    @property
    def id(self) -> str:
        """Scoped by the feed, like provider ids: ``SLUG:stop_id``."""
        return f"{self.feed}:{self.stop.stop_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionRows(TimetableRows):
    version: int  # the version's id


async def active_versions(session: AsyncSession) -> dict[str, int]:
    """Every enabled feed's active version id (feeds not loaded yet are left out): the cheap
    check of whether the timetables held in memory are still current."""
    rows = await session.execute(
        text(
            "SELECT slug, active_version FROM transit_feeds "
            "WHERE enabled AND active_version IS NOT NULL"
        )
    )
    return {slug: int(version) for slug, version in rows}


async def _snapshot(session: AsyncSession) -> asyncpg.Connection:
    conn = await session.connection(
        execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    )
    # The snapshot is taken by the first statement, through SQLAlchemy so it opens the
    # transaction with the isolation level above.
    await conn.execute(text("SELECT 1"))
    raw = await conn.get_raw_connection()
    pg: asyncpg.Connection = raw.driver_connection
    return pg


R = TypeVar("R")


async def _typed(pg: asyncpg.Connection, version: int, row: Callable[..., R], sql: str) -> list[R]:
    """One table of a version, each row as the typed row its columns are in order of."""
    return [row(*r) for r in await pg.fetch(sql, version)]


async def read_version_rows(session: AsyncSession, slug: str) -> VersionRows | None:
    """The active version's rows, typed, all from one snapshot (the session must not have
    run a statement yet). None when the feed has no active version."""
    pg = await _snapshot(session)
    v = await pg.fetchval("SELECT active_version FROM transit_feeds WHERE slug = $1", slug)
    if v is None:
        return None
    return VersionRows(
        version=int(v),
        agencies=await _typed(
            pg,
            v,
            AgencyRow,
            "SELECT agency_id, name, timezone FROM transit_agencies WHERE version_id = $1 "
            "ORDER BY agency_id",
        ),
        stops=await _typed(
            pg,
            v,
            StopRow,
            "SELECT stop_id, name, lat, lon, location_type, parent_station, platform_code, code "
            "FROM transit_stops WHERE version_id = $1 ORDER BY stop_id",
        ),
        routes=await _typed(
            pg,
            v,
            RouteRow,
            "SELECT route_id, agency_id, short_name, long_name, route_type, color, text_color "
            "FROM transit_routes WHERE version_id = $1 ORDER BY route_id",
        ),
        trips=await _typed(
            pg,
            v,
            TripRow,
            "SELECT trip_id, route_id, service_id, headsign, direction_id, short_name "
            "FROM transit_trips WHERE version_id = $1 ORDER BY trip_id",
        ),
        stop_times=await _typed(
            pg,
            v,
            StopTimeRow,
            "SELECT trip_id, stop_sequence, stop_id, arrival, departure, headsign, pickup_type, "
            "drop_off_type FROM transit_stop_times WHERE version_id = $1",
        ),
        calendars=[
            CalendarRow(r[0], tuple(r[1]), r[2], r[3])
            for r in await pg.fetch(
                "SELECT service_id, weekdays, start_date, end_date FROM transit_calendars "
                "WHERE version_id = $1 ORDER BY service_id",
                v,
            )
        ],
        calendar_dates=await _typed(
            pg,
            v,
            CalendarDateRow,
            "SELECT service_id, date, added FROM transit_calendar_dates WHERE version_id = $1 "
            "ORDER BY service_id, date",
        ),
        frequencies=await _typed(
            pg,
            v,
            FrequencyRow,
            "SELECT trip_id, start_time, end_time, headway_seconds, exact_times "
            "FROM transit_frequencies WHERE version_id = $1 ORDER BY trip_id, start_time",
        ),
        footpaths=await _typed(
            pg,
            v,
            FootpathRow,
            "SELECT from_stop_id, to_stop_id, seconds FROM transit_footpaths WHERE version_id = $1",
        ),
    )


async def active_timetable(
    sessions: async_sessionmaker[AsyncSession], slug: str
) -> Timetable | None:
    """The feed's active version as a `Timetable` (its version: the version id), or None when
    it has none. Built from one snapshot in a short session of its own."""
    async with sessions() as session:
        rows = await read_version_rows(session, slug)
    if rows is None:
        return None
    # CPU work of a fraction of a second for a city, seconds for a country: off the event
    # loop (the GIL still shares the core, but the loop keeps answering between slices).
    return await asyncio.to_thread(build_timetable, rows, feed=slug, version=str(rows.version))


def _check_point(lat: float, lon: float) -> None:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput("lat must be within -90..90 and lon within -180..180")


def _check_first(first: int) -> None:
    if not 1 <= first <= MAX_STOPS:
        raise InvalidInput(f"first must be 1..{MAX_STOPS}")


_STOP_COLUMNS = (
    "f.slug, s.stop_id, s.name, s.lat, s.lon, s.location_type, s.parent_station, "
    "s.platform_code, s.code"
)


def _nearby(row: Sequence[Any], distance: float | None) -> NearbyStop:
    r = tuple(row)
    return NearbyStop(r[0], StopRow(*r[1:9]), distance)


async def stops_near(
    session: AsyncSession, lat: float, lon: float, radius_m: float, first: int
) -> list[NearbyStop]:
    """The stops and stations of every enabled feed's active version within ``radius_m`` of
    the point, nearest first (geodesic metres, as PostGIS geography measures)."""
    _check_point(lat, lon)
    _check_first(first)
    if not 0 < radius_m <= MAX_STOPS_RADIUS_M:
        raise InvalidInput(f"radius must be more than 0 and at most {MAX_STOPS_RADIUS_M:g} m")
    result = await session.execute(
        text(
            f"SELECT {_STOP_COLUMNS}, ST_Distance(s.geom::geography, p.g) AS d "
            "FROM transit_feeds f JOIN transit_stops s ON s.version_id = f.active_version, "
            "(SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography AS g) p "
            "WHERE f.enabled AND s.location_type = ANY(:kinds) "
            "AND ST_DWithin(s.geom::geography, p.g, :r) "
            "ORDER BY d, f.slug, s.stop_id LIMIT :first"
        ),
        {"lat": lat, "lon": lon, "r": radius_m, "first": first, "kinds": list(STOP_KINDS)},
    )
    return [_nearby(row[:9], float(row[9])) for row in result]


async def stops_within(
    session: AsyncSession,
    bbox: tuple[float, float, float, float],
    first: int,
) -> list[NearbyStop]:
    """The stops and stations in the box ``(min_lon, min_lat, max_lon, max_lat)``, by feed and
    stop id (a stable order for a map)."""
    min_lon, min_lat, max_lon, max_lat = bbox
    _check_point(min_lat, min_lon)
    _check_point(max_lat, max_lon)
    _check_first(first)
    if min_lon > max_lon or min_lat > max_lat:
        raise InvalidInput("the box's minimum must not exceed its maximum")
    result = await session.execute(
        text(
            f"SELECT {_STOP_COLUMNS} "
            "FROM transit_feeds f JOIN transit_stops s ON s.version_id = f.active_version "
            "WHERE f.enabled AND s.location_type = ANY(:kinds) "
            "AND s.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326) "
            "ORDER BY f.slug, s.stop_id LIMIT :first"
        ),
        {
            "x0": min_lon,
            "y0": min_lat,
            "x1": max_lon,
            "y1": max_lat,
            "first": first,
            "kinds": list(STOP_KINDS),
        },
    )
    return [_nearby(row, None) for row in result]
