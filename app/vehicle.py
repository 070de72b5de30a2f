"""The vehicle's one home (issue 17): its record, as search returns it and the index stores it.

No I/O here, and no imports beyond the adapters' DTOs and serialisation, so that the sync and
push writers (providers/), the index (app/vehicle_index.py), search (app/search/), GBFS
publishing (app/gbfs_publish/) and the API (graphql_schema/) can all import it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import orjson

from adapters import dto
from adapters.dto import RentalUris

# Redis GEO covers the Web Mercator band only; vehicles beyond it stay searchable in PostGIS.
GEO_MAX_LAT = 85.05112878


class IndexUnavailable(Exception):
    """The index cannot answer right now (not built yet, or holding unreadable documents):
    search answers from PostGIS instead."""


class VehicleDoc(NamedTuple):
    """One vehicle as search returns it. A tuple, so that decoding the index's documents (the
    search hot path) is a single C-level construction from the stored list."""

    id: str
    provider_id: str
    form_factor: str
    propulsion_type: str
    lat: float
    lon: float
    is_reserved: bool
    is_disabled: bool
    vehicle_type_id: str | None
    pricing_plan_id: str | None
    station_id: str | None
    current_range_meters: float | None
    current_fuel_percent: float | None
    # Read from PostGIS by the search fallback, the JSON text as stored: most answers never
    # show it, so it is decoded only when asked for (graphql_schema RentalUris.from_json).
    rental_uris: dict[str, str | None] | str | None
    # Documents read from the index keep the ISO string as stored: most answers never show it,
    # so it is parsed only when asked for (reported_at()).
    last_reported: datetime | str | None
    # GBFS vehicle_equipment values (adapters.dto.VehicleEquipment), in that enum's order;
    # None: not reported, []: reported as none.
    vehicle_equipment: list[str] | None = None

    def reported_at(self) -> datetime | None:
        value = self.last_reported
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    def reported_iso(self) -> str | None:
        value = self.last_reported
        return value.isoformat() if isinstance(value, datetime) else value

    @property
    def is_available(self) -> bool:
        return not self.is_reserved and not self.is_disabled

    @property
    def indexable(self) -> bool:
        return self.is_available and abs(self.lat) <= GEO_MAX_LAT

    def encode(self) -> bytes:
        # orjson writes a datetime exactly as isoformat() does (RFC 3339, offset kept), in a
        # third of the time; the tuple default serialises the NamedTuple as a JSON array.
        return orjson.dumps(self, default=tuple)

    @classmethod
    def decode(cls, raw: bytes) -> VehicleDoc:
        try:
            return cls._make(orjson.loads(raw))
        except (orjson.JSONDecodeError, IndexError, TypeError, ValueError) as exc:
            raise IndexUnavailable(f"unreadable index document: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Field:
    """How one field of :class:`VehicleDoc` is kept in PostgreSQL (the ``vehicles`` table) and
    how the writers treat it. Every reader's and writer's SQL is derived from :data:`FIELDS`."""

    name: str
    # The column's type: text, float8, bool, jsonb, timestamptz or text[]. ``lat`` and ``lon``
    # are float8 here but stored together in the ``geom`` point (see _GEOM).
    pg_type: str
    # The SELECT expression over the row ``v``, when it is not ``v.<name>``.
    read: str | None = None
    # Push ingest: "replace" writes what the operator sent (None clears); "keep" keeps the
    # stored value when the operator sent none (a connected car reports position and fuel,
    # not its deep links).
    on_push: Literal["replace", "keep"] = "replace"


#: Every field of the record, in VehicleDoc's order (the index document's array order).
FIELDS: tuple[Field, ...] = (
    Field("id", "text"),
    Field("provider_id", "text"),
    Field("form_factor", "text"),
    Field("propulsion_type", "text"),
    Field("lat", "float8", read="ST_Y(v.geom)"),
    Field("lon", "float8", read="ST_X(v.geom)"),
    Field("is_reserved", "bool"),
    Field("is_disabled", "bool"),
    Field("vehicle_type_id", "text"),
    Field("pricing_plan_id", "text"),
    Field("station_id", "text"),
    Field("current_range_meters", "float8"),
    Field("current_fuel_percent", "float8"),
    Field("rental_uris", "jsonb", on_push="keep"),
    Field("last_reported", "timestamptz"),
    # A connected car does not report equipment either: keep what is known.
    Field("vehicle_equipment", "text[]", on_push="keep"),
)
if tuple(f.name for f in FIELDS) != VehicleDoc._fields:
    raise AssertionError("FIELDS must name VehicleDoc's fields, in order")

WIDTH = len(FIELDS)
#: Names the document format: a short hash of the fields, in order, and their types. The index's
#: keys and the delta channel carry it (app/platform/redis.py), so a deploy that adds, removes or
#: moves a
#: field builds a fresh index under new keys, and processes of the previous version, still
#: running during a rolling deploy, never read documents or deltas of the new one.
DOC_FORMAT = hashlib.blake2b(
    ",".join(f"{f.name}:{f.pg_type}" for f in FIELDS).encode(), digest_size=4
).hexdigest()
_POSITION = {f.name: i for i, f in enumerate(FIELDS)}
# Fields PostgreSQL keeps as jsonb: asyncpg hands them over as JSON text.
_JSON_POSITIONS = tuple(i for i, f in enumerate(FIELDS) if f.pg_type == "jsonb")

#: The record's columns over ``vehicles v``, in VehicleDoc's order: a row's first WIDTH values
#: are a record (:func:`record_from_row`).
SELECT_COLUMNS = ", ".join(
    f"{f.read} AS {f.name}" if f.read is not None else f"v.{f.name}" for f in FIELDS
)


def record_from_row(row: Sequence[Any]) -> VehicleDoc:
    """The record from a row that starts with :data:`SELECT_COLUMNS`, as PostgreSQL sent it:
    jsonb fields stay JSON text (search's fallback shows them rarely, and decodes then)."""
    return VehicleDoc._make(row[:WIDTH])


def decoded_record_from_row(row: Sequence[Any]) -> VehicleDoc:
    """:func:`record_from_row`, with the jsonb fields decoded (for the index and deltas)."""
    values = list(row[:WIDTH])
    for i in _JSON_POSITIONS:
        if isinstance(values[i], str):
            values[i] = orjson.loads(values[i])
    return VehicleDoc._make(values)


def uris_dict(uris: RentalUris | None) -> dict[str, str | None] | None:
    """An adapter's rental links as the record keeps them; None when there is none."""
    if uris is None or not (uris.android or uris.ios or uris.web):
        return None
    # Spelled out: dataclasses.asdict deep-copies field by field, a third of a 100k-vehicle
    # sync's row building.
    return {"android": uris.android, "ios": uris.ios, "web": uris.web}


def record_from_dto(
    v: dto.Vehicle,
    vid: str,
    provider_id: str,
    form_factor: str,
    propulsion_type: str,
    vehicle_type_id: str | None,
    pricing_plan_id: str | None,
    station_id: str | None,
) -> VehicleDoc:
    """The record of an adapter's vehicle, given what the sync resolved: its public id, its
    type's classification and the provider-scoped ids it points at. Positional arguments and
    a positional construction: this runs once per vehicle of every snapshot."""
    return VehicleDoc(
        vid,
        provider_id,
        form_factor,
        propulsion_type,
        v.lat,
        v.lon,
        v.is_reserved,
        v.is_disabled,
        vehicle_type_id,
        pricing_plan_id,
        station_id,
        v.current_range_meters,
        v.current_fuel_percent,
        uris_dict(v.rental_uris),
        v.last_reported,
        None if v.vehicle_equipment is None else [e.value for e in v.vehicle_equipment],
    )


def _json_text(value: object) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _staged(doc: VehicleDoc) -> tuple[Any, ...]:
    """The record's values as PostgreSQL takes them: jsonb fields as JSON text."""
    values = list(doc)
    for i in _JSON_POSITIONS:
        values[i] = _json_text(values[i])
    return tuple(values)


# --- the sync's merge (providers/merge.py): COPY into staging, then one upsert -------------------

#: Staging columns in COPY order: the record's fields, jsonb staged as text.
STAGE_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (f.name, "text" if f.pg_type == "jsonb" else f.pg_type) for f in FIELDS
)
# Types whose values reach PostgreSQL as text and are cast there: jsonb (JSON text), and in
# push's unnest arrays, text[] (an array literal: unnest flattens an array of arrays).
_SENT_AS_TEXT = ("jsonb", "text[]")


def _written(alias: str) -> tuple[tuple[str, str], ...]:
    """Target column -> SQL expression over the record's values in the row ``alias``: the
    position becomes the one ``geom``, jsonb is cast from its text, and the external id is
    the public id without its provider prefix."""
    targets: list[tuple[str, str]] = [
        ("external_id", f"substr({alias}.id, length({alias}.provider_id) + 2)")
    ]
    for f in FIELDS:
        if f.name == "lat":
            targets.append(("geom", f"ST_SetSRID(ST_MakePoint({alias}.lon, {alias}.lat), 4326)"))
        elif f.name != "lon":
            cast = f"::{f.pg_type}" if f.pg_type in _SENT_AS_TEXT else ""
            targets.append((f.name, f"{alias}.{f.name}{cast}"))
    return tuple(targets)


#: Target column -> SQL expression over the staging row ``s``.
MERGE_SELECT = _written("s")


def copy_records(docs: Iterable[VehicleDoc]) -> list[tuple[Any, ...]]:
    """The records as staging rows (:data:`STAGE_COLUMNS`). Record by record: transposing a
    whole snapshot's records at once (zip(*docs)) set off the garbage collector over every
    object the snapshot holds, three times the cost."""
    return [_staged(doc) for doc in docs]


# --- push ingest (providers/push/apply.py): one upsert over unnest arrays ------------------------

_KEPT = tuple(f for f in FIELDS if f.on_push == "keep")
_NOT_UPDATED = ("id", "provider_id", "external_id")


def _push_upsert() -> str:
    written = _written("u")
    types = ", ".join(
        f"${i}::{'text' if f.pg_type in _SENT_AS_TEXT else f.pg_type}[]"
        for i, f in enumerate(FIELDS, start=1)
    )
    kept = {f.name for f in _KEPT}
    updates = [
        f"{c} = COALESCE(EXCLUDED.{c}, t.{c})" if c in kept else f"{c} = EXCLUDED.{c}"
        for c, _ in written
        if c not in _NOT_UPDATED
    ]
    return f"""
INSERT INTO vehicles AS t ({", ".join(c for c, _ in written)})
SELECT {", ".join(expr for _, expr in written)}
FROM unnest({types}) AS u({", ".join(f.name for f in FIELDS)})
ON CONFLICT (id) DO UPDATE SET
    {", ".join(updates)}, updated_at = now()
-- Never go back in time: a retry or a late delivery of an older status changes nothing.
WHERE t.provider_id = EXCLUDED.provider_id
  AND (t.last_reported IS NULL OR EXCLUDED.last_reported >= t.last_reported)
RETURNING t.id, (t.xmax = 0) AS inserted{"".join(f", t.{f.name}" for f in _KEPT)}
"""


#: Push's upsert: one parameter per field (an array of every vehicle's values,
#: :func:`push_columns`). A field kept on push (Field.on_push) keeps its stored value where
#: the operator sent none, and comes back in RETURNING (:func:`with_kept`).
PUSH_UPSERT = _push_upsert()


def _array_literal(values: Sequence[str] | None) -> str | None:
    """A text[] as PostgreSQL's array literal, each element quoted."""
    if values is None:
        return None
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


_ARRAY_POSITIONS = tuple(i for i, f in enumerate(FIELDS) if f.pg_type == "text[]")


def push_columns(docs: Iterable[VehicleDoc]) -> list[list[Any]]:
    """The records' values field by field, for :data:`PUSH_UPSERT`'s arrays; text[] values as
    array literals (unnest would flatten an array of arrays)."""
    staged = [_staged(doc) for doc in docs]
    if not staged:
        return [[] for _ in range(WIDTH)]
    columns = [list(column) for column in zip(*staged, strict=True)]
    for i in _ARRAY_POSITIONS:
        columns[i] = [_array_literal(values) for values in columns[i]]
    return columns


def with_kept(doc: VehicleDoc, row: Mapping[str, Any]) -> VehicleDoc:
    """The pushed record with the stored values PUSH_UPSERT kept where the operator sent none."""
    kept = {
        f.name: orjson.loads(value) if f.pg_type == "jsonb" else value
        for f in _KEPT
        if getattr(doc, f.name) is None and (value := row[f.name]) is not None
    }
    return doc._replace(**kept) if kept else doc


# --- the filter ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VehicleFilter:
    """Which vehicles a search wants. Each criterion is compiled three ways, kept side by side
    here: to SQL (:meth:`sql_clauses`, the PostGIS fallback), to the index script's arguments
    (:meth:`redis_args` with :data:`LUA_REJECTS`) and to :meth:`matches` (in process: the hot
    path's check and live views). tests/app/test_vehicle_home.py runs every criterion through
    all three. A new criterion also joins :meth:`fingerprint_parts`, appended and only when
    set, so that cursors already issued stay valid."""

    form_factors: frozenset[str] | None = None
    propulsion_types: frozenset[str] | None = None
    providers: frozenset[str] | None = None
    min_range_meters: float | None = None
    # GBFS vehicle_equipment values a vehicle must all have (None or empty: any); a vehicle
    # whose operator does not report its equipment has none.
    equipment: frozenset[str] | None = None
    include_reserved: bool = False
    include_disabled: bool = False
    # Set by the search service, not by clients: only providers whose last good data is at
    # most this old (app/health.py); None: any age.
    fresh_within_seconds: float | None = None
    # Set by the search service, not by clients: private fleets of organisations the caller
    # is not a member of (issue 6). Empty: none to hide.
    hidden_providers: frozenset[str] = frozenset()

    def matches(self, doc: VehicleDoc) -> bool:
        if doc.is_reserved and not self.include_reserved:
            return False
        if doc.is_disabled and not self.include_disabled:
            return False
        if self.form_factors is not None and doc.form_factor not in self.form_factors:
            return False
        if self.propulsion_types is not None and doc.propulsion_type not in self.propulsion_types:
            return False
        if self.providers is not None and doc.provider_id not in self.providers:
            return False
        if self.hidden_providers and doc.provider_id in self.hidden_providers:
            return False
        if self.min_range_meters is not None and (
            doc.current_range_meters is None or doc.current_range_meters < self.min_range_meters
        ):
            return False
        if self.equipment and not self.equipment.issubset(doc.vehicle_equipment or ()):
            return False
        return True

    @property
    def available_only(self) -> bool:
        return not self.include_reserved and not self.include_disabled

    def sql_clauses(self, bind: Callable[[Any], str]) -> list[str]:
        """WHERE clauses over ``vehicles v``; ``bind`` adds a parameter and returns its
        placeholder. Freshness reads the providers table: the search's SQL adds it."""
        clauses: list[str] = []
        if not self.include_reserved:
            clauses.append("NOT v.is_reserved")
        if not self.include_disabled:
            clauses.append("NOT v.is_disabled")
        if self.form_factors is not None:
            clauses.append(f"v.form_factor = ANY({bind(sorted(self.form_factors))})")
        if self.propulsion_types is not None:
            clauses.append(f"v.propulsion_type = ANY({bind(sorted(self.propulsion_types))})")
        if self.providers is not None:
            clauses.append(f"v.provider_id = ANY({bind(sorted(self.providers))})")
        if self.hidden_providers:
            clauses.append(f"v.provider_id <> ALL({bind(sorted(self.hidden_providers))})")
        if self.min_range_meters is not None:
            clauses.append(f"v.current_range_meters >= {bind(self.min_range_meters)}")
        if self.equipment:
            # NULL (not reported) contains nothing, as in matches.
            clauses.append(f"v.vehicle_equipment @> {bind(sorted(self.equipment))}::text[]")
        return clauses

    def redis_args(self) -> list[str | float]:
        """The index script's filter arguments, in :data:`LUA_FILTER_ARGS`' order ("" = any).
        The index holds available vehicles only; hidden providers are left to matches()."""
        return [
            ",".join(self.form_factors) if self.form_factors is not None else "",
            ",".join(self.propulsion_types) if self.propulsion_types is not None else "",
            ",".join(self.providers) if self.providers is not None else "",
            self.min_range_meters if self.min_range_meters is not None else "",
            ",".join(sorted(self.equipment)) if self.equipment else "",
        ]

    def fingerprint_parts(self) -> list[Any]:
        """What a page cursor is bound to (app/search/paging.py), as canonical JSON values.
        The service's own additions (hidden providers, freshness) are left out."""
        return [
            sorted(self.form_factors) if self.form_factors is not None else None,
            sorted(self.propulsion_types) if self.propulsion_types is not None else None,
            sorted(self.providers) if self.providers is not None else None,
            float(self.min_range_meters) if self.min_range_meters is not None else None,
            self.include_reserved,
            self.include_disabled,
            # Appended only when set: cursors issued before the criterion existed stay valid.
            *([sorted(self.equipment)] if self.equipment else []),
        ]


_P = {name: i + 1 for name, i in _POSITION.items()}  # Lua arrays count from 1

#: Lua, given the first ARGV index of :meth:`VehicleFilter.redis_args`: defines ``filtering``
#: (whether any criterion is set) and what :data:`LUA_REJECTS` reads.
LUA_FILTER_ARGS = """
local forms, propulsions, providers = set(ARGV[{a0}]), set(ARGV[{a1}]), set(ARGV[{a2}])
local min_range = tonumber(ARGV[{a3}])
local equipment = set(ARGV[{a4}])
local filtering = forms or propulsions or providers or min_range or equipment
-- Whether a document's equipment (a JSON array, or null: not reported) holds every one asked.
local function lacks_equipment(items)
  if items == cjson.null then return true end
  local have = {{}}
  for _, item in ipairs(items) do have[item] = true end
  for item in pairs(equipment) do
    if not have[item] then return true end
  end
  return false
end
"""
#: A Lua expression over a decoded document ``v`` (an array in VehicleDoc's order): true when
#: the filter rejects it. Written inline in the script's loop, not as a function.
LUA_REJECTS = (
    f"(forms and not forms[v[{_P['form_factor']}]])"
    f" or (propulsions and not propulsions[v[{_P['propulsion_type']}]])"
    f" or (providers and not providers[v[{_P['provider_id']}]])"
    f" or (min_range and (v[{_P['current_range_meters']}] == cjson.null"
    f" or v[{_P['current_range_meters']}] < min_range))"
    # A call only when equipment is asked for: the common search pays one nil test.
    f" or (equipment and lacks_equipment(v[{_P['vehicle_equipment']}]))"
)
