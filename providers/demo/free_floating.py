"""The free-floating operators' documents: ``demo-cars`` (GBFS 3.0 car sharing: electric, petrol
and hybrid cars) and ``demo-scooters`` (GBFS 2.3 e-scooters, standing and seated), each with its
feed table. Where their vehicles are is :mod:`providers.demo.fleet`'s.
"""

from __future__ import annotations

from typing import Final

from providers.demo.documents import (
    Context,
    Document,
    feed_table,
    price_segment,
    pricing_plan,
    zone,
    zone_rule,
)
from providers.demo.fleet import FLEETS, fleet_vehicles
from providers.demo.geometry import (
    ALEXANDERPLATZ_PEDESTRIAN,
    MUSEUM_ISLAND,
    VOLKSPARK_FRIEDRICHSHAIN,
    circle,
)
from providers.demo.operators import CARS, CENTRE, SCOOTERS

# -- demo-cars (GBFS 3.0, free-floating car sharing) ---------------------------------------------

_CARS_DOMAIN: Final = "demo-cars.example"
_CARS_APP: Final = "democarshare"
_CAR_BUSINESS_AREA: Final = circle(CENTRE, 3_500.0)


def _car_type(
    ctx: Context,
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
        "max_range_meters": FLEETS[CARS].max_range_m[type_id],
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


def _cars_vehicle_types(ctx: Context) -> Document:
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


def _cars_pricing_plans(ctx: Context) -> Document:
    def plan(
        type_id: str, label: tuple[str, str], minute: float, later: float, km: float, free_km: int
    ) -> Document:
        return pricing_plan(
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
            per_min=[price_segment(0, minute, 1, 180), price_segment(180, later, 1)],
            per_km=[price_segment(free_km, km, 1)],
        )

    return {
        "plans": [
            plan("car-electric", ("Electric", "Elektro"), 0.29, 0.19, 0.19, 200),
            plan("car-petrol", ("Petrol", "Benzin"), 0.34, 0.24, 0.29, 100),
            plan("car-hybrid", ("Hybrid", "Hybrid"), 0.32, 0.22, 0.24, 150),
        ]
    }


def _cars_geofencing_zones(ctx: Context) -> Document:
    # v3 precedence: the earlier feature wins where zones overlap, then the global rules.
    features = [
        zone(
            ctx,
            "Alexanderplatz pedestrian zone",
            "Fußgängerzone Alexanderplatz",
            ALEXANDERPLATZ_PEDESTRIAN,
            [zone_rule(ctx, start=False, end=False, through=False)],
        ),
        zone(
            ctx,
            "Museum Island: no parking",
            "Museumsinsel: Parkverbot",
            MUSEUM_ISLAND,
            [zone_rule(ctx, start=False, end=False, through=True)],
        ),
        zone(
            ctx,
            "Business area",
            "Geschäftsgebiet",
            _CAR_BUSINESS_AREA,
            [zone_rule(ctx, start=True, end=True, through=True)],
        ),
    ]
    return {
        "geofencing_zones": {"type": "FeatureCollection", "features": features},
        # Outside the business area a car may be driven but not parked.
        "global_rules": [zone_rule(ctx, start=False, end=False, through=True)],
    }


CAR_FEEDS: Final = feed_table(
    _CARS_DOMAIN,
    _CARS_APP,
    {
        "vehicle_types": _cars_vehicle_types,
        "vehicle_status": lambda ctx: {
            "vehicles": fleet_vehicles(ctx, app_id=_CARS_APP, domain=_CARS_DOMAIN, equipped=True)
        },
        "system_pricing_plans": _cars_pricing_plans,
        "geofencing_zones": _cars_geofencing_zones,
    },
)


# -- demo-scooters (GBFS 2.3, free-floating e-scooters) ------------------------------------------

_SCOOTERS_DOMAIN: Final = "demo-scoot.example"
_SCOOTERS_APP: Final = "demoscoot"


def _scooters_vehicle_types(ctx: Context) -> Document:
    def scooter(type_id: str, form_factor: str, name: str, speed: int, seats: int) -> Document:
        return {
            "vehicle_type_id": type_id,
            "form_factor": form_factor,
            "propulsion_type": "electric",
            "name": ctx.text(name),
            "rider_capacity": seats,
            "wheel_count": 2,
            "max_range_meters": FLEETS[SCOOTERS].max_range_m[type_id],
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


def _scooters_pricing_plans(ctx: Context) -> Document:
    return {
        "plans": [
            pricing_plan(
                ctx,
                "scoot-standard",
                name=("Pay as you go", "Minutenpreis"),
                description=("1.00 EUR to unlock, then 0.25 EUR per minute.", ""),
                price=1.0,
                per_min=[price_segment(0, 0.25, 1)],
            )
        ]
    }


def _scooters_geofencing_zones(ctx: Context) -> Document:
    features = [
        zone(
            ctx,
            "Museum Island and Lustgarten: no parking",
            "",
            MUSEUM_ISLAND,
            [zone_rule(ctx, start=False, end=False, through=True)],
        ),
        zone(
            ctx,
            "Alexanderplatz pedestrian zone: walking speed",
            "",
            ALEXANDERPLATZ_PEDESTRIAN,
            [zone_rule(ctx, start=True, end=True, through=True, max_kph=6)],
        ),
        zone(
            ctx,
            "Volkspark Friedrichshain: no riding",
            "",
            VOLKSPARK_FRIEDRICHSHAIN,
            [zone_rule(ctx, start=False, end=False, through=False)],
        ),
    ]
    return {"geofencing_zones": {"type": "FeatureCollection", "features": features}}


SCOOTER_FEEDS: Final = feed_table(
    _SCOOTERS_DOMAIN,
    _SCOOTERS_APP,
    {
        "vehicle_types": _scooters_vehicle_types,
        "free_bike_status": lambda ctx: {
            "bikes": fleet_vehicles(ctx, app_id=_SCOOTERS_APP, domain=_SCOOTERS_DOMAIN)
        },
        "system_pricing_plans": _scooters_pricing_plans,
        "geofencing_zones": _scooters_geofencing_zones,
    },
)
