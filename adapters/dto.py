"""Canonical, operator-neutral data: what every availability adapter returns.

Vendor JSON never crosses this boundary. Ids here are the operator's *external* ids; the sync
pipeline scopes them to the provider (``<provider>:<external id>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class FormFactor(StrEnum):
    BICYCLE = "bicycle"
    CARGO_BICYCLE = "cargo_bicycle"
    CAR = "car"
    MOPED = "moped"
    SCOOTER_STANDING = "scooter_standing"
    SCOOTER_SEATED = "scooter_seated"
    OTHER = "other"


class PropulsionType(StrEnum):
    HUMAN = "human"
    ELECTRIC_ASSIST = "electric_assist"
    ELECTRIC = "electric"
    COMBUSTION = "combustion"
    COMBUSTION_DIESEL = "combustion_diesel"
    HYBRID = "hybrid"
    PLUG_IN_HYBRID = "plug_in_hybrid"
    HYDROGEN_FUEL_CELL = "hydrogen_fuel_cell"


Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One deviation from the spec: accepted-with-a-warning, or a record skipped (error)."""

    severity: Severity
    code: str  # stable, e.g. "GEOMETRY_MISSING", "COERCED_BOOLEAN"
    feed: str  # GBFS file name, e.g. "vehicle_status"
    message: str
    record_id: str | None = None


class VehicleEquipment(StrEnum):
    """GBFS ``vehicle_equipment`` (v2.3+): what the operator provides besides what every
    vehicle of the type has. In the spec's order, which is the order kept."""

    CHILD_SEAT_A = "child_seat_a"
    CHILD_SEAT_B = "child_seat_b"
    CHILD_SEAT_C = "child_seat_c"
    WINTER_TIRES = "winter_tires"
    SNOW_CHAINS = "snow_chains"


@dataclass(frozen=True, slots=True)
class RentalUris:
    android: str | None = None
    ios: str | None = None
    web: str | None = None


@dataclass(frozen=True, slots=True)
class SystemInfo:
    system_id: str
    name: str
    operator: str | None = None
    timezone: str | None = None
    language: str | None = None
    url: str | None = None
    android_store_uri: str | None = None
    ios_store_uri: str | None = None


@dataclass(frozen=True, slots=True)
class PricingSegment:
    """GBFS per_km / per_min segment. ``rate_minor`` is in the plan currency's minor units."""

    start: int
    rate_minor: int
    interval: int
    end: int | None = None


@dataclass(frozen=True, slots=True)
class PricingPlan:
    external_id: str
    name: str
    currency: str  # ISO 4217
    price_minor: int  # unlock/base fee, minor units
    is_taxable: bool
    description: str | None = None
    per_km_pricing: tuple[PricingSegment, ...] = ()
    per_min_pricing: tuple[PricingSegment, ...] = ()
    surge_pricing: bool = False
    url: str | None = None


@dataclass(frozen=True, slots=True)
class VehicleType:
    external_id: str
    form_factor: FormFactor
    propulsion_type: PropulsionType
    name: str | None = None
    max_range_meters: float | None = None
    rider_capacity: int | None = None
    default_pricing_plan_id: str | None = None  # external plan id
    pricing_plan_ids: tuple[str, ...] = ()
    return_constraint: str | None = None
    co2_grams_per_km: float | None = None
    default_reserve_time_minutes: int | None = None
    raw_form_factor: str | None = None  # e.g. the deprecated "scooter", kept for the record


# The placeholder type of vehicles that name no type where several are described.
UNSPECIFIED_VEHICLE_TYPE_ID = "unspecified-vehicle-type"


def placeholder_vehicle_type(type_id: str, *, types_described: bool) -> VehicleType:
    """The type of records that name ``type_id`` when their source does not describe it.

    The one rule of every ingest path (GBFS parse, row building, push): such a record is kept,
    never dropped for its type. The placeholder keeps the operator's id, so a type published or
    supplied later takes over without the records changing ids. When the source describes no
    types at all, GBFS's documented default applies: a non-motorised bicycle. When it does
    describe some, it has said its fleet is not all bicycles, so the form factor is ``other``
    rather than a guess a rider would act on (a moped shown as a bicycle needs a licence the
    rider may lack). Propulsion is the spec's only documented default, ``human``, and no range
    is claimed.
    """
    return VehicleType(
        external_id=type_id,
        form_factor=FormFactor.OTHER if types_described else FormFactor.BICYCLE,
        propulsion_type=PropulsionType.HUMAN,
    )


@dataclass(frozen=True, slots=True)
class Vehicle:
    external_id: str
    lat: float
    lon: float
    is_reserved: bool
    is_disabled: bool
    vehicle_type_id: str | None = None  # external type id
    pricing_plan_id: str | None = None  # external plan id (overrides the type's default)
    station_id: str | None = None  # external station id
    current_range_meters: float | None = None
    current_fuel_percent: float | None = None  # 0..1
    rental_uris: RentalUris | None = None
    last_reported: datetime | None = None
    # None: not reported; empty: reported as none. Each value once, in VehicleEquipment's order.
    vehicle_equipment: tuple[VehicleEquipment, ...] | None = None


@dataclass(frozen=True, slots=True)
class VehicleTypeCount:
    vehicle_type_id: str
    count: int


@dataclass(frozen=True, slots=True)
class Station:
    """station_information merged with station_status."""

    external_id: str
    name: str
    lat: float
    lon: float
    short_name: str | None = None
    capacity: int | None = None
    region_id: str | None = None
    is_virtual: bool = False
    rental_uris: RentalUris | None = None
    # Status; None when the feed publishes no status for this station.
    num_vehicles_available: int | None = None
    num_vehicles_disabled: int | None = None
    num_docks_available: int | None = None
    is_installed: bool | None = None
    is_renting: bool | None = None
    is_returning: bool | None = None
    vehicle_types_available: tuple[VehicleTypeCount, ...] = ()
    last_reported: datetime | None = None


@dataclass(frozen=True, slots=True)
class ZoneRule:
    """One geofencing rule; ``vehicle_type_ids`` None means every vehicle type."""

    vehicle_type_ids: tuple[str, ...] | None
    ride_start_allowed: bool
    ride_end_allowed: bool
    ride_through_allowed: bool
    maximum_speed_kph: int | None = None
    station_parking: bool | None = None


@dataclass(frozen=True, slots=True)
class GeofencingZone:
    """A zone in feed order (``ordinal``): earlier zones take precedence (GBFS 3.0)."""

    ordinal: int
    geometry: dict[str, Any]  # GeoJSON MultiPolygon, validated and closed by the adapter
    rules: tuple[ZoneRule, ...]
    name: str | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Region:
    external_id: str
    name: str


@dataclass(frozen=True, slots=True)
class FeedMeta:
    name: str
    url: str
    last_updated: datetime | None
    ttl: int | None
    not_modified: bool = False  # answered 304 / still fresh: served from our cache


@dataclass(slots=True)
class Snapshot:
    """A provider's complete current state, as one adapter call saw it."""

    version: str
    system: SystemInfo
    vehicle_types: list[VehicleType] = field(default_factory=list)
    pricing_plans: list[PricingPlan] = field(default_factory=list)
    vehicles: list[Vehicle] = field(default_factory=list)
    stations: list[Station] = field(default_factory=list)
    zones: list[GeofencingZone] = field(default_factory=list)
    # GBFS 3.0 global_rules; v2 feeds get the unrestricted rule that keeps the v2 meaning.
    global_rules: list[ZoneRule] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    feeds: list[FeedMeta] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def min_ttl(self) -> int | None:
        ttls = [f.ttl for f in self.feeds if f.ttl is not None]
        return min(ttls) if ttls else None
