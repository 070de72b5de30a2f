"""PostGIS SQL for search. Clauses are composed one at a time; every value is bound."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PricingPlan, Provider, VehicleType
from app.search.schemas import (
    Extent,
    PagePosition,
    ProviderStats,
    ProviderSummary,
    RankedArea,
    StationFilter,
    StationRow,
    VehicleHit,
    ZoneRow,
)
from app.vehicle import (
    SELECT_COLUMNS,
    WIDTH,
    VehicleDoc,
    VehicleFilter,
    decoded_record_from_row,
    record_from_row,
)
from app.vehicle_index import SPHERE_MARGIN
from geo.areas import BBox, Near
from geo.distance import ranking_meters

_POINT = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
# Its parameters are named as a BBox's fields: the box's asdict() binds them.
_ENVELOPE = "ST_MakeEnvelope(:min_lon, :min_lat, :max_lon, :max_lat, 4326)"


class _Where:
    """Accumulates WHERE clauses and their bound parameters."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: dict[str, Any] = {}

    def add(self, clause: str, **params: Any) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"


def _area(
    where: _Where, alias: str, near: Near | None, bbox: BBox | None, *, shapes: bool = False
) -> str:
    """Adds the area clause; returns the distance expression: geodesic metres from the
    `near` point or the box's centre, rounded to the millimetre as vehicle search does
    (geo.distance.ranking_meters), so that "ties by id" means the same everywhere.
    ``shapes``: the rows are areas (zones), inside the box when they intersect it, and their
    distance is to their nearest point; points are inside when their box overlap says so."""
    if near is not None:
        where.add(
            f"ST_DWithin({alias}.geom::geography, {_POINT}::geography, :radius)",
            lat=near.lat,
            lon=near.lon,
            radius=near.radius_meters,
        )
    else:
        assert bbox is not None
        lat, lon = bbox.centre
        test = (
            f"ST_Intersects({alias}.geom, {_ENVELOPE})"
            if shapes
            else f"{alias}.geom && {_ENVELOPE}"
        )
        where.add(test, **asdict(bbox), lat=lat, lon=lon)
    return f"round(ST_Distance({alias}.geom::geography, {_POINT}::geography) * 1000) / 1000"


# Providers with fresh data, as an array computed once per statement (an InitPlan) and checked
# on each vehicle as the KNN index scan reads it. Not a condition on the joined providers row:
# with that, the planner expects one provider to pass, hash-joins, and reads and sorts every
# vehicle in the radius instead of stopping after the nearest (5x slower at 1M vehicles,
# measured by the Redis-down benchmark).
_FRESH_PROVIDERS = (
    "v.provider_id = ANY(ARRAY(SELECT id FROM providers WHERE enabled "
    "AND last_success_at >= now() - make_interval(secs => {seconds})))"
)
# The same for the enabled providers alone, when stale ones are not hidden. Either array is the
# whole provider condition of the vehicle search: no join with providers, which cost a sixth of
# the fallback's query time (the nested loop probed providers for every candidate; measured
# with prepared statements over the bench fleet, docs/performance.md).
_ENABLED_PROVIDERS = "v.provider_id = ANY(ARRAY(SELECT id FROM providers WHERE enabled))"


def provider_condition(flt: VehicleFilter, bind: Callable[[Any], str]) -> str:
    """The providers whose vehicles ``v`` a read may show: enabled ones, with fresh data when
    the filter asks (the search service sets ``fresh_within_seconds``). Vector tiles use it too."""
    if flt.fresh_within_seconds is not None:
        return _FRESH_PROVIDERS.format(seconds=bind(flt.fresh_within_seconds))
    return _ENABLED_PROVIDERS


_POINT_PARAM = "ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography"
# Candidates nearest-first by PostGIS's geography KNN (<->, spherical distance), inside the
# reach (the radius, or a circle holding the whole box). Python then computes each candidate's
# distance with the same function the Redis path uses (geo.distance.ranking_meters) and sorts:
# the two stores give identical answers, so a page cursor from one is exact on the other. The
# spherical order is within 0.6% of the geodesic one; the margin rows and the completeness
# check below cover that.
_RANKED_SQL = """
SELECT {columns}, v.geom::geography <-> {point} AS sphere_m
FROM vehicles v
WHERE ST_DWithin(v.geom::geography, {point}, $3) AND {where}
ORDER BY v.geom::geography <-> {point}
LIMIT $4
"""
# ST_DWithin measures on the spheroid, Python with its own formula: the SQL reach is a hair
# longer, and Python decides.
_REACH_SLACK_METERS = 0.01
_ID, _LAT, _LON = (VehicleDoc._fields.index(name) for name in ("id", "lat", "lon"))


async def search_vehicles(
    pool: asyncpg.Pool,
    *,
    area: RankedArea,
    flt: VehicleFilter,
    first: int,
    after: PagePosition | None = None,
) -> list[VehicleHit]:
    """The first ``first`` vehicles of the area after ``after``, in search order, from
    PostGIS: the fallback of the Redis path, and the path for reserved/disabled vehicles.
    One prepared statement per filter shape, on a plain asyncpg pool: no ORM session, no
    transaction around a single read, one round trip (more only when the candidates did not
    reach far enough)."""
    params: list[Any] = [area.lon, area.lat, area.reach_meters + _REACH_SLACK_METERS, 0]
    clauses: list[str] = []

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    box = area.box
    if box is not None:
        clauses.append(
            f"v.geom && ST_MakeEnvelope({bind(box.min_lon)}, {bind(box.min_lat)}, "
            f"{bind(box.max_lon)}, {bind(box.max_lat)}, 4326)"
        )
    if after is not None:
        # Keyset: nothing nearer than the last page's end, by a bound the spherical distance
        # cannot cross; Python compares exactly. (The KNN scan still passes those rows on its
        # way: a deep page costs what lies before it.)
        lower = after.distance_meters / SPHERE_MARGIN - _REACH_SLACK_METERS
        clauses.append(f"v.geom::geography <-> {_POINT_PARAM} >= {bind(lower)}")
    clauses.append(provider_condition(flt, bind))
    clauses += flt.sql_clauses(bind)
    sql = _RANKED_SQL.format(
        columns=SELECT_COLUMNS, point=_POINT_PARAM, where=" AND ".join(clauses)
    )
    lat, lon, reach = area.lat, area.lon, area.reach_meters
    last = (after.distance_meters, after.vehicle_id) if after is not None else None
    limit = first + max(8, first // 4)
    while True:
        params[3] = limit
        rows = await pool.fetch(sql, *params)
        # (distance, id, row): ids are unique, so sorting never compares rows.
        ranked: list[tuple[float, str, Any]] = []
        complete = len(rows) < limit  # everything within reach was read
        threshold: float | None = None  # once `first` are found: how far swaps could reach
        for row in rows:
            if threshold is not None and row[WIDTH] > threshold:
                # Rows come nearest first by sphere: no later one can sort before (or tie)
                # the `first` found, whatever its geodesic distance.
                complete = True
                break
            distance = ranking_meters(lat, lon, row[_LAT], row[_LON])
            # RankedArea.admits, inlined. The box is checked here too: `&&` compares float4
            # boxes, rounded outwards, and the Redis path checks the exact coordinates.
            if box is None:
                if distance > reach:
                    continue
            elif not box.contains(row[_LAT], row[_LON]):
                continue
            vehicle_id = row[_ID]
            if last is not None and (distance, vehicle_id) <= last:
                continue
            ranked.append((distance, vehicle_id, row))
            if threshold is None and len(ranked) >= first:
                # Strictly past the farthest found, and past the millimetre it rounds to.
                farthest = max(r[0] for r in ranked)
                threshold = (farthest + _REACH_SLACK_METERS) * SPHERE_MARGIN
        if complete:
            ranked.sort()
            return [
                VehicleHit(record_from_row(row), distance) for distance, _, row in ranked[:first]
            ]
        limit *= 4


async def vehicle_by_id(session: AsyncSession, vehicle_id: str) -> VehicleHit | None:
    rows = await session.execute(
        text(
            f"SELECT {SELECT_COLUMNS} FROM vehicles v "
            "JOIN providers p ON p.id = v.provider_id WHERE v.id = :id AND p.enabled"
        ),
        {"id": vehicle_id},
    )
    row = rows.first()
    return VehicleHit(decoded_record_from_row(row), None) if row is not None else None


_STATION_COLUMNS = """
    s.id, s.provider_id, s.name, s.short_name, ST_Y(s.geom) AS lat, ST_X(s.geom) AS lon,
    s.capacity, s.num_vehicles_available, s.num_docks_available, s.vehicle_types_available,
    s.is_renting, s.is_returning, s.is_installed, s.rental_uris, s.last_reported
"""


def _station(row: Any) -> StationRow:
    return StationRow(
        id=row.id,
        provider_id=row.provider_id,
        name=row.name,
        short_name=row.short_name,
        lat=row.lat,
        lon=row.lon,
        distance_meters=row.distance,
        capacity=row.capacity,
        num_vehicles_available=row.num_vehicles_available,
        num_docks_available=row.num_docks_available,
        vehicle_types_available=row.vehicle_types_available or [],
        is_renting=row.is_renting,
        is_returning=row.is_returning,
        is_installed=row.is_installed,
        rental_uris=row.rental_uris,
        last_reported=row.last_reported,
    )


async def search_stations(
    session: AsyncSession, *, near: Near | None, bbox: BBox | None, flt: StationFilter, first: int
) -> list[StationRow]:
    where = _Where()
    distance = _area(where, "s", near, bbox)
    where.add("p.enabled")
    if flt.hidden_providers:
        where.add("s.provider_id <> ALL(:hidden)", hidden=sorted(flt.hidden_providers))
    if flt.providers is not None:
        where.add("s.provider_id = ANY(:providers)", providers=sorted(flt.providers))
    if flt.min_vehicles_available is not None:
        where.add("s.num_vehicles_available >= :min_veh", min_veh=flt.min_vehicles_available)
    if flt.min_docks_available is not None:
        where.add("s.num_docks_available >= :min_docks", min_docks=flt.min_docks_available)
    rows = await session.execute(
        text(
            f"SELECT {_STATION_COLUMNS}, {distance} AS distance FROM stations s "
            f"JOIN providers p ON p.id = s.provider_id WHERE {where.sql()} "
            'ORDER BY distance, s.id COLLATE "C" LIMIT :first'
        ),
        {**where.params, "first": first},
    )
    return [_station(r) for r in rows]


async def stations_by_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, StationRow]:
    rows = await session.execute(
        text(
            f"SELECT {_STATION_COLUMNS}, NULL::float8 AS distance FROM stations s "
            "WHERE s.id = ANY(:ids)"
        ),
        {"ids": list(ids)},
    )
    return {r.id: _station(r) for r in rows}


_ZONE_COLUMNS = """
    z.id, z.provider_id, z.ordinal, z.name, ST_AsGeoJSON(z.geom) AS geojson, z.rules,
    z.starts_at, z.ends_at
"""


def _zone(row: Any) -> ZoneRow:
    return ZoneRow(
        id=row.id,
        provider_id=row.provider_id,
        ordinal=row.ordinal,
        name=row.name,
        geometry=orjson.loads(row.geojson),
        rules=row.rules,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        distance_meters=row.distance,
    )


async def search_zones(
    session: AsyncSession,
    *,
    near: Near | None,
    bbox: BBox | None,
    providers: frozenset[str] | None,
    hidden_providers: frozenset[str] = frozenset(),
    first: int,
) -> list[ZoneRow]:
    where = _Where()
    where.add("p.enabled")
    distance = "NULL::float8"
    order = "z.provider_id, z.ordinal"  # no area: each provider's zones in feed order
    if near is not None or bbox is not None:
        # To the zone's nearest point: 0 for every zone holding the point, then the id decides.
        distance = _area(where, "z", near, bbox, shapes=True)
        order = 'distance, z.id COLLATE "C"'
    if hidden_providers:
        where.add("z.provider_id <> ALL(:hidden)", hidden=sorted(hidden_providers))
    if providers is not None:
        where.add("z.provider_id = ANY(:providers)", providers=sorted(providers))
    rows = await session.execute(
        text(
            f"SELECT {_ZONE_COLUMNS}, {distance} AS distance FROM geofencing_zones z "
            f"JOIN providers p ON p.id = z.provider_id WHERE {where.sql()} "
            f"ORDER BY {order} LIMIT :first"
        ),
        {**where.params, "first": first},
    )
    return [_zone(r) for r in rows]


async def zones_covering(
    session: AsyncSession, *, provider_id: str, lat: float, lon: float
) -> list[ZoneRow]:
    rows = await session.execute(
        text(
            f"SELECT {_ZONE_COLUMNS}, NULL::float8 AS distance FROM geofencing_zones z "
            "WHERE z.provider_id = :provider "
            f"AND ST_Covers(z.geom, {_POINT}) ORDER BY z.ordinal"
        ),
        {"provider": provider_id, "lat": lat, "lon": lon},
    )
    return [_zone(r) for r in rows]


async def provider_records(
    session: AsyncSession, ids: Sequence[str] | None = None
) -> list[Provider]:
    query = select(Provider).order_by(Provider.id)
    if ids is not None:
        query = query.where(Provider.id.in_(list(ids)))
    return list(await session.scalars(query))


async def provider_stats(session: AsyncSession, ids: Sequence[str]) -> dict[str, ProviderStats]:
    """Counts, form factors and extent of the providers' current data: one query, all ids."""
    rows = await session.execute(
        text(
            """
            SELECT p.id,
                   (SELECT count(*) FROM vehicles v WHERE v.provider_id = p.id) AS vehicle_count,
                   (SELECT count(*) FROM stations s WHERE s.provider_id = p.id) AS station_count,
                   (SELECT array_agg(DISTINCT ff) FROM (
                        SELECT form_factor AS ff FROM vehicle_types t WHERE t.provider_id = p.id
                        UNION SELECT form_factor FROM vehicles v WHERE v.provider_id = p.id
                   ) f) AS form_factors,
                   e.extent
            FROM providers p
            LEFT JOIN LATERAL (
                SELECT ST_Extent(g) AS extent FROM (
                    SELECT geom AS g FROM vehicles v WHERE v.provider_id = p.id
                    UNION ALL SELECT geom FROM stations s WHERE s.provider_id = p.id
                ) pts
            ) e ON TRUE
            WHERE p.id = ANY(:ids)
            """
        ),
        {"ids": list(ids)},
    )
    out: dict[str, ProviderStats] = {}
    for r in rows:
        form_factors = [f for f in (r.form_factors or []) if f]
        if not form_factors and r.station_count:
            form_factors = ["bicycle"]  # GBFS: a system without vehicle_types is bicycles
        out[r.id] = ProviderStats(
            vehicle_count=r.vehicle_count,
            station_count=r.station_count,
            form_factors=sorted(form_factors),
            extent=_parse_box2d(r.extent) if r.extent is not None else None,
        )
    return out


async def provider_summaries(session: AsyncSession) -> list[ProviderSummary]:
    providers = await provider_records(session)
    stats = await provider_stats(session, [p.id for p in providers])
    return [ProviderSummary(p, stats[p.id]) for p in providers]


def _parse_box2d(box: str) -> Extent:
    # box2d arrives as text "BOX(minx miny,maxx maxy)"; parse rather than a second query.
    inner = box[box.index("(") + 1 : box.rindex(")")]
    lo, hi = inner.split(",")
    minx, miny = (float(x) for x in lo.split())
    maxx, maxy = (float(x) for x in hi.split())
    return Extent(min_lat=miny, min_lon=minx, max_lat=maxy, max_lon=maxx)


async def enabled_providers(session: AsyncSession) -> dict[str, datetime | None]:
    """Enabled providers and when each last synced successfully."""
    rows = await session.execute(text("SELECT id, last_success_at FROM providers WHERE enabled"))
    return {r.id: r.last_success_at for r in rows}


async def private_providers(session: AsyncSession) -> dict[str, uuid.UUID]:
    """Private fleets and the organisation each belongs to (issue 6), disabled ones included:
    to an outsider a disabled private fleet must be as unknown as an enabled one (listed by
    `providers`, accepted as a filter, it was not)."""
    rows = await session.execute(
        text("SELECT id, private_to FROM providers WHERE private_to IS NOT NULL")
    )
    return {r.id: r.private_to for r in rows}


async def known_provider_ids(session: AsyncSession) -> set[str]:
    rows = await session.execute(text("SELECT id FROM providers"))
    return {r.id for r in rows}


async def providers_by_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, Provider]:
    result = await session.scalars(select(Provider).where(Provider.id.in_(list(ids))))
    return {p.id: p for p in result}


async def vehicle_types_by_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, VehicleType]:
    result = await session.scalars(select(VehicleType).where(VehicleType.id.in_(list(ids))))
    return {t.id: t for t in result}


async def vehicle_types_of(
    session: AsyncSession, provider_id: str, form_factor: str | None = None
) -> list[VehicleType]:
    query = select(VehicleType).where(VehicleType.provider_id == provider_id)
    if form_factor is not None:
        query = query.where(VehicleType.form_factor == form_factor)
    return list(await session.scalars(query.order_by(VehicleType.id)))


async def pricing_plans_by_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, PricingPlan]:
    result = await session.scalars(select(PricingPlan).where(PricingPlan.id.in_(list(ids))))
    return {p.id: p for p in result}
