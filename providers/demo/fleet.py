"""The free-floating fleets (``demo-cars``, ``demo-scooters``): where each vehicle is at an epoch.

Each vehicle slot is relocated now and then or rented (and then reappears elsewhere under a new
id); :func:`fleet_vehicles` gives the fleet as GBFS ``vehicle_status`` / ``free_bike_status``
entries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from providers.demo.documents import Context, Document
from providers.demo.geometry import (
    ALEXANDERPLATZ_PEDESTRIAN,
    MUSEUM_ISLAND,
    VOLKSPARK_FRIEDRICHSHAIN,
    Ring,
    sample_point,
    token,
)
from providers.demo.operators import CARS, CENTRE, EPOCH_SECONDS, SCOOTERS


@dataclass(frozen=True, slots=True)
class _FleetSpec:
    type_counts: tuple[tuple[str, int], ...]  # vehicle_type_id, number of vehicles
    max_range_m: dict[str, float]
    radius_m: float  # trips end within this distance of the centre
    drift_m: float  # relocations stay within this distance of where the last trip ended
    periods: tuple[int, int]  # epochs a vehicle stays put: inclusive bounds
    trip_share: float  # share of moves that are trips (new id) rather than relocations
    excluded: tuple[Ring, ...]  # nowhere to park: vehicles are never placed inside
    fallback: tuple[float, float]  # a known-good parking spot


@dataclass(frozen=True, slots=True)
class _Vehicle:
    vehicle_id: str
    vehicle_type_id: str
    lat: float
    lon: float
    is_reserved: bool
    is_disabled: bool
    fuel: float  # 0..1
    range_m: float
    last_reported: int  # POSIX seconds


FLEETS: Final = {
    CARS: _FleetSpec(
        type_counts=(("car-electric", 26), ("car-petrol", 20), ("car-hybrid", 14)),
        max_range_m={"car-electric": 400_000.0, "car-petrol": 650_000.0, "car-hybrid": 800_000.0},
        radius_m=2_700.0,
        drift_m=200.0,
        periods=(6, 20),
        trip_share=0.3,
        excluded=(ALEXANDERPLATZ_PEDESTRIAN, MUSEUM_ISLAND),
        fallback=(52.5170, 13.4200),
    ),
    SCOOTERS: _FleetSpec(
        type_counts=(("scooter-standing", 300), ("scooter-seated", 12)),
        max_range_m={"scooter-standing": 45_000.0, "scooter-seated": 60_000.0},
        radius_m=2_800.0,
        drift_m=150.0,
        periods=(4, 16),
        trip_share=0.35,
        excluded=(MUSEUM_ISLAND, VOLKSPARK_FRIEDRICHSHAIN),
        fallback=(52.5170, 13.4200),
    ),
}

# Every this many segments a move is always a trip, so finding the last trip is a bounded
# backward scan and never a walk from epoch 0.
_FORCED_TRIP_EVERY: Final = 8
# Below this charge a vehicle is pulled from rental until it is recharged.
_LOW_FUEL: Final = 0.18


def _is_trip(seed: int, slug: str, slot: int, segment: int) -> bool:
    if segment % _FORCED_TRIP_EVERY == 0:
        return True
    share = FLEETS[slug].trip_share
    return random.Random(f"{seed}:{slug}:{slot}:trip:{segment}").random() < share


@lru_cache(maxsize=16)
def _fleet(slug: str, seed: int, epoch: int) -> tuple[_Vehicle, ...]:
    """Every vehicle of a free-floating operator that is not in a rental at ``epoch``.

    Each vehicle slot stays put for a segment of ``period`` epochs. A new segment is either a
    relocation (same id, moved a few hundred metres: staff rebalancing, GPS fixes) or a trip:
    the vehicle is rented for the first epoch of the segment, then reappears elsewhere under a
    new id. Charge drains with every segment and is topped up when it runs low.
    """
    spec = FLEETS[slug]
    vehicles = []
    slot = 0
    for vehicle_type_id, count in spec.type_counts:
        for _ in range(count):
            vehicle = _vehicle_at(spec, slug, seed, slot, vehicle_type_id, epoch)
            if vehicle is not None:
                vehicles.append(vehicle)
            slot += 1
    return tuple(vehicles)


def _vehicle_at(
    spec: _FleetSpec, slug: str, seed: int, slot: int, vehicle_type_id: str, epoch: int
) -> _Vehicle | None:
    params = random.Random(f"{seed}:{slug}:slot:{slot}")
    period = params.randint(*spec.periods)
    phase = params.randrange(period)
    fuel_phase = params.random()

    segment, into_segment = divmod(epoch + phase, period)
    trip = _is_trip(seed, slug, slot, segment)
    if trip and into_segment == 0:
        return None  # being ridden

    last_trip = next(
        s
        for s in range(segment, segment - _FORCED_TRIP_EVERY - 1, -1)
        if _is_trip(seed, slug, slot, s)
    )
    trip_rng = random.Random(f"{seed}:{slug}:{slot}:dest:{last_trip}")
    lat, lon = sample_point(trip_rng, CENTRE, spec.radius_m, spec.excluded, spec.fallback)
    if segment != last_trip:
        drift_rng = random.Random(f"{seed}:{slug}:{slot}:drift:{segment}")
        lat, lon = sample_point(drift_rng, (lat, lon), spec.drift_m, spec.excluded, (lat, lon))

    # Sawtooth between 1.0 and 0.15: each segment uses some charge, then the vehicle is refilled.
    fuel = round(1.0 - (fuel_phase + 0.07 * segment) % 0.85, 2)
    # Someone booked it ahead of the trip that starts next epoch.
    reserved = into_segment == period - 1 and _is_trip(seed, slug, slot, segment + 1)
    return _Vehicle(
        vehicle_id=token(seed, slug, slot, last_trip),
        vehicle_type_id=vehicle_type_id,
        lat=round(lat, 6),
        lon=round(lon, 6),
        is_reserved=reserved,
        is_disabled=fuel < _LOW_FUEL,
        fuel=fuel,
        range_m=round(fuel * spec.max_range_m[vehicle_type_id]),
        last_reported=(epoch - into_segment) * EPOCH_SECONDS,
    )


def _rental_uris(app_id: str, domain: str, vehicle_id: str) -> Document:
    return {
        "android": f"{app_id}://rent?vehicle_id={vehicle_id}",
        "ios": f"{app_id}://rent?vehicle_id={vehicle_id}",
        "web": f"https://{domain}/rent?vehicle_id={vehicle_id}",
    }


# What a demo car has on board (GBFS vehicle_equipment, v2.3+), chosen by its id so that it
# stays the same from one sync to the next: a few with child seats, most with winter tyres.
_CAR_EQUIPMENT: Final[tuple[list[str], ...]] = (
    ["child_seat_a", "winter_tires"],
    ["winter_tires"],
    ["child_seat_b", "child_seat_c", "winter_tires"],
    [],
)


def car_equipment(vehicle_id: str) -> list[str]:
    """The demo car's equipment: deterministic in its id (not Python's salted hash)."""
    return list(_CAR_EQUIPMENT[sum(vehicle_id.encode()) % len(_CAR_EQUIPMENT)])


def fleet_vehicles(
    ctx: Context, *, app_id: str, domain: str, equipped: bool = False
) -> list[Document]:
    """The operator's vehicles as its vehicle_status (v3) or free_bike_status (v2) lists them;
    ``equipped``: each also says what it has on board (the demo cars)."""
    documents = []
    for vehicle in _fleet(ctx.provider.slug, ctx.seed, ctx.epoch):
        document: Document = {
            ("vehicle_id" if ctx.v3 else "bike_id"): vehicle.vehicle_id,
            "lat": vehicle.lat,
            "lon": vehicle.lon,
            "is_reserved": vehicle.is_reserved,
            "is_disabled": vehicle.is_disabled,
            "vehicle_type_id": vehicle.vehicle_type_id,
            "last_reported": ctx.timestamp(vehicle.last_reported),
            "current_range_meters": vehicle.range_m,
            "current_fuel_percent": vehicle.fuel,
            "rental_uris": _rental_uris(app_id, domain, vehicle.vehicle_id),
        }
        if equipped:
            document["vehicle_equipment"] = car_equipment(vehicle.vehicle_id)
        documents.append(document)
    return documents
