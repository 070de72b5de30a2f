"""Search filters and results as plain data. The vehicle filter lives in the vehicle's home
(app/vehicle.py) and is re-exported here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.models import Provider
from app.vehicle import VehicleDoc
from app.vehicle import VehicleFilter as VehicleFilter  # re-exported: its home is app/vehicle.py
from geo.areas import BBox


@dataclass(frozen=True, slots=True)
class StationFilter:
    providers: frozenset[str] | None = None
    min_vehicles_available: int | None = None
    min_docks_available: int | None = None
    # Set by the search service, not by clients: private fleets the caller may not see.
    hidden_providers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RankedArea:
    """Where a ranked search looks, and the point its order is measured from.

    Answers are ordered by their distance from (``lat``, ``lon``) (the `near` point, or the
    centre of the `within` box), then by id. An answer lies within ``reach_meters`` of that
    point: for `near` that is the radius and decides; for `within` it is the farthest corner,
    which only bounds the scan, and ``box`` decides.
    """

    lat: float
    lon: float
    reach_meters: float
    box: BBox | None

    def admits(self, lat: float, lon: float, distance: float) -> bool:
        box = self.box
        return distance <= self.reach_meters if box is None else box.contains(lat, lon)


@dataclass(frozen=True, slots=True)
class PagePosition:
    """Where a page ended: the last vehicle's distance (as search computes it,
    geo.distance.ranking_meters) and id. The next page holds what sorts after it."""

    distance_meters: float
    vehicle_id: str


@dataclass(frozen=True, slots=True)
class VehicleHit:
    vehicle: VehicleDoc
    distance_meters: float | None


@dataclass(frozen=True, slots=True)
class StationRow:
    id: str
    provider_id: str
    name: str
    short_name: str | None
    lat: float
    lon: float
    distance_meters: float | None
    capacity: int | None
    num_vehicles_available: int | None
    num_docks_available: int | None
    vehicle_types_available: list[dict[str, Any]]
    is_renting: bool | None
    is_returning: bool | None
    is_installed: bool | None
    rental_uris: dict[str, str | None] | None
    last_reported: datetime | None


@dataclass(frozen=True, slots=True)
class ZoneRow:
    id: str
    provider_id: str
    ordinal: int
    name: str | None
    geometry: dict[str, Any]
    rules: list[dict[str, Any]]
    starts_at: datetime | None
    ends_at: datetime | None
    # From the search point (near) or the box's centre (within) to the zone; 0 inside it.
    distance_meters: float | None = None


@dataclass(frozen=True, slots=True)
class Extent:
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float


@dataclass(frozen=True, slots=True)
class ProviderStats:
    vehicle_count: int
    station_count: int
    form_factors: list[str]
    extent: Extent | None


@dataclass(frozen=True, slots=True)
class ProviderSummary:
    provider: Provider
    stats: ProviderStats
