"""Ride-end rules: where a ride may end, checked before the operator is asked to end it.

The operator's own zones (GBFS geofencing, the same answer ``rideEndCheck`` gives, from
:mod:`app.search.ride_end`) and, for an organisation's booking, its policy's business area.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking import outcomes as out
from app.fleet.policies import PolicyRule, check_trip
from app.models import Booking
from app.search import repository as search_repository
from app.search.ride_end import RideEndQuestion, ride_end_check

__all__ = ["ride_end_refusal"]


async def ride_end_refusal(
    sessions: async_sessionmaker[AsyncSession],
    booking: Booking,
    lat: float,
    lon: float,
    clock: Callable[[], datetime],
) -> out.RideEndNotAllowed | out.PolicyViolated | None:
    """Why the ride may not end at (``lat``, ``lon``), or None: it may."""
    refusal = await _outside_operator_zones(sessions, booking, lat, lon)
    if refusal is not None:
        return refusal
    if booking.organisation_id is not None:
        return await _outside_business_area(sessions, booking, lat, lon, clock())
    return None


async def _outside_operator_zones(
    sessions: async_sessionmaker[AsyncSession], booking: Booking, lat: float, lon: float
) -> out.RideEndNotAllowed | None:
    async with sessions() as session:
        if booking.vehicle_type_id:
            types = await search_repository.vehicle_types_by_ids(session, [booking.vehicle_type_id])
            known_type = booking.vehicle_type_id in types
        else:
            known_type = False
        question = RideEndQuestion(
            lat=lat,
            lon=lon,
            vehicle_type_id=booking.vehicle_type_id if known_type else None,
            provider_id=None if known_type else booking.provider_id,
            form_factor=None if known_type else booking.form_factor,
        )
        answer = await ride_end_check(session, question)
    if answer.allowed:
        return None
    zone = answer.zone
    return out.RideEndNotAllowed(
        zone.id if zone else None,
        zone.name if zone else None,
        answer.reason,
    )


async def _outside_business_area(
    sessions: async_sessionmaker[AsyncSession],
    booking: Booking,
    lat: float,
    lon: float,
    now: datetime,
) -> out.PolicyViolated | None:
    """An organisation's ride must also end inside its business area (the policy's other
    rules were checked when it was booked; its own estimate already counts as spent)."""
    assert booking.organisation_id is not None
    async with sessions() as session:
        found = await check_trip(
            session,
            organisation_id=booking.organisation_id,
            cost_centre_id=booking.cost_centre_id,
            member_user_id=booking.user_id,
            provider_id=booking.provider_id,
            form_factor=booking.form_factor,
            estimated_price_minor=booking.estimated_price_minor,
            currency=booking.currency,
            lat=lat,
            lon=lon,
            at=now,
        )
    area = [v for v in found if v.policy is PolicyRule.BUSINESS_AREA]
    if not area:
        return None
    return out.PolicyViolated(
        tuple((str(v.policy), v.detail) for v in area), "; ".join(v.detail for v in area)
    )
