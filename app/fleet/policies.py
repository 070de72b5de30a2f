"""An organisation's travel policy: storing it, merging the cost centre's override into it, and
checking a trip against it before any operator is called.

Rules (each one optional; a missing rule restricts nothing):

- ``FORM_FACTOR`` / ``PROVIDER``: the allowed form factors / provider ids.
- ``MAX_PRICE``: the highest *estimated* price of one trip, in one currency.
- ``HOURS``: ``allowed_from`` (inclusive) to ``allowed_until`` (exclusive), local time of the
  organisation's time zone. ``from > until`` is a window across midnight (22:00-06:00).
- ``WEEKDAYS``: ISO weekdays (1 = Monday ... 7 = Sunday) of the local calendar day of the moment
  checked. It is judged independently of ``HOURS``: with Mon-Fri and 22:00-06:00, Saturday 02:00
  breaks the weekday rule (it is Saturday there) although it is inside the night window.
- ``BUSINESS_AREA``: a (multi)polygon in WGS 84 the position must lie in; a point exactly on its
  boundary counts as inside (shapely ``covers``, PostGIS ``ST_Covers``).
- ``MONTHLY_BUDGET``: per member, in one currency (the same column as the maximum price's).

A cost centre's policy overrides the organisation's *rule by rule*: each rule the cost centre
sets replaces the organisation's rule, each rule it leaves unset (NULL) is inherited. ``HOURS``
is one rule (from and until travel together), and each money rule carries the currency of the
policy it comes from. A cost centre therefore cannot *remove* an organisation rule, only replace
it (with a wider one if it likes: all weekdays, every form factor).

Money is never converted: an estimate in another currency than the rule's is a violation that
says the two cannot be compared, because accepting it would let any trip past the limit.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import shapely
from geoalchemy2.shape import from_shape, to_shape
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Point, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.booking.states import ACTIVE, BookingState
from app.errors import InvalidInput
from app.fleet.principal import OrgActor, OrgNotFound
from app.models import Booking, CostCentre, Organisation, Policy
from app.staff_auth import Forbidden
from app.vocabulary import FormFactor, currency_exponent

__all__ = [
    "EffectivePolicy",
    "HoursWindow",
    "MoneyLimit",
    "PolicyRule",
    "TripCheck",
    "Violation",
    "area_geojson",
    "check_trip",
    "effective_policy",
    "get_policy",
    "merge",
    "month_bounds",
    "month_spent",
    "parse_area",
    "rules_of",
    "set_policy",
    "violations",
]

T = TypeVar("T")

INVALID = "INVALID_POLICY"
# A business area is a company's service region, not a coastline: this many vertices is plenty,
# and a bound keeps one request from storing (and every check from testing) megabytes.
MAX_AREA_VERTICES = 10_000


class PolicyRule(StrEnum):
    FORM_FACTOR = "FORM_FACTOR"
    PROVIDER = "PROVIDER"
    MAX_PRICE = "MAX_PRICE"
    HOURS = "HOURS"
    WEEKDAYS = "WEEKDAYS"
    BUSINESS_AREA = "BUSINESS_AREA"
    MONTHLY_BUDGET = "MONTHLY_BUDGET"


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule the trip breaks, with a sentence saying how."""

    policy: PolicyRule
    detail: str


@dataclass(frozen=True, slots=True)
class MoneyLimit:
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class HoursWindow:
    start: time  # inclusive
    end: time  # exclusive; earlier than start: the window runs across midnight

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """The rules that apply to one trip, after the cost centre's override. None: no rule."""

    allowed_form_factors: frozenset[str] | None = None
    allowed_providers: frozenset[str] | None = None
    max_price: MoneyLimit | None = None
    allowed_weekdays: frozenset[int] | None = None
    hours: HoursWindow | None = None
    # WKB of a MultiPolygon in EPSG:4326: hashable, so its prepared geometry can be cached.
    business_area: bytes | None = None
    monthly_budget: MoneyLimit | None = None


@dataclass(frozen=True, slots=True)
class TripCheck:
    provider_id: str
    form_factor: str
    estimated_price_minor: int | None
    currency: str | None
    at: datetime  # timezone-aware
    timezone: str  # the organisation's IANA zone
    lat: float | None
    lon: float | None
    # The member's spend this month in the monthly budget's currency (see month_spent).
    month_spent_minor: int = 0


# ---------------------------------------------------------------- validation


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, code=INVALID)


def _currency(value: str) -> str:
    code = value.strip().upper()
    try:
        currency_exponent(code)
    except ValueError:
        raise _invalid(f"currency must be an ISO 4217 code such as EUR, not {value!r}") from None
    return code


def _amount(value: int, what: str) -> int:
    if value < 0:
        raise _invalid(f"{what} cannot be negative")
    if value >= 2**63:
        raise _invalid(f"{what} is too large")
    return value


def _form_factors(values: Iterable[str]) -> list[str]:
    known = {f.value for f in FormFactor}
    out = sorted({str(v) for v in values})
    unknown = [v for v in out if v not in known]
    if unknown:
        raise _invalid(f"unknown form factors: {', '.join(unknown)}")
    return out


def _providers(values: Iterable[str]) -> list[str]:
    # Not checked against the providers table: a policy may name an operator before this
    # deployment aggregates it, and a provider removed later must not invalidate the policy.
    out = sorted({v.strip() for v in values})
    if any(not v or len(v) > 100 for v in out):
        raise _invalid("a provider id is 1-100 characters")
    return out


def _weekdays(values: Iterable[int]) -> list[int]:
    out = sorted(set(values))
    if any(not 1 <= d <= 7 for d in out):
        raise _invalid("weekdays are ISO numbers: 1 (Monday) to 7 (Sunday)")
    return out


def _hours(start: time | None, end: time | None) -> tuple[time | None, time | None]:
    if (start is None) != (end is None):
        raise _invalid("give both allowedFrom and allowedUntil, or neither")
    if start is None or end is None:
        return None, None
    if start.tzinfo is not None or end.tzinfo is not None:
        raise _invalid("allowed hours are local times of the organisation, without an offset")
    if start == end:
        # Empty or the whole day? Neither reading is safe to guess: leave both unset for all day.
        raise _invalid("allowedFrom and allowedUntil are equal; leave both unset for all day")
    return start, end


def _ring_ok(coords: Sequence[tuple[float, ...]]) -> bool:
    return all(
        math.isfinite(c[0]) and math.isfinite(c[1]) and -180 <= c[0] <= 180 and -90 <= c[1] <= 90
        for c in coords
    )


def parse_area(geojson: Mapping[str, Any]) -> MultiPolygon:
    """A GeoJSON Polygon or MultiPolygon (lon, lat in WGS 84) as a valid shapely MultiPolygon."""
    if not isinstance(geojson, Mapping) or geojson.get("type") not in ("Polygon", "MultiPolygon"):
        raise _invalid("businessArea must be a GeoJSON Polygon or MultiPolygon")
    try:
        geom = shapely.force_2d(shape(geojson))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, GEOSException) as exc:
        raise _invalid(f"businessArea is not readable GeoJSON: {exc}") from None
    polygons = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    if not polygons or geom.is_empty:
        raise _invalid("businessArea is empty")
    vertices = 0
    for polygon in polygons:
        if not isinstance(polygon, Polygon):
            raise _invalid("businessArea must consist of polygons")
        for ring in (polygon.exterior, *polygon.interiors):
            coords = list(ring.coords)
            vertices += len(coords)
            if not _ring_ok(coords):
                raise _invalid("businessArea coordinates are [lon, lat] within WGS 84 ranges")
    if vertices > MAX_AREA_VERTICES:
        raise _invalid(f"businessArea has more than {MAX_AREA_VERTICES} vertices")
    if not geom.is_valid:
        raise _invalid(f"businessArea is not a valid polygon: {shapely.is_valid_reason(geom)}")
    if geom.area <= 0:
        raise _invalid("businessArea has no area")
    return MultiPolygon(polygons)


def area_geojson(wkb: bytes | None) -> dict[str, Any] | None:
    return None if wkb is None else dict(mapping(shapely.from_wkb(wkb)))


def _wkb(value: Any) -> bytes | None:
    """The stored geometry (GeoAlchemy2's WKBElement) as plain WKB."""
    return None if value is None else bytes(shapely.to_wkb(to_shape(value)))


# ---------------------------------------------------------------- storage


def _require_admin(actor: OrgActor) -> None:
    if actor.api_key is not None:
        raise Forbidden("API keys cannot change policies; sign in as an organisation admin")
    if not actor.is_admin:
        raise Forbidden("this needs the OWNER or ADMIN role in the organisation")


async def _check_cost_centre(
    session: AsyncSession, organisation_id: uuid.UUID, cost_centre_id: uuid.UUID
) -> None:
    found = await session.scalar(
        select(CostCentre.id).where(
            CostCentre.id == cost_centre_id, CostCentre.organisation_id == organisation_id
        )
    )
    if found is None:
        raise OrgNotFound(f"no cost centre {cost_centre_id}")


async def set_policy(
    session: AsyncSession,
    actor: OrgActor,
    *,
    cost_centre_id: uuid.UUID | None = None,
    allowed_form_factors: Sequence[str] | None = None,
    allowed_providers: Sequence[str] | None = None,
    max_price_minor: int | None = None,
    currency: str | None = None,
    allowed_weekdays: Sequence[int] | None = None,
    allowed_from: time | None = None,
    allowed_until: time | None = None,
    business_area: Mapping[str, Any] | None = None,
    monthly_budget_minor: int | None = None,
) -> Policy:
    """Replace the organisation's policy (or, with ``cost_centre_id``, that cost centre's
    override) as a whole: a rule left out is no rule (on a cost centre: inherited)."""
    _require_admin(actor)
    if cost_centre_id is not None:
        await _check_cost_centre(session, actor.organisation_id, cost_centre_id)
    money_rules = max_price_minor is not None or monthly_budget_minor is not None
    if money_rules and currency is None:
        raise _invalid("a maximum price or a monthly budget needs its currency")
    if currency is not None and not money_rules:
        raise _invalid("currency is given without a maximum price or a monthly budget")
    start, end = _hours(allowed_from, allowed_until)
    area = parse_area(business_area) if business_area is not None else None
    values: dict[str, Any] = {
        "allowed_form_factors": (
            _form_factors(allowed_form_factors) if allowed_form_factors is not None else None
        ),
        "allowed_providers": (
            _providers(allowed_providers) if allowed_providers is not None else None
        ),
        "max_price_minor": (
            _amount(max_price_minor, "the maximum price") if max_price_minor is not None else None
        ),
        "currency": _currency(currency) if currency is not None else None,
        "allowed_weekdays": _weekdays(allowed_weekdays) if allowed_weekdays is not None else None,
        "allowed_from": start,
        "allowed_until": end,
        "business_area": from_shape(area, srid=4326) if area is not None else None,
        "monthly_budget_minor": (
            _amount(monthly_budget_minor, "the monthly budget")
            if monthly_budget_minor is not None
            else None
        ),
        "updated_at": func.now(),
    }
    # One statement, so two admins saving at once cannot both insert: the partial unique
    # indexes (one organisation-wide policy, one per cost centre) are the arbiters.
    stmt = insert(Policy).values(
        organisation_id=actor.organisation_id, cost_centre_id=cost_centre_id, **values
    )
    if cost_centre_id is None:
        stmt = stmt.on_conflict_do_update(
            index_elements=[Policy.organisation_id],
            index_where=Policy.cost_centre_id.is_(None),
            set_=values,
        )
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=[Policy.cost_centre_id],
            index_where=Policy.cost_centre_id.is_not(None),
            set_=values,
        )
    policy_id = await session.scalar(stmt.returning(Policy.id))
    policy = await session.get(Policy, policy_id, populate_existing=True)
    assert policy is not None
    return policy


async def get_policy(
    session: AsyncSession, actor: OrgActor, *, cost_centre_id: uuid.UUID | None = None
) -> Policy | None:
    """The policy stored at that level (not merged), or None. Any member or key may read it:
    it is what their trips are checked against."""
    if cost_centre_id is not None:
        await _check_cost_centre(session, actor.organisation_id, cost_centre_id)
    level = (
        Policy.cost_centre_id.is_(None)
        if cost_centre_id is None
        else Policy.cost_centre_id == cost_centre_id
    )
    return await session.scalar(
        select(Policy).where(Policy.organisation_id == actor.organisation_id, level)
    )


def rules_of(policy: Policy) -> EffectivePolicy:
    hours = (
        HoursWindow(policy.allowed_from, policy.allowed_until)
        if policy.allowed_from is not None and policy.allowed_until is not None
        else None
    )
    return EffectivePolicy(
        allowed_form_factors=(
            frozenset(policy.allowed_form_factors)
            if policy.allowed_form_factors is not None
            else None
        ),
        allowed_providers=(
            frozenset(policy.allowed_providers) if policy.allowed_providers is not None else None
        ),
        max_price=(
            MoneyLimit(policy.max_price_minor, policy.currency)
            if policy.max_price_minor is not None and policy.currency is not None
            else None
        ),
        allowed_weekdays=(
            frozenset(policy.allowed_weekdays) if policy.allowed_weekdays is not None else None
        ),
        hours=hours,
        business_area=_wkb(policy.business_area),
        monthly_budget=(
            MoneyLimit(policy.monthly_budget_minor, policy.currency)
            if policy.monthly_budget_minor is not None and policy.currency is not None
            else None
        ),
    )


def _pick(centre: T | None, org: T | None) -> T | None:
    return centre if centre is not None else org


def merge(organisation: EffectivePolicy, cost_centre: EffectivePolicy) -> EffectivePolicy:
    """Rule by rule: the cost centre's rule where it has one, else the organisation's."""

    return EffectivePolicy(
        allowed_form_factors=_pick(
            cost_centre.allowed_form_factors, organisation.allowed_form_factors
        ),
        allowed_providers=_pick(cost_centre.allowed_providers, organisation.allowed_providers),
        max_price=_pick(cost_centre.max_price, organisation.max_price),
        allowed_weekdays=_pick(cost_centre.allowed_weekdays, organisation.allowed_weekdays),
        hours=_pick(cost_centre.hours, organisation.hours),
        business_area=_pick(cost_centre.business_area, organisation.business_area),
        monthly_budget=_pick(cost_centre.monthly_budget, organisation.monthly_budget),
    )


async def effective_policy(
    session: AsyncSession, organisation_id: uuid.UUID, cost_centre_id: uuid.UUID | None
) -> EffectivePolicy:
    """The organisation's policy with the cost centre's override merged in (module docstring).
    A cost centre of another organisation contributes nothing: both rows are read by
    ``organisation_id``."""
    level: ColumnElement[bool] = Policy.cost_centre_id.is_(None)
    if cost_centre_id is not None:
        level = or_(level, Policy.cost_centre_id == cost_centre_id)
    rows = list(
        (
            await session.scalars(
                select(Policy).where(Policy.organisation_id == organisation_id, level)
            )
        ).all()
    )
    org = next((rules_of(p) for p in rows if p.cost_centre_id is None), EffectivePolicy())
    centre = next((rules_of(p) for p in rows if p.cost_centre_id is not None), None)
    return org if centre is None else merge(org, centre)


# ---------------------------------------------------------------- checking


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
