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


@dataclass(frozen=True, slots=True)
class _Derived:
    """A target column computed from staged ones: a geometry from its coordinates or GeoJSON."""

    staged: tuple[tuple[str, str], ...]
    expression: str


_POINT = _Derived(
    (("lat", "float8"), ("lon", "float8")), "ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326)"
)
_MULTIPOLYGON = _Derived(
    (("geojson", "text"),), "ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(s.geojson), 4326))"
)


def _table(
    table: str, columns: tuple[tuple[str, str | _Derived], ...], *, touch_updated_at: bool = False
) -> TableSpec:
    """The spec of a table from its columns in staging order, each (name, its PostgreSQL type)
    or (name, how it is derived): a column is staged as itself, but jsonb as its JSON text,
    cast back in the select."""
    stage: list[tuple[str, str]] = []
    select: list[tuple[str, str]] = []
    for name, kind in columns:
        if isinstance(kind, _Derived):
            stage.extend(kind.staged)
            select.append((name, kind.expression))
        elif kind == "jsonb":
            stage.append((name, "text"))
            select.append((name, f"s.{name}::jsonb"))
        else:
            stage.append((name, kind))
            select.append((name, f"s.{name}"))
    return TableSpec(table, tuple(stage), tuple(select), touch_updated_at)


VEHICLE_TYPES = _table(
    "vehicle_types",
    (
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
)

PRICING_PLANS = _table(
    "pricing_plans",
    (
        ("id", "text"),
        ("provider_id", "text"),
        ("external_id", "text"),
        ("name", "text"),
        ("description", "text"),
        ("currency", "text"),
        ("price_minor", "int8"),
        ("is_taxable", "bool"),
        ("per_km_pricing", "jsonb"),
        ("per_min_pricing", "jsonb"),
        ("surge_pricing", "bool"),
        ("url", "text"),
    ),
)

STATIONS = _table(
    "stations",
    (
        ("id", "text"),
        ("provider_id", "text"),
        ("external_id", "text"),
        ("name", "text"),
        ("short_name", "text"),
        ("geom", _POINT),
        ("capacity", "int4"),
        ("region_id", "text"),
        ("is_virtual", "bool"),
        ("rental_uris", "jsonb"),
        ("num_vehicles_available", "int4"),
        ("num_vehicles_disabled", "int4"),
        ("num_docks_available", "int4"),
        ("is_installed", "bool"),
        ("is_renting", "bool"),
        ("is_returning", "bool"),
        ("vehicle_types_available", "jsonb"),
        ("last_reported", "timestamptz"),
    ),
    touch_updated_at=True,
)

# The vehicle's columns are derived from its home (app/vehicle.py).
VEHICLES = TableSpec(
    table="vehicles", stage_columns=STAGE_COLUMNS, select=MERGE_SELECT, touch_updated_at=True
)

ZONES = _table(
    "geofencing_zones",
    (
        ("id", "text"),
        ("provider_id", "text"),
        ("ordinal", "int4"),
        ("name", "text"),
        ("geom", _MULTIPOLYGON),
        ("rules", "jsonb"),
        ("starts_at", "timestamptz"),
        ("ends_at", "timestamptz"),
    ),
)

REGIONS = _table(
    "system_regions",
    (
        ("id", "text"),
        ("provider_id", "text"),
        ("external_id", "text"),
        ("name", "text"),
    ),
)
