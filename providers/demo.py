"""The demo operators for ``make run``: three Berlin operators whose GBFS feeds we write ourselves.

This module owns the demo fleet: ``demo-cars`` (GBFS 3.0 free-floating car sharing),
``demo-scooters`` (GBFS 2.3 free-floating e-scooters) and ``demo-bikes`` (GBFS 3.0 station-based
bikes), all around Alexanderplatz, and the :class:`FeedServer` routes that publish them.

Every document is a pure function of ``(seed, epoch)`` with ``epoch = int(now // 30)``: the map
is alive (vehicles are relocated, rented and returned, ids rotate after trips as GBFS requires,
station counts drift) yet any moment can be reproduced exactly, which the tests rely on.
Nothing here reads a clock; callers pass ``now``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, TypeAlias
from zoneinfo import ZoneInfo

from geo.areas import BBox
from providers.simulators.feed_server import FeedServer

__all__ = [
    "BERLIN_BOX",
    "CENTRE",
    "DEMO_PROVIDERS",
    "EPOCH_SECONDS",
    "DemoProvider",
    "build_demo_feed_server",
    "demo_document",
    "demo_documents",
    "epoch_of",
]

Document: TypeAlias = dict[str, Any]
LonLat: TypeAlias = tuple[float, float]
Ring: TypeAlias = tuple[LonLat, ...]

EPOCH_SECONDS: Final = 30
TTL_SECONDS: Final = 30
# Reference data (system information, types, prices, zones, stations) only changes when this
# module does; dating it to the hour instead of the epoch keeps its bytes stable, so pollers
# get 304s from the demo server the way they would from a real operator.
STATIC_PERIOD_SECONDS: Final = 3600

#: Alexanderplatz.
CENTRE: Final[tuple[float, float]] = (52.5219, 13.4132)
_BERLIN: Final = ZoneInfo("Europe/Berlin")
_METRES_PER_DEGREE_LAT: Final = 111_320.0


#: Central Berlin (Mitte, Prenzlauer Berg, Friedrichshain, Kreuzberg): every demo point is inside.
BERLIN_BOX: Final = BBox(min_lat=52.48, min_lon=13.34, max_lat=52.56, max_lon=13.49)


@dataclass(frozen=True)
class DemoProvider:
    slug: str
    name: str
    #: GBFS feed name -> URL path on the feed server; includes ``gbfs`` (the discovery file).
    feed_paths: dict[str, str]
    gbfs_version: str = "3.0"

    @property
    def discovery_path(self) -> str:
        return self.feed_paths["gbfs"]


def _feed_paths(slug: str, feeds: tuple[str, ...]) -> dict[str, str]:
    return {feed: f"/{slug}/{feed}.json" for feed in feeds}


CARS: Final = "demo-cars"
SCOOTERS: Final = "demo-scooters"
BIKES: Final = "demo-bikes"

DEMO_PROVIDERS: Final[tuple[DemoProvider, ...]] = (
    DemoProvider(
        slug=CARS,
        name="Demo CarShare",
        gbfs_version="3.0",
        feed_paths=_feed_paths(
            CARS,
            (
                "gbfs",
                "system_information",
                "vehicle_types",
                "vehicle_status",
                "system_pricing_plans",
                "geofencing_zones",
            ),
        ),
    ),
    DemoProvider(
        slug=SCOOTERS,
        name="Demo Scoot",
        gbfs_version="2.3",
        feed_paths=_feed_paths(
            SCOOTERS,
            (
                "gbfs",
                "system_information",
                "vehicle_types",
                "free_bike_status",
                "system_pricing_plans",
                "geofencing_zones",
            ),
        ),
    ),
    DemoProvider(
        slug=BIKES,
        name="Demo Bikes",
        gbfs_version="3.0",
        feed_paths=_feed_paths(
            BIKES,
            (
                "gbfs",
                "system_information",
                "vehicle_types",
                "station_information",
                "station_status",
                "vehicle_status",
                "system_pricing_plans",
            ),
        ),
    ),
)

_PROVIDERS_BY_SLUG: Final = {provider.slug: provider for provider in DEMO_PROVIDERS}
_DEFAULT_SEEDS: Final = {CARS: 5221, SCOOTERS: 5222, BIKES: 5223}

# Feeds whose content changes with the epoch; everything else is reference data.
_DYNAMIC_FEEDS: Final = frozenset({"vehicle_status", "free_bike_status", "station_status"})


def epoch_of(now: float) -> int:
    return int(now // EPOCH_SECONDS)


# -- geometry --------------------------------------------------------------------------------------


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """Move by metres on a local flat approximation: exact enough over a few kilometres."""
    return (
        lat + north_m / _METRES_PER_DEGREE_LAT,
        lon + east_m / (_METRES_PER_DEGREE_LAT * math.cos(math.radians(lat))),
    )


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    north = (b[0] - a[0]) * _METRES_PER_DEGREE_LAT
    east = (b[1] - a[1]) * _METRES_PER_DEGREE_LAT * math.cos(math.radians(a[0]))
    return math.hypot(north, east)


def _inside(ring: Ring, lat: float, lon: float) -> bool:
    """Ray casting point-in-polygon on a closed (lon, lat) ring."""
    inside = False
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _closed(points: list[LonLat]) -> Ring:
    return (*points, points[0])


def _circle(centre: tuple[float, float], radius_m: float, sides: int = 16) -> Ring:
    """A regular polygon, counter-clockwise as RFC 7946 wants exterior rings."""
    points = []
    for i in range(sides):
        angle = 2 * math.pi * i / sides
        lat, lon = _offset(*centre, radius_m * math.sin(angle), radius_m * math.cos(angle))
        points.append((round(lon, 6), round(lat, 6)))
    return _closed(points)


def _multipolygon(ring: Ring) -> Document:
    return {"type": "MultiPolygon", "coordinates": [[[list(point) for point in ring]]]}


# Hand-drawn outlines (lon, lat), counter-clockwise.
_MUSEUM_ISLAND: Final = _closed(
    [
        (13.3955, 52.5228),
        (13.3975, 52.5182),
        (13.4010, 52.5164),
        (13.4036, 52.5174),
        (13.4016, 52.5214),
        (13.3986, 52.5236),
    ]
)
_ALEXANDERPLATZ_PEDESTRIAN: Final = _closed(
    [(13.4098, 52.5211), (13.4156, 52.5210), (13.4161, 52.5233), (13.4114, 52.5241)]
)
_VOLKSPARK_FRIEDRICHSHAIN: Final = _closed(
    [(13.4265, 52.5262), (13.4395, 52.5252), (13.4402, 52.5300), (13.4290, 52.5312)]
)
_CAR_BUSINESS_AREA: Final = _circle(CENTRE, 3_500.0)


def _sample_point(
    rng: random.Random,
    around: tuple[float, float],
    radius_m: float,
    excluded: tuple[Ring, ...],
    fallback: tuple[float, float],
) -> tuple[float, float]:
    """A uniform point within ``radius_m`` of ``around``, outside every ``excluded`` ring."""
    for _ in range(64):
        distance = radius_m * math.sqrt(rng.random())
        angle = rng.uniform(0.0, 2 * math.pi)
        lat, lon = _offset(*around, distance * math.sin(angle), distance * math.cos(angle))
        if not any(_inside(ring, lat, lon) for ring in excluded):
            return lat, lon
    return fallback  # practically unreachable: the exclusions are small next to the radius


def _token(*parts: object) -> str:
    """A stable random-looking id: GBFS wants vehicle ids that reveal nothing."""
    text = ":".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


# -- documents: shared shape -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    provider: DemoProvider
    seed: int
    epoch: int
    now: float
    base_url: str

    @property
    def v3(self) -> bool:
        return self.provider.gbfs_version.startswith("3")

    @property
    def epoch_time(self) -> int:
        return self.epoch * EPOCH_SECONDS

    def timestamp(self, seconds: int) -> int | str:
        """GBFS Timestamp: POSIX seconds up to 2.3, RFC 3339 (local offset) from 3.0."""
        if not self.v3:
            return seconds
        return datetime.fromtimestamp(seconds, _BERLIN).isoformat()

    def text(self, en: str, de: str | None = None) -> list[Document] | str:
        """A v3 localized string (every listed language present) or a plain v2 string."""
        if not self.v3:
            return en
        return [{"text": en, "language": "en"}, {"text": de or en, "language": "de"}]

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def envelope(self, feed: str, data: Document) -> Document:
        if feed in _DYNAMIC_FEEDS:
            updated = self.epoch_time
        else:
            updated = int(self.now // STATIC_PERIOD_SECONDS) * STATIC_PERIOD_SECONDS
        return {
            "last_updated": self.timestamp(updated),
            "ttl": TTL_SECONDS,
            "version": self.provider.gbfs_version,
            "data": data,
        }


def _gbfs(ctx: _Context) -> Document:
    feeds = [
        {"name": feed, "url": ctx.url(path)}
        for feed, path in ctx.provider.feed_paths.items()
        if feed != "gbfs"
    ]
    # v3 dropped the language level of the discovery file; v2 keys it by language.
    return {"feeds": feeds} if ctx.v3 else {"en": {"feeds": feeds}}


def _system_information(ctx: _Context, *, operator_domain: str, app_id: str) -> Document:
    site = f"https://{operator_domain}"
    data: Document = {
        "system_id": ctx.provider.slug,
        "name": ctx.text(ctx.provider.name),
        "operator": ctx.text("Demo Mobility Berlin GmbH"),
        "url": f"{site}/",
        "purchase_url": f"{site}/signup",
        "start_date": "2024-03-01",
        "phone_number": "+4930120045600",
        "email": f"support@{operator_domain}",
        "feed_contact_email": f"feeds@{operator_domain}",
        "timezone": "Europe/Berlin",
        "license_url": f"{site}/open-data-license",
        "terms_url": ctx.text(f"{site}/en/terms", f"{site}/de/agb"),
        "terms_last_updated": "2024-03-01",
        "privacy_url": ctx.text(f"{site}/en/privacy", f"{site}/de/datenschutz"),
        "privacy_last_updated": "2024-03-01",
        "rental_apps": {
            "android": {
                "store_uri": f"https://play.google.com/store/apps/details?id=com.example.{app_id}",
                "discovery_uri": f"{app_id}://",
            },
            "ios": {
                "store_uri": "https://apps.apple.com/app/id6400000001",
                "discovery_uri": f"{app_id}://",
            },
        },
    }
    if ctx.v3:
        data["languages"] = ["en", "de"]
        data["opening_hours"] = "24/7"  # OSM opening_hours syntax
    else:
        data["language"] = "en"
    return data


def _rule(
    ctx: _Context,
    *,
    start: bool,
    end: bool,
    through: bool,
    max_kph: int | None = None,
    vehicle_type_ids: list[str] | None = None,
) -> Document:
    if ctx.v3:
        rule: Document = {
            "ride_start_allowed": start,
            "ride_end_allowed": end,
            "ride_through_allowed": through,
        }
        if vehicle_type_ids is not None:
            rule["vehicle_type_ids"] = vehicle_type_ids
    else:
        # v2.3 has one flag for start and end of a free-floating ride.
        rule = {"ride_allowed": start and end, "ride_through_allowed": through}
        if vehicle_type_ids is not None:
            rule["vehicle_type_id"] = vehicle_type_ids
    if max_kph is not None:
        rule["maximum_speed_kph"] = max_kph
    return rule


def _zone(ctx: _Context, name_en: str, name_de: str, ring: Ring, rules: list[Document]) -> Document:
    return {
        "type": "Feature",
        "geometry": _multipolygon(ring),
        "properties": {"name": ctx.text(name_en, name_de), "rules": rules},
    }


def _pricing_plan(
    ctx: _Context,
    plan_id: str,
    *,
    name: tuple[str, str],
    description: tuple[str, str],
    price: float,
    per_min: list[Document],
    per_km: list[Document] | None = None,
) -> Document:
    plan: Document = {
        "plan_id": plan_id,
        "name": ctx.text(*name),
        "currency": "EUR",
        "price": price,
        # German consumer prices include VAT.
        "is_taxable": False,
        "description": ctx.text(*description),
        "per_min_pricing": per_min,
    }
    if per_km:
        plan["per_km_pricing"] = per_km
    return plan


def _segment(start: int, rate: float, interval: int, end: int | None = None) -> Document:
    segment: Document = {"start": start, "rate": rate, "interval": interval}
    if end is not None:
        segment["end"] = end
    return segment


# -- free-floating fleets ------------------------------------------------------------------------


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


_FLEETS: Final = {
    CARS: _FleetSpec(
        type_counts=(("car-electric", 26), ("car-petrol", 20), ("car-hybrid", 14)),
        max_range_m={"car-electric": 400_000.0, "car-petrol": 650_000.0, "car-hybrid": 800_000.0},
        radius_m=2_700.0,
        drift_m=200.0,
        periods=(6, 20),
        trip_share=0.3,
        excluded=(_ALEXANDERPLATZ_PEDESTRIAN, _MUSEUM_ISLAND),
        fallback=(52.5170, 13.4200),
    ),
    SCOOTERS: _FleetSpec(
        type_counts=(("scooter-standing", 300), ("scooter-seated", 12)),
        max_range_m={"scooter-standing": 45_000.0, "scooter-seated": 60_000.0},
        radius_m=2_800.0,
        drift_m=150.0,
        periods=(4, 16),
        trip_share=0.35,
        excluded=(_MUSEUM_ISLAND, _VOLKSPARK_FRIEDRICHSHAIN),
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
    share = _FLEETS[slug].trip_share
    return random.Random(f"{seed}:{slug}:{slot}:trip:{segment}").random() < share


@lru_cache(maxsize=16)
def _fleet(slug: str, seed: int, epoch: int) -> tuple[_Vehicle, ...]:
    """Every vehicle of a free-floating operator that is not in a rental at ``epoch``.

    Each vehicle slot stays put for a segment of ``period`` epochs. A new segment is either a
    relocation (same id, moved a few hundred metres: staff rebalancing, GPS fixes) or a trip:
    the vehicle is rented for the first epoch of the segment, then reappears elsewhere under a
    new id. Charge drains with every segment and is topped up when it runs low.
    """
    spec = _FLEETS[slug]
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
    lat, lon = _sample_point(trip_rng, CENTRE, spec.radius_m, spec.excluded, spec.fallback)
    if segment != last_trip:
        drift_rng = random.Random(f"{seed}:{slug}:{slot}:drift:{segment}")
        lat, lon = _sample_point(drift_rng, (lat, lon), spec.drift_m, spec.excluded, (lat, lon))

    # Sawtooth between 1.0 and 0.15: each segment uses some charge, then the vehicle is refilled.
    fuel = round(1.0 - (fuel_phase + 0.07 * segment) % 0.85, 2)
    # Someone booked it ahead of the trip that starts next epoch.
    reserved = into_segment == period - 1 and _is_trip(seed, slug, slot, segment + 1)
    return _Vehicle(
        vehicle_id=_token(seed, slug, slot, last_trip),
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


def _fleet_vehicles(ctx: _Context, *, app_id: str, domain: str) -> list[Document]:
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
        documents.append(document)
    return documents


# -- demo-cars (GBFS 3.0, free-floating car sharing) ---------------------------------------------

_CARS_DOMAIN: Final = "demo-cars.example"
_CARS_APP: Final = "democarshare"


def _car_type(
    ctx: _Context,
    type_id: str,
    *,
    propulsion: str,
    name: tuple[str, str],
    make: str,
    model: str,
    co2: int,
) -> Document:
    vehicle_type: Document = {
        "vehicle_type_id": type_id,
        "form_factor": "car",
        "propulsion_type": propulsion,
        "name": ctx.text(*name),
        "make": ctx.text(make),
        "model": ctx.text(model),
        "rider_capacity": 5,
        "wheel_count": 4,
        "max_range_meters": _FLEETS[CARS].max_range_m[type_id],
        "vehicle_accessories": ["air_conditioning", "automatic", "navigation", "doors_5"],
        "g_CO2_km": co2,
        "default_reserve_time": 15,
        "return_constraint": "free_floating",
        "default_pricing_plan_id": type_id,
        "pricing_plan_ids": [type_id],
    }
    if propulsion != "electric":
        # Germany's Umweltplakette: green is what lets a car into the Berlin low-emission zone.
        vehicle_type["eco_labels"] = [{"country_code": "DE", "eco_sticker": "green"}]
    return vehicle_type


def _cars_vehicle_types(ctx: _Context) -> Document:
    return {
        "vehicle_types": [
            _car_type(
                ctx,
                "car-electric",
                propulsion="electric",
                name=("Electric car", "Elektroauto"),
                make="Volkswagen",
                model="ID.3",
                co2=0,
            ),
            _car_type(
                ctx,
                "car-petrol",
                propulsion="combustion",
                name=("Petrol car", "Benziner"),
                make="Volkswagen",
                model="Polo",
                co2=118,
            ),
            _car_type(
                ctx,
                "car-hybrid",
                propulsion="hybrid",
                name=("Hybrid car", "Hybridauto"),
                make="Toyota",
                model="Yaris Hybrid",
                co2=92,
            ),
        ]
    }


def _cars_pricing_plans(ctx: _Context) -> Document:
    def plan(
        type_id: str, label: tuple[str, str], minute: float, later: float, km: float, free_km: int
    ) -> Document:
        return _pricing_plan(
            ctx,
            type_id,
            name=label,
            description=(
                f"1.00 EUR to unlock, {minute:.2f} EUR/min for the first 3 hours and "
                f"{later:.2f} EUR/min after; {free_km} km included, then {km:.2f} EUR/km.",
                f"1,00 EUR Entsperrgebühr, {minute:.2f} EUR/Min. in den ersten 3 Stunden, "
                f"danach {later:.2f} EUR/Min.; {free_km} km inklusive, danach {km:.2f} EUR/km.",
            ),
            price=1.0,
            per_min=[_segment(0, minute, 1, 180), _segment(180, later, 1)],
            per_km=[_segment(free_km, km, 1)],
        )

    return {
        "plans": [
            plan("car-electric", ("Electric", "Elektro"), 0.29, 0.19, 0.19, 200),
            plan("car-petrol", ("Petrol", "Benzin"), 0.34, 0.24, 0.29, 100),
            plan("car-hybrid", ("Hybrid", "Hybrid"), 0.32, 0.22, 0.24, 150),
        ]
    }


def _cars_geofencing_zones(ctx: _Context) -> Document:
    # v3 precedence: the earlier feature wins where zones overlap, then the global rules.
    features = [
        _zone(
            ctx,
            "Alexanderplatz pedestrian zone",
            "Fußgängerzone Alexanderplatz",
            _ALEXANDERPLATZ_PEDESTRIAN,
            [_rule(ctx, start=False, end=False, through=False)],
        ),
        _zone(
            ctx,
            "Museum Island: no parking",
            "Museumsinsel: Parkverbot",
            _MUSEUM_ISLAND,
            [_rule(ctx, start=False, end=False, through=True)],
        ),
        _zone(
            ctx,
            "Business area",
            "Geschäftsgebiet",
            _CAR_BUSINESS_AREA,
            [_rule(ctx, start=True, end=True, through=True)],
        ),
    ]
    return {
        "geofencing_zones": {"type": "FeatureCollection", "features": features},
        # Outside the business area a car may be driven but not parked.
        "global_rules": [_rule(ctx, start=False, end=False, through=True)],
    }


# -- demo-scooters (GBFS 2.3, free-floating e-scooters) ------------------------------------------

_SCOOTERS_DOMAIN: Final = "demo-scoot.example"
_SCOOTERS_APP: Final = "demoscoot"


def _scooters_vehicle_types(ctx: _Context) -> Document:
    def scooter(type_id: str, form_factor: str, name: str, speed: int, seats: int) -> Document:
        return {
            "vehicle_type_id": type_id,
            "form_factor": form_factor,
            "propulsion_type": "electric",
            "name": ctx.text(name),
            "rider_capacity": seats,
            "wheel_count": 2,
            "max_range_meters": _FLEETS[SCOOTERS].max_range_m[type_id],
            "max_permitted_speed": speed,
            "rated_power": 350,
            "default_reserve_time": 10,
            "return_constraint": "free_floating",
            "default_pricing_plan_id": "scoot-standard",
            "pricing_plan_ids": ["scoot-standard"],
        }

    return {
        "vehicle_types": [
            scooter("scooter-standing", "scooter_standing", "Demo Scoot e-scooter", 20, 1),
            scooter("scooter-seated", "scooter_seated", "Demo Scoot seated e-scooter", 20, 1),
        ]
    }


def _scooters_pricing_plans(ctx: _Context) -> Document:
    return {
        "plans": [
            _pricing_plan(
                ctx,
                "scoot-standard",
                name=("Pay as you go", "Minutenpreis"),
                description=("1.00 EUR to unlock, then 0.25 EUR per minute.", ""),
                price=1.0,
                per_min=[_segment(0, 0.25, 1)],
            )
        ]
    }


def _scooters_geofencing_zones(ctx: _Context) -> Document:
    features = [
        _zone(
            ctx,
            "Museum Island and Lustgarten: no parking",
            "",
            _MUSEUM_ISLAND,
            [_rule(ctx, start=False, end=False, through=True)],
        ),
        _zone(
            ctx,
            "Alexanderplatz pedestrian zone: walking speed",
            "",
            _ALEXANDERPLATZ_PEDESTRIAN,
            [_rule(ctx, start=True, end=True, through=True, max_kph=6)],
        ),
        _zone(
            ctx,
            "Volkspark Friedrichshain: no riding",
            "",
            _VOLKSPARK_FRIEDRICHSHAIN,
            [_rule(ctx, start=False, end=False, through=False)],
        ),
    ]
    return {"geofencing_zones": {"type": "FeatureCollection", "features": features}}


# -- demo-bikes (GBFS 3.0, station-based bikes) --------------------------------------------------

_BIKES_DOMAIN: Final = "demo-bikes.example"
_BIKE_MAX_RANGE_M: Final = 70_000.0


@dataclass(frozen=True, slots=True)
class _StationSite:
    station_id: str
    name: str
    lat: float
    lon: float
    address: str
    post_code: str


_STATIONS: Final = tuple(
    _StationSite(f"st-{i + 1:02d}", name, lat, lon, address, post_code)
    for i, (name, lat, lon, address, post_code) in enumerate(
        [
            ("Alexanderplatz", 52.52165, 13.41120, "Alexanderplatz 1", "10178"),
            ("Hackescher Markt", 52.52250, 13.40200, "Neue Promenade 1", "10178"),
            ("Rosenthaler Platz", 52.52970, 13.40140, "Weinbergsweg 1", "10119"),
            ("Jannowitzbrücke", 52.51500, 13.41800, "Holzmarktstraße 1", "10179"),
            ("Rotes Rathaus", 52.51850, 13.40850, "Rathausstraße 15", "10178"),
            ("Nikolaiviertel", 52.51670, 13.40690, "Poststraße 12", "10178"),
            ("Fernsehturm", 52.52080, 13.40940, "Panoramastraße 1", "10178"),
            ("Strausberger Platz", 52.51840, 13.43220, "Strausberger Platz 1", "10243"),
            ("Ostbahnhof", 52.51030, 13.43450, "Koppenstraße 3", "10243"),
            ("Märkisches Museum", 52.51270, 13.41030, "Wallstraße 2", "10179"),
            ("Spittelmarkt", 52.51130, 13.40360, "Spittelmarkt 2", "10117"),
            ("Hausvogteiplatz", 52.51350, 13.39650, "Hausvogteiplatz 3", "10117"),
            ("Gendarmenmarkt", 52.51370, 13.39270, "Markgrafenstraße 36", "10117"),
            ("Friedrichstraße", 52.52030, 13.38690, "Georgenstraße 14", "10117"),
            ("Oranienburger Tor", 52.52540, 13.38740, "Friedrichstraße 105", "10117"),
            ("Nordbahnhof", 52.53220, 13.38860, "Invalidenstraße 1", "10115"),
            ("Rosa-Luxemburg-Platz", 52.52810, 13.41050, "Rosa-Luxemburg-Platz 2", "10178"),
            ("Senefelderplatz", 52.53250, 13.41260, "Schönhauser Allee 10", "10119"),
            ("Weinmeisterstraße", 52.52570, 13.40520, "Rosenthaler Straße 40", "10178"),
            ("Heinrich-Heine-Straße", 52.51070, 13.41620, "Heinrich-Heine-Straße 20", "10179"),
            ("Moritzplatz", 52.50380, 13.41060, "Oranienstraße 64", "10969"),
            ("Schillingstraße", 52.52050, 13.42220, "Karl-Marx-Allee 40", "10178"),
            ("Platz der Vereinten Nationen", 52.52400, 13.43150, "Landsberger Allee 2", "10249"),
            ("Frankfurter Tor", 52.51570, 13.45390, "Karl-Marx-Allee 130", "10243"),
            ("Bernauer Straße", 52.53750, 13.39600, "Brunnenstraße 50", "10115"),
        ]
    )
)


@dataclass(frozen=True, slots=True)
class _StationState:
    site: _StationSite
    capacity: int
    bikes: int
    ebikes: int
    vehicles_disabled: int
    docks_available: int
    docks_disabled: int
    in_service: bool
    last_reported: int

    @property
    def vehicles_available(self) -> int:
        return self.bikes + self.ebikes


def _station_capacity(seed: int, site: _StationSite) -> tuple[int, random.Random]:
    params = random.Random(f"{seed}:{BIKES}:station:{site.station_id}")
    return params.randrange(12, 32, 2), params


@lru_cache(maxsize=16)
def _stations(seed: int, epoch: int) -> tuple[_StationState, ...]:
    states = []
    for index, site in enumerate(_STATIONS):
        capacity, params = _station_capacity(seed, site)
        fill = params.uniform(0.3, 0.7)
        ebike_share = params.uniform(0.2, 0.5)
        period = params.randint(40, 120)  # commuter tides: 20 min to an hour
        phase = params.randrange(period)

        # Breakdowns are re-rolled every ten minutes, not every epoch: a broken dock stays broken.
        health = random.Random(f"{seed}:{BIKES}:{site.station_id}:health:{epoch // 20}")
        docks_disabled = 1 if health.random() < 0.1 else 0
        vehicles_disabled = 1 if health.random() < 0.15 else 0
        usable = capacity - docks_disabled - vehicles_disabled

        jitter = random.Random(f"{seed}:{BIKES}:{site.station_id}:{epoch}").randint(-1, 1)
        wave = math.sin(2 * math.pi * (epoch + phase) / period)
        available = min(usable, max(0, round(capacity * (fill + 0.3 * wave)) + jitter))
        ebikes = round(available * ebike_share)
        states.append(
            _StationState(
                site=site,
                capacity=capacity,
                bikes=available - ebikes,
                ebikes=ebikes,
                vehicles_disabled=vehicles_disabled,
                docks_available=usable - available,
                docks_disabled=docks_disabled,
                # Each station closes for maintenance for half an hour now and then.
                in_service=(epoch // 60 + index) % 40 != 0,
                last_reported=(epoch - (index % 3)) * EPOCH_SECONDS,
            )
        )
    return tuple(states)


def _bikes_vehicle_types(ctx: _Context) -> Document:
    common: Document = {
        "form_factor": "bicycle",
        "rider_capacity": 1,
        "wheel_count": 2,
        "return_constraint": "any_station",
    }
    return {
        "vehicle_types": [
            {
                **common,
                "vehicle_type_id": "bike",
                "propulsion_type": "human",
                "name": ctx.text("City bike", "Stadtrad"),
                "default_pricing_plan_id": "bike-30min",
                "pricing_plan_ids": ["bike-30min"],
            },
            {
                **common,
                "vehicle_type_id": "ebike",
                "propulsion_type": "electric_assist",
                "name": ctx.text("E-bike", "E-Bike"),
                "max_range_meters": _BIKE_MAX_RANGE_M,
                "max_permitted_speed": 25,
                "rated_power": 250,
                "default_pricing_plan_id": "ebike-minute",
                "pricing_plan_ids": ["ebike-minute"],
            },
        ]
    }


def _bikes_pricing_plans(ctx: _Context) -> Document:
    return {
        "plans": [
            _pricing_plan(
                ctx,
                "bike-30min",
                name=("City bike", "Stadtrad"),
                description=(
                    "1.50 EUR for the first 30 minutes, then 1.00 EUR per started 30 minutes.",
                    "1,50 EUR für die ersten 30 Minuten, danach 1,00 EUR je angefangene "
                    "30 Minuten.",
                ),
                price=1.5,
                per_min=[_segment(30, 1.0, 30)],
            ),
            _pricing_plan(
                ctx,
                "ebike-minute",
                name=("E-bike", "E-Bike"),
                description=(
                    "1.00 EUR to unlock, then 0.15 EUR per minute.",
                    "1,00 EUR Entsperrgebühr, danach 0,15 EUR pro Minute.",
                ),
                price=1.0,
                per_min=[_segment(0, 0.15, 1)],
            ),
        ]
    }


def _bikes_station_information(ctx: _Context) -> Document:
    stations = []
    for index, site in enumerate(_STATIONS):
        capacity, _ = _station_capacity(ctx.seed, site)
        stations.append(
            {
                "station_id": site.station_id,
                "name": ctx.text(site.name),
                "short_name": ctx.text(site.station_id.upper()),
                "lat": site.lat,
                "lon": site.lon,
                "address": site.address,
                "post_code": site.post_code,
                "rental_methods": ["key", "creditcard", "phone"],
                "capacity": capacity,
                "is_charging_station": index % 3 == 0,
            }
        )
    return {"stations": stations}


def _bikes_station_status(ctx: _Context) -> Document:
    stations = []
    for state in _stations(ctx.seed, ctx.epoch):
        stations.append(
            {
                "station_id": state.site.station_id,
                "num_vehicles_available": state.vehicles_available,
                "vehicle_types_available": [
                    {"vehicle_type_id": "bike", "count": state.bikes},
                    {"vehicle_type_id": "ebike", "count": state.ebikes},
                ],
                "num_vehicles_disabled": state.vehicles_disabled,
                "num_docks_available": state.docks_available,
                "num_docks_disabled": state.docks_disabled,
                "is_installed": True,
                "is_renting": state.in_service,
                "is_returning": state.in_service,
                "last_reported": ctx.timestamp(state.last_reported),
            }
        )
    return {"stations": stations}


def _bikes_vehicle_status(ctx: _Context) -> Document:
    """Docked vehicles: located by ``station_id`` only, as GBFS allows for vehicles at a station.

    Per station and type there are exactly as many (non-disabled) vehicles as station_status
    counts. Dock ``n`` keeps its bike's id for ~45 minutes, staggered, so ids rotate gradually.
    """
    vehicles = []
    for state in _stations(ctx.seed, ctx.epoch):
        sid = state.site.station_id
        docked = (
            [("bike", False)] * state.bikes
            + [("ebike", False)] * state.ebikes
            + [("bike", True)] * state.vehicles_disabled
        )
        for dock, (type_id, disabled) in enumerate(docked):
            generation = (ctx.epoch + 7 * dock) // 90
            vehicle_id = _token(ctx.seed, BIKES, sid, type_id, disabled, dock, generation)
            vehicle: Document = {
                "vehicle_id": vehicle_id,
                "station_id": sid,
                "is_reserved": False,
                "is_disabled": disabled,
                "vehicle_type_id": type_id,
                "last_reported": ctx.timestamp(state.last_reported),
            }
            if type_id == "ebike":
                charge = random.Random(vehicle_id).uniform(0.3, 1.0)
                vehicle["current_fuel_percent"] = round(charge, 2)
                vehicle["current_range_meters"] = round(charge * _BIKE_MAX_RANGE_M)
            vehicles.append(vehicle)
    return {"vehicles": vehicles}


# -- registry --------------------------------------------------------------------------------------

_Generator: TypeAlias = Callable[[_Context], Document]

_GENERATORS: Final[dict[str, dict[str, _Generator]]] = {
    CARS: {
        "gbfs": _gbfs,
        "system_information": lambda ctx: _system_information(
            ctx, operator_domain=_CARS_DOMAIN, app_id=_CARS_APP
        ),
        "vehicle_types": _cars_vehicle_types,
        "vehicle_status": lambda ctx: {
            "vehicles": _fleet_vehicles(ctx, app_id=_CARS_APP, domain=_CARS_DOMAIN)
        },
        "system_pricing_plans": _cars_pricing_plans,
        "geofencing_zones": _cars_geofencing_zones,
    },
    SCOOTERS: {
        "gbfs": _gbfs,
        "system_information": lambda ctx: _system_information(
            ctx, operator_domain=_SCOOTERS_DOMAIN, app_id=_SCOOTERS_APP
        ),
        "vehicle_types": _scooters_vehicle_types,
        "free_bike_status": lambda ctx: {
            "bikes": _fleet_vehicles(ctx, app_id=_SCOOTERS_APP, domain=_SCOOTERS_DOMAIN)
        },
        "system_pricing_plans": _scooters_pricing_plans,
        "geofencing_zones": _scooters_geofencing_zones,
    },
    BIKES: {
        "gbfs": _gbfs,
        "system_information": lambda ctx: _system_information(
            ctx, operator_domain=_BIKES_DOMAIN, app_id="demobikes"
        ),
        "vehicle_types": _bikes_vehicle_types,
        "station_information": _bikes_station_information,
        "station_status": _bikes_station_status,
        "vehicle_status": _bikes_vehicle_status,
        "system_pricing_plans": _bikes_pricing_plans,
    },
}


def _context(slug: str, now: float, base_url: str, seed: int | None) -> _Context:
    provider = _PROVIDERS_BY_SLUG.get(slug)
    if provider is None:
        raise KeyError(f"unknown demo operator {slug!r}; known: {sorted(_PROVIDERS_BY_SLUG)}")
    return _Context(
        provider=provider,
        seed=_DEFAULT_SEEDS[slug] if seed is None else seed,
        epoch=epoch_of(now),
        now=now,
        base_url=base_url,
    )


def demo_document(
    slug: str, feed: str, now: float, base_url: str, *, seed: int | None = None
) -> Document:
    """One feed document of one demo operator at time ``now``."""
    ctx = _context(slug, now, base_url, seed)
    generator = _GENERATORS[slug].get(feed)
    if generator is None:
        raise KeyError(f"{slug} publishes no {feed!r} feed")
    return ctx.envelope(feed, generator(ctx))


def demo_documents(
    slug: str, now: float, base_url: str, *, seed: int | None = None
) -> dict[str, Document]:
    """Every feed of one demo operator at ``now``: feed name -> document (``gbfs`` included).

    ``base_url`` is where the feed server is reachable; the discovery document's URLs are
    built from it.
    """
    ctx = _context(slug, now, base_url, seed)
    return {feed: ctx.envelope(feed, generate(ctx)) for feed, generate in _GENERATORS[slug].items()}


def build_demo_feed_server(
    base_url_getter: Callable[[], str], clock: Callable[[], float] = time.time
) -> FeedServer:
    """A :class:`FeedServer` publishing all demo operators, generated at request time.

    ``base_url_getter`` is called per request because the port is often only known once the
    server has bound it (port 0).
    """
    server = FeedServer()
    for provider in DEMO_PROVIDERS:
        for feed, path in provider.feed_paths.items():
            server.add_dynamic(path, _route(provider.slug, feed, base_url_getter, clock))
    return server


def _route(
    slug: str, feed: str, base_url_getter: Callable[[], str], clock: Callable[[], float]
) -> Callable[[], Document]:
    def produce() -> Document:
        return demo_document(slug, feed, clock(), base_url_getter())

    return produce
