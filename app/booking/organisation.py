"""Booking for an organisation (issue 6): who may book for which member and charge which cost
centre, and the organisation's travel policy, checked before any operator call.

A refusal by the policy is the request's answer and is reported to the organisation
(``policy.violation`` in the outbox) in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import Rider
from app.booking import idempotency as idem
from app.booking import outcomes as out
from app.booking import repository
from app.booking.effects import emit_policy_violation
from app.booking.schemas import OrgBooking
from app.fleet.access import BOOKERS
from app.fleet.organisations import cost_centre_of, member_of
from app.fleet.policies import check_trip
from app.fleet.principal import OrgActor
from app.models import User
from app.platform.db import transaction
from app.platform.errors import InvalidInput
from app.staff_auth import Forbidden
from app.vehicle_index import VehicleDoc

__all__ = ["OnBehalf", "on_behalf", "policy_refusal"]


@dataclass(frozen=True, slots=True)
class OnBehalf:
    """Who a booking for an organisation is for, how it is charged, and whose its
    idempotency key is."""

    rider: Rider
    org: OrgBooking
    owner: str


async def on_behalf(
    sessions: async_sessionmaker[AsyncSession],
    actor: OrgActor,
    *,
    member_id: uuid.UUID | None,
    cost_centre_id: uuid.UUID | None,
) -> OnBehalf:
    """A booking by ``actor`` for a member of its organisation (``member_id`` None: the acting
    member themselves), charged to ``cost_centre_id`` (default: the member's)."""
    async with sessions() as session:
        if member_id is None:
            if actor.user_id is None:
                raise InvalidInput(
                    "an API key books for a member: give onBehalfOf",
                    code="ON_BEHALF_OF_REQUIRED",
                )
            member = await repository.member_of_user(session, actor.organisation_id, actor.user_id)
        else:
            if actor.api_key is None and actor.role not in BOOKERS:
                raise Forbidden("booking for someone else needs the OWNER, ADMIN or BOOKER role")
            member = await member_of(session, actor.organisation_id, member_id)
        if cost_centre_id is not None:
            await cost_centre_of(session, actor.organisation_id, cost_centre_id)
            if (
                actor.api_key is None
                and actor.role not in BOOKERS
                and cost_centre_id != member.cost_centre_id
            ):
                # A cost centre's policy may be looser: a rider charges their own only.
                raise Forbidden("charging another cost centre needs a BOOKER role or above")
        user = await session.get(User, member.user_id)
        assert user is not None
    org = OrgBooking(
        organisation_id=actor.organisation_id,
        cost_centre_id=cost_centre_id or member.cost_centre_id,
        booked_by_user_id=actor.user_id,
        booked_by_api_key_id=actor.api_key.key_id if actor.api_key else None,
    )
    owner = f"key:{actor.api_key.key_id}" if actor.api_key else f"user:{actor.user_id}"
    return OnBehalf(Rider.from_user(user), org, owner)


async def policy_refusal(
    sessions: async_sessionmaker[AsyncSession],
    org: OrgBooking,
    rider_id: uuid.UUID,
    vehicle: VehicleDoc,
    estimated_price: tuple[int, str] | None,
    now: datetime,
    claimed: idem.Claimed,
) -> out.Outcome | None:
    """The organisation's policy, before any operator call; a refusal is answered and
    reported (``policy.violation`` in the outbox, in the answer's transaction)."""
    async with sessions() as session:
        found = await check_trip(
            session,
            organisation_id=org.organisation_id,
            cost_centre_id=org.cost_centre_id,
            member_user_id=rider_id,
            provider_id=vehicle.provider_id,
            form_factor=vehicle.form_factor,
            estimated_price_minor=estimated_price[0] if estimated_price else None,
            currency=estimated_price[1] if estimated_price else None,
            lat=vehicle.lat,
            lon=vehicle.lon,
            at=now,
        )
    if not found:
        return None
    outcome = out.PolicyViolated(
        tuple((str(v.policy), v.detail) for v in found),
        "; ".join(v.detail for v in found),
    )
    async with transaction(sessions) as session:
        await emit_policy_violation(
            session,
            org,
            member_user_id=rider_id,
            vehicle_id=vehicle.id,
            provider_id=vehicle.provider_id,
            violations=outcome.violations,
            at=now,
        )
        await idem.complete(session, claimed, out.to_json(outcome))
    return outcome
