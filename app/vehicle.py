"""The vehicle's one home (issue 17): its record, as search returns it and the index stores it.

No I/O here, and no imports beyond the adapters' DTOs and serialisation, so that the sync and
push writers (providers/), the index (app/vehicle_index.py), search (app/search/), GBFS
publishing (app/gbfs_publish/) and the API (graphql_schema/) can all import it.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

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
