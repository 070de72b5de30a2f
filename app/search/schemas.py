"""Search filters and results as plain data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.models import Provider
from app.vehicle_index import VehicleDoc
from geo.areas import BBox


@dataclass(frozen=True, slots=True)
class VehicleFilter:
    form_factors: frozenset[str] | None = None
    propulsion_types: frozenset[str] | None = None
    providers: frozenset[str] | None = None
    min_range_meters: float | None = None
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
        return True

    @property
    def available_only(self) -> bool:
        return not self.include_reserved and not self.include_disabled


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
