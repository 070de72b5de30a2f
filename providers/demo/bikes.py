"""``demo-bikes``: GBFS 3.0 station-based bikes and e-bikes at 25 stations in central Berlin."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from providers.demo.documents import Context, Document, feed_table, price_segment, pricing_plan
from providers.demo.geometry import token
from providers.demo.operators import BIKES, EPOCH_SECONDS

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


def _bikes_vehicle_types(ctx: Context) -> Document:
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


def _bikes_pricing_plans(ctx: Context) -> Document:
    return {
        "plans": [
            pricing_plan(
                ctx,
                "bike-30min",
                name=("City bike", "Stadtrad"),
                description=(
                    "1.50 EUR for the first 30 minutes, then 1.00 EUR per started 30 minutes.",
                    "1,50 EUR für die ersten 30 Minuten, danach 1,00 EUR je angefangene "
                    "30 Minuten.",
                ),
                price=1.5,
                per_min=[price_segment(30, 1.0, 30)],
            ),
            pricing_plan(
                ctx,
                "ebike-minute",
                name=("E-bike", "E-Bike"),
                description=(
                    "1.00 EUR to unlock, then 0.15 EUR per minute.",
                    "1,00 EUR Entsperrgebühr, danach 0,15 EUR pro Minute.",
                ),
                price=1.0,
                per_min=[price_segment(0, 0.15, 1)],
            ),
        ]
    }


def _bikes_station_information(ctx: Context) -> Document:
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


def _bikes_station_status(ctx: Context) -> Document:
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


def _bikes_vehicle_status(ctx: Context) -> Document:
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
            vehicle_id = token(ctx.seed, BIKES, sid, type_id, disabled, dock, generation)
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


BIKE_FEEDS: Final = feed_table(
    _BIKES_DOMAIN,
    "demobikes",
    {
        "vehicle_types": _bikes_vehicle_types,
        "station_information": _bikes_station_information,
        "station_status": _bikes_station_status,
        "vehicle_status": _bikes_vehicle_status,
        "system_pricing_plans": _bikes_pricing_plans,
    },
)
