"""Judging a trip against the policy that applies to it: :func:`violations` (pure), and
:func:`check_trip`, which reads that policy and the member's spend this month
(:func:`month_spent`) from the database first."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.booking.states import ACTIVE, BookingState
from app.fleet.policies.rules import EffectivePolicy, PolicyRule, TripCheck, Violation
from app.fleet.policies.storage import effective_policy
from app.fleet.principal import OrgNotFound
from app.models import Booking, Organisation
from app.platform.vocabulary import currency_exponent


@lru_cache(maxsize=256)
def _prepared_area(wkb: bytes) -> BaseGeometry:
    # Keyed by the geometry's bytes, so an edited policy gets a new entry and a stale one
    # simply ages out; preparing builds the spatial index that makes each test cheap.
    geom = shapely.from_wkb(wkb)
    shapely.prepare(geom)
    return geom


def _money(amount_minor: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    value = Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))
    return f"{value} {currency}"


def _listed(values: Iterable[object]) -> str:
    return ", ".join(sorted(str(v) for v in values)) or "none"


def violations(policy: EffectivePolicy, trip: TripCheck) -> list[Violation]:
    """Every rule ``trip`` breaks, in rule order (empty: allowed)."""
    if trip.at.tzinfo is None:
        raise ValueError("TripCheck.at must be timezone-aware")
    found: list[Violation] = []
    if policy.allowed_form_factors is not None and (
        trip.form_factor not in policy.allowed_form_factors
    ):
        found.append(
            Violation(
                PolicyRule.FORM_FACTOR,
                # In the API's spelling (SCOOTER_STANDING), not GBFS's: riders and admins read it.
                f"form factor {trip.form_factor.upper()} is not allowed "
                f"(allowed: {_listed(f.upper() for f in policy.allowed_form_factors)})",
            )
        )
    if policy.allowed_providers is not None and trip.provider_id not in policy.allowed_providers:
        found.append(
            Violation(
                PolicyRule.PROVIDER,
                f"provider {trip.provider_id} is not allowed "
                f"(allowed: {_listed(policy.allowed_providers)})",
            )
        )
    if policy.max_price is not None:
        limit = policy.max_price
        if trip.estimated_price_minor is None or trip.currency is None:
            found.append(
                Violation(
                    PolicyRule.MAX_PRICE,
                    f"the price of this trip cannot be estimated, so the maximum of "
                    f"{_money(limit.amount_minor, limit.currency)} cannot be checked",
                )
            )
        elif trip.currency != limit.currency:
            found.append(
                Violation(
                    PolicyRule.MAX_PRICE,
                    f"the estimate is in {trip.currency} and the maximum in {limit.currency}: "
                    "they cannot be compared",
                )
            )
        elif trip.estimated_price_minor > limit.amount_minor:
            found.append(
                Violation(
                    PolicyRule.MAX_PRICE,
                    f"the estimated price {_money(trip.estimated_price_minor, trip.currency)} is "
                    f"over the maximum of {_money(limit.amount_minor, limit.currency)}",
                )
            )
    local = trip.at.astimezone(ZoneInfo(trip.timezone))
    if policy.hours is not None and not policy.hours.contains(local.time()):
        found.append(
            Violation(
                PolicyRule.HOURS,
                f"{local:%H:%M} ({trip.timezone}) is outside the allowed hours "
                f"{policy.hours.start:%H:%M}-{policy.hours.end:%H:%M}",
            )
        )
    if policy.allowed_weekdays is not None and local.isoweekday() not in policy.allowed_weekdays:
        found.append(
            Violation(
                PolicyRule.WEEKDAYS,
                f"{local:%A} (ISO {local.isoweekday()}, {trip.timezone}) is not an allowed "
                f"weekday (allowed: {_listed(policy.allowed_weekdays)})",
            )
        )
    if policy.business_area is not None:
        if trip.lat is None or trip.lon is None:
            found.append(
                Violation(PolicyRule.BUSINESS_AREA, "the position is unknown, so not in the area")
            )
        elif not _prepared_area(policy.business_area).covers(Point(trip.lon, trip.lat)):
            found.append(
                Violation(
                    PolicyRule.BUSINESS_AREA,
                    f"({trip.lat:.6f}, {trip.lon:.6f}) is outside the allowed business area",
                )
            )
    if policy.monthly_budget is not None:
        budget = policy.monthly_budget
        estimate = trip.estimated_price_minor or 0
        if trip.estimated_price_minor is not None and trip.currency != budget.currency:
            found.append(
                Violation(
                    PolicyRule.MONTHLY_BUDGET,
                    f"the estimate is in {trip.currency} and the budget in {budget.currency}: "
                    "they cannot be compared",
                )
            )
        elif trip.month_spent_minor + estimate > budget.amount_minor:
            found.append(
                Violation(
                    PolicyRule.MONTHLY_BUDGET,
                    f"{_money(trip.month_spent_minor, budget.currency)} spent this month plus "
                    f"this trip's {_money(estimate, budget.currency)} is over the monthly "
                    f"budget of {_money(budget.amount_minor, budget.currency)}",
                )
            )
    return found


def month_bounds(at: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The calendar month containing ``at`` in ``timezone``, as [start, end) in UTC."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    start = datetime(local.year, local.month, 1, tzinfo=zone)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    end = datetime(year, month, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


async def month_spent(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    member_user_id: uuid.UUID,
    currency: str,
    at: datetime,
    timezone: str,
) -> int:
    """What the member has spent for the organisation in ``at``'s month (organisation's time
    zone), in ``currency``: the final price of each FINISHED booking that ended this month (its
    estimate when it has no final price), plus the *estimate* of each active booking (PENDING,
    CONFIRMED, STARTED, PAUSED), whenever it began: money already committed must count, or
    several parallel reservations could each fit the budget. Bookings in other currencies are
    not counted (no conversion); cancelled, expired, rejected and failed ones cost nothing."""
    start, end = month_bounds(at, timezone)
    finished = (
        (Booking.state == BookingState.FINISHED.value)
        & (Booking.ended_at >= start)
        & (Booking.ended_at < end)
    )
    active = Booking.state.in_([s.value for s in ACTIVE])
    amount = func.coalesce(
        func.sum(func.coalesce(Booking.final_price_minor, Booking.estimated_price_minor)).filter(
            finished
        ),
        0,
    ) + func.coalesce(func.sum(Booking.estimated_price_minor).filter(active), 0)
    spent = await session.scalar(
        select(amount).where(
            Booking.organisation_id == organisation_id,
            Booking.user_id == member_user_id,
            Booking.currency == currency,
            or_(finished, active),
        )
    )
    return int(spent or 0)


async def check_trip(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    cost_centre_id: uuid.UUID | None,
    member_user_id: uuid.UUID,
    provider_id: str,
    form_factor: str,
    estimated_price_minor: int | None,
    currency: str | None,
    lat: float | None,
    lon: float | None,
    at: datetime,
) -> list[Violation]:
    """Every policy rule a trip of ``member_user_id`` for the organisation breaks; empty when
    it may go ahead. Called before reserving (start position) and at endTrip (the end point:
    there only ``BUSINESS_AREA`` is meant, and the booking's own estimate already counts as
    active spend)."""
    timezone = await session.scalar(
        select(Organisation.timezone).where(Organisation.id == organisation_id)
    )
    if timezone is None:
        raise OrgNotFound(f"no organisation {organisation_id}")
    policy = await effective_policy(session, organisation_id, cost_centre_id)
    spent = 0
    if policy.monthly_budget is not None:
        spent = await month_spent(
            session,
            organisation_id=organisation_id,
            member_user_id=member_user_id,
            currency=policy.monthly_budget.currency,
            at=at,
            timezone=timezone,
        )
    return violations(
        policy,
        TripCheck(
            provider_id=provider_id,
            form_factor=form_factor,
            estimated_price_minor=estimated_price_minor,
            currency=currency,
            at=at,
            timezone=timezone,
            lat=lat,
            lon=lon,
            month_spent_minor=spent,
        ),
    )
