"""The policy rules as values: each rule, a violation of one, the effective policy of a trip
and the trip checked against it, and the cost centre's rule-by-rule override (``merge``).
Pure: no database, no validation of what an admin typed (``storage.py`` does that)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


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
