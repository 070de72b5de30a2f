"""SQL for GBFS re-publishing: one query per published file, read from PostgreSQL.

Vehicles and stations can number in the hundreds of thousands for one provider, so PostgreSQL
renders each of their GBFS records as JSON text and the rows are read through a server-side
cursor in batches (:func:`stream_json_records`): no ORM objects and no per-record dicts are
built in Python. The small files (types, plans, regions, zones) come back as plain rows
(:func:`provider_rows`).

Published ids are the stored, provider-scoped ids (``<provider>:<external id>``). The one
column stored unscoped is ``stations.region_id``; it is scoped here, in the query.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

# GBFS 3.0 requires max_range_meters for every motorised type. A motorised type stored without
# it (the sync keeps it with a MISSING_MAX_RANGE warning) is left out, with its vehicles,
# rather than published with an invented range.
_PUBLISHABLE_TYPE = "(t.propulsion_type = 'human' OR t.max_range_meters IS NOT NULL)"
_RFC3339 = """'YYYY-MM-DD"T"HH24:MI:SS"Z"'"""
BATCH_ROWS = 5_000


def _timestamp(column: str) -> str:
    return f"to_char({column} AT TIME ZONE 'UTC', {_RFC3339})"


def _checked_uris(column: str) -> str:
    """The rental_uris object with every URI that is not plainly RFC 3986 dropped (the schema
    checks ``format: uri``); NULL when none is left."""
    parts = ", ".join(
        f"'{key}', CASE WHEN {column}->>'{key}' ~ CAST(:uri AS text) THEN {column}->>'{key}' END"
        for key in ("android", "ios", "web")
    )
    return f"NULLIF(jsonb_strip_nulls(jsonb_build_object({parts})), '{{}}'::jsonb)"


@dataclass(frozen=True, slots=True)
class PublishedProvider:
    """A provider's row plus which kinds of data it holds: what its files are built from."""

    id: str
    name: str
    enabled: bool
    last_success_at: datetime | None
    ttl_seconds: int | None
    system_info: dict[str, Any]
    global_rules: list[dict[str, Any]]
    feed_names: list[str]
    has_vehicle_types: bool
    has_vehicles: bool
    has_stations: bool
    has_pricing_plans: bool
    has_regions: bool
    has_zones: bool


_PROVIDER = f"""
SELECT p.id, p.name, p.enabled, p.last_success_at, p.ttl_seconds, p.system_info,
       p.global_rules, p.feed_names,
       EXISTS (SELECT 1 FROM vehicle_types t
               WHERE t.provider_id = p.id AND {_PUBLISHABLE_TYPE}) AS has_vehicle_types,
       EXISTS (SELECT 1 FROM vehicles v WHERE v.provider_id = p.id) AS has_vehicles,
       EXISTS (SELECT 1 FROM stations s WHERE s.provider_id = p.id) AS has_stations,
       EXISTS (SELECT 1 FROM pricing_plans pp WHERE pp.provider_id = p.id) AS has_pricing_plans,
       EXISTS (SELECT 1 FROM system_regions r WHERE r.provider_id = p.id) AS has_regions,
       EXISTS (SELECT 1 FROM geofencing_zones z WHERE z.provider_id = p.id) AS has_zones
FROM providers p
-- A private fleet (issue 6) is never re-published: these feeds are public.
WHERE p.id = :provider_id AND p.private_to IS NULL
"""


async def published_provider(session: AsyncSession, provider_id: str) -> PublishedProvider | None:
    row = (await session.execute(text(_PROVIDER), {"provider_id": provider_id})).one_or_none()
    if row is None:
        return None
    return PublishedProvider(
        id=row.id,
        name=row.name,
        enabled=row.enabled,
        last_success_at=row.last_success_at,
        ttl_seconds=row.ttl_seconds,
        system_info=dict(row.system_info or {}),
        global_rules=list(row.global_rules or []),
        feed_names=list(row.feed_names or []),
        has_vehicle_types=row.has_vehicle_types,
        has_vehicles=row.has_vehicles,
        has_stations=row.has_stations,
        has_pricing_plans=row.has_pricing_plans,
        has_regions=row.has_regions,
        has_zones=row.has_zones,
    )


async def manifest_datasets(session: AsyncSession) -> Sequence[Row[Any]]:
    """``(id, last_success_at)`` of every provider the manifest lists: enabled, with data."""
    return (
        await session.execute(
            text(
                "SELECT id, last_success_at FROM providers "
                "WHERE enabled AND last_success_at IS NOT NULL AND private_to IS NULL "
                "ORDER BY id"
            )
        )
    ).all()


# The small files' queries, read whole by provider_rows (:p is the provider).
VEHICLE_TYPES = f"""
SELECT t.id, t.form_factor, t.propulsion_type, t.name, t.max_range_meters, t.rider_capacity,
       t.default_pricing_plan_id, t.return_constraint, t.co2_grams_per_km,
       t.default_reserve_time_minutes
FROM vehicle_types t
WHERE t.provider_id = :p AND {_PUBLISHABLE_TYPE}
ORDER BY t.id
"""

PRICING_PLANS = """
SELECT id, name, description, currency, price_minor, is_taxable, per_km_pricing,
       per_min_pricing, surge_pricing, url
FROM pricing_plans WHERE provider_id = :p ORDER BY id
"""

REGIONS = "SELECT id, name FROM system_regions WHERE provider_id = :p ORDER BY id"

# Zones in feed order (earlier wins in GBFS 3.0); the geometry as GeoJSON text.
ZONES = """
SELECT ordinal, name, ST_AsGeoJSON(geom) AS geometry, rules, starts_at, ends_at
FROM geofencing_zones WHERE provider_id = :p ORDER BY ordinal
"""


async def provider_rows(session: AsyncSession, query: str, provider_id: str) -> Sequence[Row[Any]]:
    """The rows of one of a provider's small files (``query``: one of the queries above)."""
    return (await session.execute(text(query), {"p": provider_id})).all()


# Each record's JSON is built by PostgreSQL; json_strip_nulls leaves unknown fields out, as
# GBFS wants optional fields absent rather than null. Ordered by id so that an unchanged
# provider always yields the same bytes (and so the same ETag).
VEHICLE_STATUS = f"""
SELECT json_strip_nulls(json_build_object(
    'vehicle_id', v.id,
    'lat', ST_Y(v.geom),
    'lon', ST_X(v.geom),
    'is_reserved', v.is_reserved,
    'is_disabled', v.is_disabled,
    'rental_uris', {_checked_uris("v.rental_uris")},
    'vehicle_type_id', v.vehicle_type_id,
    'last_reported', {_timestamp("v.last_reported")},
    'current_range_meters',
        CASE WHEN v.current_range_meters >= 0 THEN v.current_range_meters END,
    'current_fuel_percent',
        CASE WHEN v.current_fuel_percent BETWEEN 0 AND 1 THEN v.current_fuel_percent END,
    'station_id', v.station_id,
    'pricing_plan_id', v.pricing_plan_id,
    'vehicle_equipment', v.vehicle_equipment
))::text
FROM vehicles v
LEFT JOIN vehicle_types t ON t.id = v.vehicle_type_id
WHERE v.provider_id = :p AND (t.id IS NULL OR {_PUBLISHABLE_TYPE})
ORDER BY v.id
"""


def _localized(column: str) -> str:
    language = "CAST(:language AS text)"
    return f"json_build_array(json_build_object('text', {column}, 'language', {language}))"


STATION_INFORMATION = f"""
SELECT json_strip_nulls(json_build_object(
    'station_id', s.id,
    'name', {_localized("s.name")},
    'short_name', CASE WHEN s.short_name IS NOT NULL THEN {_localized("s.short_name")} END,
    'lat', ST_Y(s.geom),
    'lon', ST_X(s.geom),
    'region_id', CASE WHEN s.region_id IS NOT NULL THEN s.provider_id || ':' || s.region_id END,
    'is_virtual_station', s.is_virtual,
    'capacity', CASE WHEN s.capacity >= 0 THEN s.capacity END,
    'rental_uris', {_checked_uris("s.rental_uris")}
))::text
FROM stations s
WHERE s.provider_id = :p
ORDER BY s.id
"""

# Every station of station_information MUST be in station_status (GBFS 3.0). A station whose
# status is unknown (the operator published none for it) is published closed: not renting,
# not returning, nothing available, so that no planner sends a rider to it on our word.
# last_reported, when the operator gave none, is the data's last_updated: the status is known
# to be current as of then and not later.
STATION_STATUS = f"""
SELECT json_strip_nulls(json_build_object(
    'station_id', s.id,
    'num_vehicles_available', coalesce(s.num_vehicles_available, 0),
    'num_vehicles_disabled', s.num_vehicles_disabled,
    'num_docks_available', s.num_docks_available,
    'is_installed', coalesce(s.is_installed, false),
    'is_renting', coalesce(s.is_renting, false) AND s.num_vehicles_available IS NOT NULL,
    'is_returning', coalesce(s.is_returning, false) AND s.num_vehicles_available IS NOT NULL,
    'last_reported', coalesce({_timestamp("s.last_reported")}, CAST(:last_updated AS text)),
    'vehicle_types_available', s.vehicle_types_available
))::text
FROM stations s
WHERE s.provider_id = :p
ORDER BY s.id
"""


async def stream_json_records(
    session: AsyncSession, query: str, params: dict[str, Any]
) -> AsyncIterator[list[str]]:
    """Batches of one-record JSON texts, read through a server-side cursor."""
    result = await session.stream(text(query), params, execution_options={"yield_per": BATCH_ROWS})
    async for batch in result.scalars().partitions(BATCH_ROWS):
        yield list(batch)
