"""The TOMP simulator's fleet: its vehicles, its pricing plan, its GBFS 2.3 documents and its
TOMP fares. Pure functions and plain data; the HTTP side is :mod:`providers.simulators.tomp_server`.

Money is integer minor units here, as everywhere in the project; it becomes decimal major units
only where it is published (GBFS ``price``/``rate``, TOMP ``amount``). Trip prices use the
project's GBFS pricing semantics (:func:`adapters.gbfs.pricing.estimate_price`: a charge at the
beginning of each interval), so the fare the simulator bills is the fare the aggregator quotes
from the same published plan.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias

from adapters.dto import PricingSegment
from adapters.gbfs.pricing import PriceBreakdown, estimate_price
from adapters.money import currency_exponent

__all__ = [
    "DEFAULT_CENTER",
    "FLEETS",
    "GBFS_FEEDS",
    "FleetKind",
    "FleetName",
    "SimPlan",
    "SimVehicle",
    "Zone",
    "build_vehicles",
    "gbfs_document",
    "major_units",
    "no_parking_zone",
    "price_trip",
    "tomp_fare",
]

Document: TypeAlias = dict[str, Any]
FleetName: TypeAlias = Literal["car", "scooter"]

# Amsterdam Centraal. TOMP 1.6.1 declares `coordinates.lat/lng` with `minimum: 0`, so a centre
# west of Greenwich or south of the equator would publish schema-invalid TOMP places.
DEFAULT_CENTER: Final = (52.3791, 4.9003)
_METRES_PER_DEGREE_LAT: Final = 111_320.0
GBFS_VERSION: Final = "2.3"
# The v2.3 feed names, in the order gbfs.json lists them.
GBFS_FEEDS: Final = (
    "gbfs_versions",
    "system_information",
    "vehicle_types",
    "free_bike_status",
    "system_pricing_plans",
    "geofencing_zones",
)
# Availability changes with every booking; reference data only when the process restarts.
_STATUS_TTL: Final = 10
_STATIC_TTL: Final = 300


@dataclass(frozen=True, slots=True)
class SimPlan:
    plan_id: str
    name: str
    description: str
    currency: str
    price_minor: int
    per_min: tuple[PricingSegment, ...] = ()
    per_km: tuple[PricingSegment, ...] = ()


@dataclass(frozen=True, slots=True)
class FleetKind:
    name: FleetName
    vehicle_type_id: str
    type_name: str
    form_factor: str  # GBFS 2.3 form_factor
    asset_class: str  # TOMP assetClass
    max_range_m: int
    speed_kmh: float  # for estimates only: trip time from the straight-line distance
    plan: SimPlan


FLEETS: Final[dict[FleetName, FleetKind]] = {
    "car": FleetKind(
        name="car",
        vehicle_type_id="sim-car-electric",
        type_name="Simulated electric car",
        form_factor="car",
        asset_class="CAR",
        max_range_m=300_000,
        speed_kmh=25.0,
        plan=SimPlan(
            plan_id="car-standard",
            name="Car: per minute and per km",
            description="No unlock fee; 0.29 EUR per started minute and 0.19 EUR per started km.",
            currency="EUR",
            price_minor=0,
            per_min=(PricingSegment(start=0, rate_minor=29, interval=1),),
            per_km=(PricingSegment(start=0, rate_minor=19, interval=1),),
        ),
    ),
    "scooter": FleetKind(
        name="scooter",
        vehicle_type_id="sim-scooter",
        type_name="Simulated e-scooter",
        form_factor="scooter_standing",  # v2.3 deprecates plain "scooter"
        asset_class="STEP",
        max_range_m=40_000,
        speed_kmh=12.0,
        plan=SimPlan(
            plan_id="scooter-standard",
            name="Scooter: unlock and per minute",
            description="1.00 EUR to unlock, then 0.25 EUR per started minute.",
            currency="EUR",
            price_minor=100,
            per_min=(PricingSegment(start=0, rate_minor=25, interval=1),),
        ),
    ),
}
# Without a destination, an offer prices a ride of this length at the fleet's speed.
ESTIMATE_MINUTES_WITHOUT_DESTINATION: Final = 10.0


@dataclass(slots=True)
class SimVehicle:
    vehicle_id: str
    lat: float
    lon: float
    range_m: int
    last_reported: int


@dataclass(frozen=True, slots=True)
class Zone:
    """A rectangle where no ride may end (GBFS 2.3 ``ride_allowed: false``)."""

    name: str
    south: float
    west: float
    north: float
    east: float
    ring: tuple[tuple[float, float], ...] = field(default=())  # (lon, lat), closed

    def contains(self, lat: float, lon: float) -> bool:
        return self.south <= lat <= self.north and self.west <= lon <= self.east


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    dlat = north_m / _METRES_PER_DEGREE_LAT
    dlon = east_m / (_METRES_PER_DEGREE_LAT * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


def no_parking_zone(center: tuple[float, float]) -> Zone:
    """ "Harbour no-parking zone": 400 m x 300 m, its south-west corner 500 m north and 300 m
    east of the centre, so a test can end a ride inside it deterministically."""
    south, west = _offset(*center, 500.0, 300.0)
    north, east = _offset(*center, 800.0, 700.0)
    ring = ((west, south), (east, south), (east, north), (west, north), (west, south))
    return Zone("Harbour no-parking zone", south, west, north, east, ring)


def build_vehicles(
    kind: FleetKind,
    *,
    system_id: str,
    seed: int,
    count: int,
    center: tuple[float, float],
    radius_m: float,
    zone: Zone,
    now: int,
) -> list[SimVehicle]:
    """``count`` vehicles placed uniformly in a disc around ``center``, never in the zone;
    the same arguments always give the same fleet."""
    rng = random.Random(f"{system_id}:{kind.name}:{seed}")  # str seeds do not depend on hashing
    vehicles: list[SimVehicle] = []
    while len(vehicles) < count:
        distance = radius_m * math.sqrt(rng.random())
        bearing = rng.uniform(0.0, 2 * math.pi)
        lat, lon = _offset(*center, distance * math.cos(bearing), distance * math.sin(bearing))
        if zone.contains(lat, lon):
            continue
        charge = rng.uniform(0.4, 1.0)
        vehicles.append(
            SimVehicle(
                vehicle_id=f"{system_id}-{kind.name}-{len(vehicles) + 1:03d}",
                lat=round(lat, 6),
                lon=round(lon, 6),
                range_m=int(kind.max_range_m * charge),
                last_reported=now,
            )
        )
    return vehicles


# -- money --------------------------------------------------------------------------------------


def major_units(amount_minor: int, currency: str) -> float:
    """Minor units as the decimal major-unit number TOMP and GBFS publish (235 EUR → 2.35)."""
    return float(Decimal(amount_minor).scaleb(-currency_exponent(currency)))


def price_trip(plan: SimPlan, *, minutes: float, kilometers: float) -> PriceBreakdown:
    return estimate_price(
        currency=plan.currency,
        price_minor=plan.price_minor,
        per_min_pricing=plan.per_min,
        per_km_pricing=plan.per_km,
        minutes=minutes,
        kilometers=kilometers,
    )


def tomp_fare(
    plan: SimPlan, *, minutes: float, kilometers: float, estimated: bool
) -> tuple[Document, PriceBreakdown]:
    """A TOMP ``fare`` whose parts add up to the trip price (no MAX part): the unlock fee as a
    FIXED part, time and distance as FLEX parts whose ``units`` are the trip's minutes and km
    and whose ``amount`` is what those units cost."""
    breakdown = price_trip(plan, minutes=minutes, kilometers=kilometers)
    currency = plan.currency

    def part(amount_minor: int, **fields: Any) -> Document:
        return {
            "amount": major_units(amount_minor, currency),
            "currencyCode": currency,
            "kind": "DEFAULT",
            "class": "FARE",
            **fields,
        }

    parts = [part(breakdown.base_minor, type="FIXED", name="Unlock")]
    if plan.per_min:
        parts.append(
            part(
                breakdown.time_minor,
                type="FLEX",
                unitType="MINUTE",
                units=round(minutes, 3),
                name="Time",
            )
        )
    if plan.per_km:
        parts.append(
            part(
                breakdown.distance_minor,
                type="FLEX",
                unitType="KM",
                units=round(kilometers, 3),
                name="Distance",
            )
        )
    word = "Estimate" if estimated else "Fare"
    fare: Document = {
        "estimated": estimated,
        "description": f"{word} for {minutes:.1f} min and {kilometers:.2f} km",
        "parts": parts,
    }
    return fare, breakdown


# -- GBFS 2.3 -----------------------------------------------------------------------------------


def _segments(segments: tuple[PricingSegment, ...], currency: str) -> list[Document]:
    out = []
    for segment in segments:
        doc: Document = {
            "start": segment.start,
            "rate": major_units(segment.rate_minor, currency),
            "interval": segment.interval,
        }
        if segment.end is not None:
            doc["end"] = segment.end
        out.append(doc)
    return out


def gbfs_document(
    feed: str,
    *,
    kind: FleetKind,
    system_id: str,
    base_url: str,
    vehicles: list[tuple[SimVehicle, bool]],
    zone: Zone,
    reserve_minutes: int,
    now: int,
) -> Document:
    """One GBFS 2.3 document; ``vehicles`` are the ones to list, each with ``is_reserved``."""
    plan = kind.plan
    ttl = _STATUS_TTL if feed == "free_bike_status" else _STATIC_TTL
    data: Document
    if feed == "gbfs":
        feeds = [{"name": name, "url": f"{base_url}/gbfs/{name}.json"} for name in GBFS_FEEDS]
        data = {"en": {"feeds": feeds}}
    elif feed == "gbfs_versions":
        data = {"versions": [{"version": GBFS_VERSION, "url": f"{base_url}/gbfs/gbfs.json"}]}
    elif feed == "system_information":
        data = {
            "system_id": system_id,
            "language": "en",
            "name": f"TOMP simulator ({kind.name})",
            "operator": "Simulated Transport Operator",
            "timezone": "Europe/Amsterdam",
        }
    elif feed == "vehicle_types":
        data = {
            "vehicle_types": [
                {
                    "vehicle_type_id": kind.vehicle_type_id,
                    "form_factor": kind.form_factor,
                    "propulsion_type": "electric",
                    "max_range_meters": kind.max_range_m,
                    "name": kind.type_name,
                    "default_reserve_time": reserve_minutes,
                    "return_constraint": "free_floating",
                    "default_pricing_plan_id": plan.plan_id,
                    "pricing_plan_ids": [plan.plan_id],
                }
            ]
        }
    elif feed == "free_bike_status":
        data = {
            "bikes": [
                {
                    "bike_id": vehicle.vehicle_id,
                    "lat": vehicle.lat,
                    "lon": vehicle.lon,
                    "is_reserved": reserved,
                    "is_disabled": False,
                    "vehicle_type_id": kind.vehicle_type_id,
                    "current_range_meters": vehicle.range_m,
                    "last_reported": vehicle.last_reported,
                    "pricing_plan_id": plan.plan_id,
                }
                for vehicle, reserved in vehicles
            ]
        }
    elif feed == "system_pricing_plans":
        document: Document = {
            "plan_id": plan.plan_id,
            "name": plan.name,
            "currency": plan.currency,
            "price": major_units(plan.price_minor, plan.currency),
            "is_taxable": False,
            "description": plan.description,
        }
        if plan.per_min:
            document["per_min_pricing"] = _segments(plan.per_min, plan.currency)
        if plan.per_km:
            document["per_km_pricing"] = _segments(plan.per_km, plan.currency)
        data = {"plans": [document]}
    elif feed == "geofencing_zones":
        feature = {
            "type": "Feature",
            "geometry": {"type": "MultiPolygon", "coordinates": [[[list(p) for p in zone.ring]]]},
            "properties": {
                "name": zone.name,
                "rules": [
                    {
                        "vehicle_type_id": [kind.vehicle_type_id],
                        # v2.3: one flag for starting and ending an undocked ride here.
                        "ride_allowed": False,
                        "ride_through_allowed": True,
                        "maximum_speed_kph": 15,
                        "station_parking": False,
                    }
                ],
            },
        }
        data = {"geofencing_zones": {"type": "FeatureCollection", "features": [feature]}}
    else:
        raise KeyError(feed)
    return {"last_updated": now, "ttl": ttl, "version": GBFS_VERSION, "data": data}
