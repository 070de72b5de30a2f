"""GraphQL enums. The domain enums *are* the GraphQL enums: member names (BICYCLE,
SCOOTER_STANDING, ...) are what clients see, values are what GBFS and the database hold.
Every module that uses them imports them from here, so they are registered exactly once."""

from __future__ import annotations

import strawberry

from app.health import HealthStatus
from app.platform.vocabulary import FormFactor, PropulsionType, VehicleEquipment

strawberry.enum(
    FormFactor,
    description="GBFS form factor; the deprecated `scooter` is reported as SCOOTER_STANDING.",
)
strawberry.enum(PropulsionType, description="GBFS propulsion type.")
strawberry.enum(
    VehicleEquipment,
    description="GBFS vehicle equipment: what the operator provides besides what every vehicle "
    "of the type has.",
)
strawberry.enum(
    HealthStatus,
    name="ProviderHealthStatus",
    description="OK; DEGRADED: fresh data, but the latest sync failed or found errors; STALE: "
    "data older than the staleness limit (its vehicles are hidden from search); DOWN: stale and "
    "failing repeatedly; DISABLED: switched off by staff.",
)

# Dictionary lookups: Enum(value) is several times slower, and runs for every vehicle listed.
FORM_FACTORS = {m.value: m for m in FormFactor}
PROPULSION_TYPES = {m.value: m for m in PropulsionType}
VEHICLE_EQUIPMENT = {m.value: m for m in VehicleEquipment}


def form_factor(value: str) -> FormFactor:
    return FORM_FACTORS[value]


def propulsion_type(value: str) -> PropulsionType:
    return PROPULSION_TYPES[value]


def vehicle_equipment(values: list[str] | None) -> list[VehicleEquipment] | None:
    return None if values is None else [VEHICLE_EQUIPMENT[v] for v in values]


__all__ = [
    "FORM_FACTORS",
    "PROPULSION_TYPES",
    "VEHICLE_EQUIPMENT",
    "FormFactor",
    "HealthStatus",
    "PropulsionType",
    "VehicleEquipment",
    "form_factor",
    "propulsion_type",
    "vehicle_equipment",
]
