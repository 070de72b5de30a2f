"""GraphQL enums. The domain enums *are* the GraphQL enums: member names (BICYCLE,
SCOOTER_STANDING, ...) are what clients see, values are what GBFS and the database hold.
Every module that uses them imports them from here, so they are registered exactly once."""

from __future__ import annotations

import strawberry

from app.vocabulary import FormFactor, PropulsionType

strawberry.enum(
    FormFactor,
    description="GBFS form factor; the deprecated `scooter` is reported as SCOOTER_STANDING.",
)
strawberry.enum(PropulsionType, description="GBFS propulsion type.")

__all__ = ["FormFactor", "PropulsionType"]
