"""Storing an organisation's policy and its cost centres' overrides: validating what an admin
sets (the business area's GeoJSON included), writing it, reading one level back, and reading
both levels merged into the policy that applies (``effective_policy``)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import time
from typing import Any

import shapely
from geoalchemy2.shape import from_shape, to_shape
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.fleet.organisations import cost_centre_of
from app.fleet.policies.rules import EffectivePolicy, HoursWindow, MoneyLimit, merge
from app.fleet.principal import OrgActor
from app.models import Policy
from app.platform.errors import InvalidInput
from app.platform.vocabulary import FormFactor, currency_exponent
from app.records import PolicyRecord

INVALID = "INVALID_POLICY"
# A business area is a company's service region, not a coastline: this many vertices is plenty,
# and a bound keeps one request from storing (and every check from testing) megabytes.
MAX_AREA_VERTICES = 10_000


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
    actor.require_admin(
        api_keys="API keys cannot change policies; sign in as an organisation admin"
    )


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
        await cost_centre_of(session, actor.organisation_id, cost_centre_id)
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
        await cost_centre_of(session, actor.organisation_id, cost_centre_id)
    level = (
        Policy.cost_centre_id.is_(None)
        if cost_centre_id is None
        else Policy.cost_centre_id == cost_centre_id
    )
    return await session.scalar(
        select(Policy).where(Policy.organisation_id == actor.organisation_id, level)
    )


def rules_of(policy: PolicyRecord) -> EffectivePolicy:
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
