"""Set-based snapshot merge into PostGIS: COPY into staging, one upsert, one delete.

Unchanged rows are not rewritten (the upsert's WHERE compares every column), so a re-sync of the
same data touches nothing, and the RETURNING clauses give the exact delta.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.vehicle import MERGE_SELECT, STAGE_COLUMNS


@dataclass(frozen=True, slots=True)
class TableSpec:
    table: str
    # Staging columns in COPY order: (name, postgres type).
    stage_columns: tuple[tuple[str, str], ...]
    # Target column -> SQL expression over the staging row ``s``.
    select: tuple[tuple[str, str], ...]
    touch_updated_at: bool = False

    def __post_init__(self) -> None:
        # merge_table reads a staged row's id as its first value.
        if not self.stage_columns or self.stage_columns[0][0] != "id":
            raise ValueError(f"{self.table}: the first staging column must be id")


@dataclass(slots=True)
class MergeOutcome:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    total: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "created": len(self.created),
            "updated": len(self.updated),
            "removed": len(self.removed),
            "total": self.total,
        }


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def merge_table(
    conn: asyncpg.Connection, spec: TableSpec, provider_id: str, records: Sequence[tuple[Any, ...]]
) -> MergeOutcome:
    stage = f"stage_{spec.table}"
    columns_sql = ", ".join(f"{_quote(n)} {t}" for n, t in spec.stage_columns)
    await conn.execute(f"DROP TABLE IF EXISTS pg_temp.{stage}")
    await conn.execute(f"CREATE TEMP TABLE {stage} ({columns_sql}) ON COMMIT DROP")
    if records:
        await conn.copy_records_to_table(
            stage, records=records, columns=[n for n, _ in spec.stage_columns]
        )
    # A key and statistics on the staging rows: without them the planner, trusting table
    # statistics gathered while this provider had few rows, chose a nested-loop anti-join
    # that scanned the whole staging table once per stored row (quadratic: minutes for a
    # 100,000-vehicle steady-state sync in a table of a million).
    await conn.execute(f"ALTER TABLE {stage} ADD PRIMARY KEY (id)")
    await conn.execute(f"ANALYZE {stage}")
    targets = [c for c, _ in spec.select]
    target_sql = ", ".join(_quote(c) for c in targets)
    select_sql = ", ".join(expr for _, expr in spec.select)
    outcome = MergeOutcome(total=len(records))
    # A provider with no rows in this table (its first sync, or after it was emptied) is a
    # bulk load: a plain INSERT, without ON CONFLICT's speculative insertion per row, and the
    # delta is every staged id. The per-provider sync lock keeps the table that way until
    # commit; should a row appear anyway, the key violation fails this merge, nothing is lost.
    empty = await conn.fetchval(
        f"SELECT NOT EXISTS (SELECT 1 FROM {spec.table} WHERE provider_id = $1)", provider_id
    )
    if empty:
        if records:
            await conn.execute(
                f"INSERT INTO {spec.table} ({target_sql}) SELECT {select_sql} FROM {stage} s"
            )
        outcome.created = [r[0] for r in records]
        return outcome
    changing = [c for c in targets if c not in ("id", "provider_id")]
    set_sql = ", ".join(f"{_quote(c)} = EXCLUDED.{_quote(c)}" for c in changing)
    if spec.touch_updated_at:
        set_sql += ", updated_at = now()"
    current = ", ".join(f"t.{_quote(c)}" for c in changing)
    incoming = ", ".join(f"EXCLUDED.{_quote(c)}" for c in changing)
    rows = await conn.fetch(
        f"""
        INSERT INTO {spec.table} AS t ({target_sql})
        SELECT {select_sql} FROM {stage} s
        ON CONFLICT (id) DO UPDATE SET {set_sql}
        WHERE ({current}) IS DISTINCT FROM ({incoming})
        RETURNING t.id, (t.xmax = 0) AS inserted
        """
    )
    for row in rows:
        (outcome.created if row["inserted"] else outcome.updated).append(row["id"])
    removed = await conn.fetch(
        f"""
        DELETE FROM {spec.table} t WHERE t.provider_id = $1
        AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.id = t.id)
        RETURNING t.id
        """,
        provider_id,
    )
    outcome.removed = [r["id"] for r in removed]
    return outcome


VEHICLE_TYPES = TableSpec(
    table="vehicle_types",
    stage_columns=(
        ("id", "text"),
        ("provider_id", "text"),
        ("external_id", "text"),
        ("form_factor", "text"),
        ("propulsion_type", "text"),
        ("name", "text"),
        ("max_range_meters", "float8"),
        ("rider_capacity", "int4"),
        ("default_pricing_plan_id", "text"),
        ("return_constraint", "text"),
        ("co2_grams_per_km", "float8"),
        ("default_reserve_time_minutes", "int4"),
        ("raw_form_factor", "text"),
    ),
    select=tuple(
        (c, f"s.{c}")
        for c in (
            "id",
            "provider_id",
            "external_id",
            "form_factor",
            "propulsion_type",
            "name",
            "max_range_meters",
            "rider_capacity",
            "default_pricing_plan_id",
            "return_constraint",
            "co2_grams_per_km",
            "default_reserve_time_minutes",
            "raw_form_factor",
        )
    ),
)

PRICING_PLANS = TableSpec(
    table="pricing_plans",
    stage_columns=(
        ("id", "text"),
        ("provider_id", "text"),
        ("external_id", "text"),
        ("name", "text"),
        ("description", "text"),
        ("currency", "text"),
        ("price_minor", "int8"),
        ("is_taxable", "bool"),
        ("per_km_pricing", "text"),
        ("per_min_pricing", "text"),
        ("surge_pricing", "bool"),
        ("url", "text"),
    ),
    select=(
        ("id", "s.id"),
        ("provider_id", "s.provider_id"),
        ("external_id", "s.external_id"),
        ("name", "s.name"),
        ("description", "s.description"),
        ("currency", "s.currency"),
        ("price_minor", "s.price_minor"),
        ("is_taxable", "s.is_taxable"),
        ("per_km_pricing", "s.per_km_pricing::jsonb"),
        ("per_min_pricing", "s.per_min_pricing::jsonb"),
        ("surge_pricing", "s.surge_pricing"),
        ("url", "s.url"),
    ),
)

STATIONS = TableSpec(
    table="stations",
    stage_columns=(
        ("id", "text"),
        ("provider_id", "text"),
        ("external_id", "text"),
        ("name", "text"),
        ("short_name", "text"),
        ("lat", "float8"),
        ("lon", "float8"),
        ("capacity", "int4"),
        ("region_id", "text"),
        ("is_virtual", "bool"),
        ("rental_uris", "text"),
        ("num_vehicles_available", "int4"),
        ("num_vehicles_disabled", "int4"),
        ("num_docks_available", "int4"),
        ("is_installed", "bool"),
        ("is_renting", "bool"),
        ("is_returning", "bool"),
        ("vehicle_types_available", "text"),
        ("last_reported", "timestamptz"),
    ),
    select=(
        ("id", "s.id"),
        ("provider_id", "s.provider_id"),
        ("external_id", "s.external_id"),
        ("name", "s.name"),
        ("short_name", "s.short_name"),
        ("geom", "ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326)"),
        ("capacity", "s.capacity"),
        ("region_id", "s.region_id"),
        ("is_virtual", "s.is_virtual"),
        ("rental_uris", "s.rental_uris::jsonb"),
        ("num_vehicles_available", "s.num_vehicles_available"),
        ("num_vehicles_disabled", "s.num_vehicles_disabled"),
        ("num_docks_available", "s.num_docks_available"),
        ("is_installed", "s.is_installed"),
        ("is_renting", "s.is_renting"),
        ("is_returning", "s.is_returning"),
        ("vehicle_types_available", "s.vehicle_types_available::jsonb"),
        ("last_reported", "s.last_reported"),
    ),
    touch_updated_at=True,
)

# The vehicle's columns are derived from its home (app/vehicle.py).
VEHICLES = TableSpec(
    table="vehicles", stage_columns=STAGE_COLUMNS, select=MERGE_SELECT, touch_updated_at=True
)

ZONES = TableSpec(
    table="geofencing_zones",
    stage_columns=(
        ("id", "text"),
        ("provider_id", "text"),
        ("ordinal", "int4"),
        ("name", "text"),
        ("geojson", "text"),
        ("rules", "text"),
        ("starts_at", "timestamptz"),
        ("ends_at", "timestamptz"),
    ),
    select=(
        ("id", "s.id"),
        ("provider_id", "s.provider_id"),
        ("ordinal", "s.ordinal"),
        ("name", "s.name"),
        ("geom", "ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(s.geojson), 4326))"),
        ("rules", "s.rules::jsonb"),
        ("starts_at", "s.starts_at"),
        ("ends_at", "s.ends_at"),
    ),
)

REGIONS = TableSpec(
    table="system_regions",
    stage_columns=(
        ("id", "text"),
        ("provider_id", "text"),
        ("external_id", "text"),
        ("name", "text"),
    ),
    select=(
        ("id", "s.id"),
        ("provider_id", "s.provider_id"),
        ("external_id", "s.external_id"),
        ("name", "s.name"),
    ),
)
