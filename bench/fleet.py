"""The synthetic fleet: ten European city boxes, eight operators, their types, plans and vehicles.

Everything here is a pure function of ``(count, seed)``: the same arguments give the same
vehicles, byte for byte, on any machine (``random.Random`` is specified to be reproducible across
platforms for a given seed). Nothing reads a clock; ``last_reported`` is relative to a fixed
instant. Rows come out in the column order of the tables in ``migrations/``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from app.vehicle_index import VehicleDoc

GENERATOR: Final = "bench.generate"
# Bump when the generated data changes, so an existing database is regenerated, not reused.
GENERATOR_VERSION: Final = 1

_METRES_PER_DEGREE_LAT: Final = 111_320.0
BOX_SIDE_METRES: Final = 10_000.0
# Fixed, so that the data does not depend on when it was generated.
REPORTED_AT: Final = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class City:
    slug: str
    name: str
    lat: float
    lon: float
    currency: str
    # Local currency minor units per euro cent, to keep plan prices plausible.
    per_euro: float
    timezone: str

    @property
    def half_lat(self) -> float:
        return BOX_SIDE_METRES / 2 / _METRES_PER_DEGREE_LAT

    @property
    def half_lon(self) -> float:
        return self.half_lat / math.cos(math.radians(self.lat))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(min_lat, min_lon, max_lat, max_lon): about 10 km x 10 km around the centre."""
        return (
            self.lat - self.half_lat,
            self.lon - self.half_lon,
            self.lat + self.half_lat,
            self.lon + self.half_lon,
        )


CITIES: Final[tuple[City, ...]] = (
    City("berlin", "Berlin", 52.5200, 13.4050, "EUR", 1.0, "Europe/Berlin"),
    City("paris", "Paris", 48.8566, 2.3522, "EUR", 1.0, "Europe/Paris"),
    City("madrid", "Madrid", 40.4168, -3.7038, "EUR", 1.0, "Europe/Madrid"),
    City("rome", "Rome", 41.9028, 12.4964, "EUR", 1.0, "Europe/Rome"),
    City("amsterdam", "Amsterdam", 52.3676, 4.9041, "EUR", 1.0, "Europe/Amsterdam"),
    City("vienna", "Vienna", 48.2082, 16.3738, "EUR", 1.0, "Europe/Vienna"),
    City("warsaw", "Warsaw", 52.2297, 21.0122, "PLN", 4.3, "Europe/Warsaw"),
    City("prague", "Prague", 50.0755, 14.4378, "CZK", 25.0, "Europe/Prague"),
    City("stockholm", "Stockholm", 59.3293, 18.0686, "SEK", 11.5, "Europe/Stockholm"),
    City("lisbon", "Lisbon", 38.7223, -9.1393, "EUR", 1.0, "Europe/Lisbon"),
)
CITY_BY_SLUG: Final = {c.slug: c for c in CITIES}

# Fleet shares by category; cars are about one vehicle in twenty, as in European fleets.
CATEGORY_SHARES: Final[dict[str, float]] = {
    "scooter": 0.50,
    "bike": 0.30,
    "moped": 0.15,
    "car": 0.05,
}
RESERVED_SHARE: Final = 0.02
DISABLED_SHARE: Final = 0.01
# Part of each city's fleet is clustered around the centre, the rest spread over the box.
CENTRE_SHARE: Final = 0.30
CENTRE_SIGMA_METRES: Final = 1_500.0


@dataclass(frozen=True, slots=True)
class TypeSpec:
    external_id: str
    name: str
    category: str
    form_factor: str
    propulsion_type: str
    max_range_meters: float | None
    weight: float  # share within the operator's vehicles of this category
    rider_capacity: int = 1


@dataclass(frozen=True, slots=True)
class OperatorSpec:
    slug: str
    name: str
    cities: tuple[str, ...]
    types: tuple[TypeSpec, ...]

    @property
    def provider_id(self) -> str:
        return f"bench-{self.slug}"

    def categories(self) -> set[str]:
        return {t.category for t in self.types}


def _t(
    ext: str,
    name: str,
    category: str,
    form_factor: str,
    propulsion: str,
    max_range_km: float | None,
    weight: float,
    riders: int = 1,
) -> TypeSpec:
    km = max_range_km * 1000.0 if max_range_km is not None else None
    return TypeSpec(ext, name, category, form_factor, propulsion, km, weight, riders)


OPERATORS: Final[tuple[OperatorSpec, ...]] = (
    OperatorSpec(
        "skoot",
        "Skoot",
        ("berlin", "paris", "madrid", "rome", "lisbon", "warsaw", "vienna"),
        (
            _t("es4", "Skoot ES4", "scooter", "scooter_standing", "electric", 40, 0.6),
            _t("es5", "Skoot ES5", "scooter", "scooter_standing", "electric", 60, 0.4),
        ),
    ),
    OperatorSpec(
        "whizz",
        "Whizz",
        ("berlin", "amsterdam", "vienna", "prague", "stockholm", "warsaw", "paris"),
        (
            _t("one", "Whizz One", "scooter", "scooter_standing", "electric", 35, 0.8),
            _t("seat", "Whizz Seat", "scooter", "scooter_seated", "electric", 45, 0.2),
        ),
    ),
    OperatorSpec(
        "velo",
        "Velo",
        ("paris", "amsterdam", "vienna", "stockholm", "prague", "berlin"),
        (
            _t("classic", "Velo Classic", "bike", "bicycle", "human", None, 0.6),
            _t("e", "Velo E", "bike", "bicycle", "electric_assist", 70, 0.4),
        ),
    ),
    OperatorSpec(
        "pedal",
        "Pedal",
        ("berlin", "madrid", "rome", "lisbon", "amsterdam", "warsaw"),
        (
            _t("city", "Pedal City", "bike", "bicycle", "human", None, 0.8),
            _t("cargo", "Pedal Cargo", "bike", "cargo_bicycle", "electric_assist", 50, 0.2, 2),
        ),
    ),
    OperatorSpec(
        "mopo",
        "Mopo",
        ("berlin", "paris", "madrid", "rome", "amsterdam", "lisbon"),
        (_t("m1", "Mopo M1", "moped", "moped", "electric", 100, 1.0, 2),),
    ),
    OperatorSpec(
        "drive",
        "Drive",
        ("berlin", "paris", "madrid", "vienna", "warsaw"),
        (
            _t("ev", "Drive EV", "car", "car", "electric", 350, 0.5, 5),
            _t("petrol", "Drive Petrol", "car", "car", "combustion", 600, 0.3, 5),
            _t("hybrid", "Drive Hybrid", "car", "car", "hybrid", 800, 0.2, 5),
        ),
    ),
    OperatorSpec(
        "carla",
        "Carla",
        ("rome", "amsterdam", "prague", "stockholm", "lisbon", "vienna"),
        (
            _t("ev", "Carla EV", "car", "car", "electric", 400, 0.7, 4),
            _t("phev", "Carla PHEV", "car", "car", "plug_in_hybrid", 700, 0.3, 4),
        ),
    ),
    OperatorSpec(
        "zoom",
        "Zoom",
        ("vienna", "warsaw", "prague", "stockholm", "madrid", "rome"),
        (
            _t("kick", "Zoom Kick", "scooter", "scooter_standing", "electric", 45, 1.0),
            _t("ebike", "Zoom E-bike", "bike", "bicycle", "electric_assist", 80, 1.0),
            _t("moped", "Zoom Moped", "moped", "moped", "electric", 90, 1.0, 2),
        ),
    ),
)

# Base prices in euro cents: (unlock fee, per minute, per km after the included distance).
_PRICES: Final[dict[str, tuple[int, int, int]]] = {
    "scooter": (100, 25, 0),
    "bike": (100, 15, 0),
    "moped": (100, 35, 0),
    "car": (0, 39, 29),
}
_CAR_INCLUDED_KM: Final = 200


def plan_external_id(city: str, category: str, tier: str) -> str:
    return f"{city}-{category}-{tier}"


def scoped(provider_id: str, external_id: str) -> str:
    return f"{provider_id}:{external_id}"


# --- reference data ---------------------------------------------------------------------------


def marker(count: int, seed: int) -> dict[str, Any]:
    """What a provider's ``config`` holds, so a later run can tell whether to regenerate."""
    return {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "count": count,
    }


def provider_rows(count: int, seed: int) -> list[tuple[Any, ...]]:
    """(id, name, adapter, config, enabled, gbfs_version, system_info, ttl_seconds)."""
    config = orjson.dumps(marker(count, seed)).decode()
    rows: list[tuple[Any, ...]] = []
    for op in OPERATORS:
        info = {
            "system_id": op.provider_id,
            "name": op.name,
            "timezone": CITY_BY_SLUG[op.cities[0]].timezone,
            "cities": list(op.cities),
        }
        # adapter "bench": not an installed adapter, so a sync that is turned on by mistake
        # fails cleanly (and keeps the data) instead of fetching anything.
        rows.append(
            (op.provider_id, op.name, "bench", config, True, "3.0", orjson.dumps(info).decode(), 60)
        )
    return rows


def _segments(rate: int, *, start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
    return [{"start": start, "rate_minor": rate, "interval": 1, "end": end}]


def pricing_plan_rows() -> list[tuple[Any, ...]]:
    """Two plans per operator, city and category; columns of ``pricing_plans``."""
    rows: list[tuple[Any, ...]] = []
    for op in OPERATORS:
        for city_slug in op.cities:
            city = CITY_BY_SLUG[city_slug]
            for category in sorted(op.categories()):
                unlock, per_min, per_km = _PRICES[category]
                for tier, unlock_factor, minute_factor in (
                    ("standard", 1.0, 1.0),
                    ("saver", 0, 0.8),
                ):
                    ext = plan_external_id(city_slug, category, tier)
                    per_km_segments = (
                        _segments(round(per_km * city.per_euro), start=_CAR_INCLUDED_KM)
                        if per_km
                        else []
                    )
                    rows.append(
                        (
                            scoped(op.provider_id, ext),
                            op.provider_id,
                            ext,
                            f"{op.name} {city.name} {category} {tier}",
                            f"{tier.capitalize()} {category} pricing in {city.name}",
                            city.currency,
                            round(unlock * unlock_factor * city.per_euro),
                            True,
                            orjson.dumps(per_km_segments).decode(),
                            orjson.dumps(
                                _segments(round(per_min * minute_factor * city.per_euro))
                            ).decode(),
                            False,
                            f"https://{op.slug}.example.com/pricing/{ext}",
                        )
                    )
    return rows


def vehicle_type_rows() -> list[tuple[Any, ...]]:
    """Columns of ``vehicle_types``; the default plan is the standard plan of the first city."""
    rows: list[tuple[Any, ...]] = []
    for op in OPERATORS:
        for t in op.types:
            default_plan = scoped(
                op.provider_id, plan_external_id(op.cities[0], t.category, "standard")
            )
            rows.append(
                (
                    scoped(op.provider_id, t.external_id),
                    op.provider_id,
                    t.external_id,
                    t.form_factor,
                    t.propulsion_type,
                    t.name,
                    t.max_range_meters,
                    t.rider_capacity,
                    default_plan,
                    "free_floating",
                    None,
                    15 if t.category == "car" else 10,
                    None,
                )
            )
    return rows


# --- vehicles -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vehicle:
    """One generated vehicle; ``copy_record`` and ``doc`` give its row and its index document."""

    id: str
    provider_id: str
    external_id: str
    vehicle_type_id: str
    pricing_plan_id: str
    lat: float
    lon: float
    form_factor: str
    propulsion_type: str
    is_reserved: bool
    is_disabled: bool
    current_range_meters: float | None
    current_fuel_percent: float | None
    last_reported: datetime

    @property
    def rental_uris(self) -> dict[str, str | None]:
        # Derived rather than stored: a million dicts would cost most of a gigabyte.
        slug = self.provider_id.removeprefix("bench-")
        return {
            "android": f"{slug}://vehicle/{self.external_id}",
            "ios": f"{slug}://vehicle/{self.external_id}",
            "web": f"https://{slug}.example.com/v/{self.external_id}",
        }

    @property
    def is_available(self) -> bool:
        return not self.is_reserved and not self.is_disabled

    def doc(self) -> VehicleDoc:
        return VehicleDoc(
            id=self.id,
            provider_id=self.provider_id,
            form_factor=self.form_factor,
            propulsion_type=self.propulsion_type,
            lat=self.lat,
            lon=self.lon,
            is_reserved=self.is_reserved,
            is_disabled=self.is_disabled,
            vehicle_type_id=self.vehicle_type_id,
            pricing_plan_id=self.pricing_plan_id,
            station_id=None,
            current_range_meters=self.current_range_meters,
            current_fuel_percent=self.current_fuel_percent,
            rental_uris=self.rental_uris,
            last_reported=self.last_reported,
        )


@dataclass(slots=True)
class Fleet:
    count: int
    seed: int
    vehicles: list[Vehicle] = field(default_factory=list)

    @property
    def available(self) -> int:
        return sum(1 for v in self.vehicles if v.is_available)

    def by_provider(self) -> dict[str, list[Vehicle]]:
        out: dict[str, list[Vehicle]] = {op.provider_id: [] for op in OPERATORS}
        for v in self.vehicles:
            out[v.provider_id].append(v)
        return out


@dataclass(frozen=True, slots=True)
class _Choice:
    """Who runs a category in a city, and with which types: precomputed once per fleet."""

    operators: tuple[OperatorSpec, ...]
    types: tuple[tuple[TypeSpec, ...], ...]
    type_weights: tuple[tuple[float, ...], ...]


def _choices() -> dict[tuple[str, str], _Choice]:
    out: dict[tuple[str, str], _Choice] = {}
    for city in CITIES:
        for category in CATEGORY_SHARES:
            ops = tuple(
                op for op in OPERATORS if city.slug in op.cities and category in op.categories()
            )
            if not ops:
                raise AssertionError(f"no operator runs {category} in {city.slug}")
            types = tuple(tuple(t for t in op.types if t.category == category) for op in ops)
            out[(city.slug, category)] = _Choice(
                ops, types, tuple(tuple(t.weight for t in ts) for ts in types)
            )
    return out


def _position(rng: random.Random, city: City) -> tuple[float, float]:
    min_lat, min_lon, max_lat, max_lon = city.box
    if rng.random() < CENTRE_SHARE:
        sigma_lat = CENTRE_SIGMA_METRES / _METRES_PER_DEGREE_LAT
        sigma_lon = sigma_lat / math.cos(math.radians(city.lat))
        while True:  # rejection keeps every vehicle inside its city box
            lat = rng.gauss(city.lat, sigma_lat)
            lon = rng.gauss(city.lon, sigma_lon)
            if min_lat <= lat <= max_lat and min_lon <= lon <= max_lon:
                break
    else:
        lat = rng.uniform(min_lat, max_lat)
        lon = rng.uniform(min_lon, max_lon)
    # 7 decimals (about a centimetre), as operators publish them; also makes every coordinate
    # round-trip exactly through JSON, Redis and PostGIS.
    return round(lat, 7), round(lon, 7)


def generate_fleet(count: int, seed: int) -> Fleet:
    rng = random.Random(seed)
    choices = _choices()
    categories = list(CATEGORY_SHARES)
    category_weights = list(CATEGORY_SHARES.values())
    counters = {op.provider_id: 0 for op in OPERATORS}
    fleet = Fleet(count=count, seed=seed)
    append = fleet.vehicles.append
    for i in range(count):
        # Round-robin over cities gives every city the same fleet size (same density).
        city = CITIES[i % len(CITIES)]
        category = rng.choices(categories, category_weights)[0]
        choice = choices[(city.slug, category)]
        k = rng.randrange(len(choice.operators))
        op = choice.operators[k]
        vtype = rng.choices(choice.types[k], choice.type_weights[k])[0]
        lat, lon = _position(rng, city)
        counters[op.provider_id] += 1
        ext = f"{city.slug[:3]}{counters[op.provider_id]:07d}"
        tier = "saver" if rng.random() < 0.15 else "standard"
        if vtype.max_range_meters is not None:
            charge = round(rng.uniform(0.05, 1.0), 2)
            range_m: float | None = round(vtype.max_range_meters * charge, -1)
            fuel: float | None = charge
        else:
            range_m = fuel = None
        r = rng.random()
        provider_id = op.provider_id
        append(
            Vehicle(
                id=scoped(provider_id, ext),
                provider_id=provider_id,
                external_id=ext,
                vehicle_type_id=scoped(provider_id, vtype.external_id),
                pricing_plan_id=scoped(provider_id, plan_external_id(city.slug, category, tier)),
                lat=lat,
                lon=lon,
                form_factor=vtype.form_factor,
                propulsion_type=vtype.propulsion_type,
                is_reserved=r < RESERVED_SHARE,
                is_disabled=RESERVED_SHARE <= r < RESERVED_SHARE + DISABLED_SHARE,
                current_range_meters=range_m,
                current_fuel_percent=fuel,
                last_reported=REPORTED_AT - timedelta(seconds=rng.randrange(300)),
            )
        )
    return fleet


def chunks(items: Sequence[Vehicle], size: int) -> Iterator[Sequence[Vehicle]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- query points ----------------------------------------------------------------------------


def query_points(count: int, seed: int) -> list[tuple[float, float]]:
    """Uniform random (lat, lon) inside the city boxes, cities in turn: where people search."""
    # A separate stream from the fleet's, so changing the fleet size leaves the points alone.
    rng = random.Random(f"points:{seed}")
    points: list[tuple[float, float]] = []
    for i in range(count):
        min_lat, min_lon, max_lat, max_lon = CITIES[i % len(CITIES)].box
        points.append(
            (round(rng.uniform(min_lat, max_lat), 6), round(rng.uniform(min_lon, max_lon), 6))
        )
    rng.shuffle(points)
    return points
