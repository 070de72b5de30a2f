"""Whether a rider may take a vehicle now, decided before any operator is called (step 2 of
the reserve flow, ``app/booking/reserve.py``): the vehicle exists and the caller may see it,
it is enabled and free, and the rider is eligible for its kind (``app/booking/eligibility.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking import outcomes as out
from app.booking.eligibility import EligibilityRules, LicenceStatus, refusals
from app.booking.schemas import RiderLike
from app.models import PricingPlan, Provider, VehicleType
from app.platform.errors import InvalidInput
from app.platform.vocabulary import FormFactor
from app.search import repository as search_repository
from app.vehicle_index import VehicleDoc

__all__ = ["Candidate", "find_vehicle", "refusal"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A vehicle the caller may see, with what its booking keeps of its operator, its type
    and its pricing plan."""

    vehicle: VehicleDoc
    provider: Provider
    vtype: VehicleType | None
    plan: PricingPlan | None


async def find_vehicle(
    sessions: async_sessionmaker[AsyncSession],
    vehicle_id: str,
    *,
    allowed_orgs: frozenset[uuid.UUID],
    for_organisation: bool,
) -> Candidate | None:
    """The vehicle, None if it is not there as far as this caller knows. A vehicle of an
    organisation's private fleet (one of ``allowed_orgs``) is booked for that organisation
    only (``for_organisation``), or ``ORGANISATION_REQUIRED``."""
    async with sessions() as session:
        hit = await search_repository.vehicle_by_id(session, vehicle_id)
        provider = await session.get(Provider, hit.vehicle.provider_id) if hit else None
        vtype = (
            await session.get(VehicleType, hit.vehicle.vehicle_type_id)
            if hit and hit.vehicle.vehicle_type_id
            else None
        )
        plan = (
            await session.get(PricingPlan, hit.vehicle.pricing_plan_id)
            if hit and hit.vehicle.pricing_plan_id
            else None
        )
    if (
        hit is None
        or provider is None
        or (
            # Another organisation's private fleet: not there, as far as this caller knows.
            provider.private_to is not None and provider.private_to not in allowed_orgs
        )
    ):
        return None
    if provider.private_to is not None and not for_organisation:
        # A pool vehicle is the organisation's: booked for it, within its policy.
        raise InvalidInput(
            "this vehicle is your organisation's: book it with organisationId",
            code="ORGANISATION_REQUIRED",
        )
    return Candidate(hit.vehicle, provider, vtype, plan)


def refusal(
    rules: EligibilityRules,
    rider: RiderLike,
    vehicle_id: str,
    vehicle: VehicleDoc,
    now: datetime,
) -> out.Outcome | None:
    """Why this rider may not take this vehicle now; None: they may."""
    if vehicle.is_disabled:
        return out.VehicleUnavailable(vehicle_id, "DISABLED", "the vehicle is disabled")
    if vehicle.is_reserved:
        return out.VehicleUnavailable(vehicle_id, "RESERVED", "someone else has this vehicle")
    form_factor = FormFactor(vehicle.form_factor)
    refused = refusals(
        rules,
        form_factor,
        licence=LicenceStatus(str(getattr(rider.licence_status, "value", rider.licence_status))),
        birth_date=rider.birth_date,
        today=now.date(),
    )
    if not refused:
        return None
    return out.NotEligible(
        form_factor.value,
        tuple((r.code, r.message) for r in refused),
        "; ".join(r.message for r in refused),
    )
