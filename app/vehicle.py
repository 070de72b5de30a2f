"""The vehicle's one home (issue 17): its record, as search returns it and the index stores it.

No I/O here, and no imports beyond the adapters' DTOs and serialisation, so that the sync and
push writers (providers/), the index (app/vehicle_index.py), search (app/search/), GBFS
publishing (app/gbfs_publish/) and the API (graphql_schema/) can all import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import orjson

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
)
if tuple(f.name for f in FIELDS) != VehicleDoc._fields:
    raise AssertionError("FIELDS must name VehicleDoc's fields, in order")

WIDTH = len(FIELDS)
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
