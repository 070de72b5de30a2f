"""Travel policies in the API: ``setPolicy``, ``policy``, ``effectivePolicy``, and the
``PolicyViolation`` type booking results use to say which rule a trip breaks.

Changing a policy needs the OWNER or ADMIN role in the organisation (an API key cannot);
reading one is open to every member and key of the organisation, whose trips it governs.
Anyone else gets ``NOT_FOUND``. Rules and the cost-centre merge: docs/policies-and-reports.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.fleet import policies as domain
from app.fleet.access import ADMINS
from app.fleet.policies import PolicyRule, Violation
from app.platform.errors import InvalidInput
from app.records import PolicyRecord
from graphql_schema.context import Context
from graphql_schema.enums import FormFactor
from graphql_schema.org_access import optional_org_uuid
from graphql_schema.scalars import Long
from graphql_schema.types import Money

__all__ = [
    "EffectivePolicy",
    "Policy",
    "PolicyInput",
    "PolicyMutation",
    "PolicyQuery",
    "PolicyViolation",
    "policy_violations",
]

Info = strawberry.Info[Context, None]

strawberry.enum(
    PolicyRule, name="PolicyRule", description="A rule of an organisation's travel policy."
)


@strawberry.type(description="One rule of the organisation's policy that the trip breaks.")
class PolicyViolation:
    policy: PolicyRule
    detail: str = strawberry.field(description="What was asked and what the rule allows.")

    @classmethod
    def from_domain(cls, violation: Violation) -> PolicyViolation:
        return cls(policy=violation.policy, detail=violation.detail)


def policy_violations(found: Iterable[Violation]) -> list[PolicyViolation]:
    return [PolicyViolation.from_domain(v) for v in found]


def _money(limit: domain.MoneyLimit | None) -> Money | None:
    if limit is None:
        return None
    return Money.of(limit.amount_minor, limit.currency)


def _rule_fields(rules: domain.EffectivePolicy) -> dict[str, Any]:
    return {
        "allowed_form_factors": (
            [FormFactor(f) for f in sorted(rules.allowed_form_factors)]
            if rules.allowed_form_factors is not None
            else None
        ),
        "allowed_providers": (
            [strawberry.ID(p) for p in sorted(rules.allowed_providers)]
            if rules.allowed_providers is not None
            else None
        ),
        "max_price": _money(rules.max_price),
        "allowed_weekdays": (
            sorted(rules.allowed_weekdays) if rules.allowed_weekdays is not None else None
        ),
        "allowed_from": rules.hours.start if rules.hours is not None else None,
        "allowed_until": rules.hours.end if rules.hours is not None else None,
        "business_area": domain.area_geojson(rules.business_area),
        "monthly_budget": _money(rules.monthly_budget),
    }


@strawberry.type(
    description="Travel rules; a null rule restricts nothing. Hours are local times of the "
    "organisation's time zone, `allowedUntil` exclusive; a window whose `allowedFrom` is later "
    "than its `allowedUntil` runs across midnight."
)
class EffectivePolicy:
    allowed_form_factors: list[FormFactor] | None
    allowed_providers: list[strawberry.ID] | None
    max_price: Money | None = strawberry.field(description="Highest estimated price of a trip.")
    allowed_weekdays: list[int] | None = strawberry.field(
        description="ISO weekdays: 1 is Monday, 7 is Sunday."
    )
    allowed_from: time | None
    allowed_until: time | None
    business_area: JSON | None = strawberry.field(
        description="A GeoJSON MultiPolygon (WGS 84) trips must start and end in; its "
        "boundary counts as inside."
    )
    monthly_budget: Money | None = strawberry.field(description="Per member and month.")

    @classmethod
    def from_domain(cls, rules: domain.EffectivePolicy) -> EffectivePolicy:
        return cls(**_rule_fields(rules))


@strawberry.type(
    description="The policy stored for an organisation (`costCentreId` null) or the override "
    "of one cost centre, whose null rules are inherited from the organisation's."
)
class Policy(EffectivePolicy):
    organisation_id: strawberry.ID
    cost_centre_id: strawberry.ID | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: PolicyRecord) -> Policy:
        return cls(
            organisation_id=strawberry.ID(str(row.organisation_id)),
            cost_centre_id=(
                strawberry.ID(str(row.cost_centre_id)) if row.cost_centre_id is not None else None
            ),
            updated_at=row.updated_at,
            **_rule_fields(domain.rules_of(row)),
        )


@strawberry.input(
    description="A whole policy: it replaces the one stored at that level. A rule left out or "
    "null is no rule (on a cost centre: the organisation's applies). `currency` is the one of "
    "`maxPriceMinor` and `monthlyBudgetMinor`; `businessArea` is a GeoJSON Polygon or "
    "MultiPolygon in WGS 84; give `allowedFrom` and `allowedUntil` together."
)
class PolicyInput:
    allowed_form_factors: list[FormFactor] | None = None
    allowed_providers: list[strawberry.ID] | None = None
    max_price_minor: Long | None = None
    currency: str | None = None
    allowed_weekdays: list[int] | None = None
    allowed_from: time | None = None
    allowed_until: time | None = None
    business_area: JSON | None = None
    monthly_budget_minor: Long | None = None


@strawberry.type
class PolicyQuery:
    @strawberry.field(
        description="The policy stored for the organisation, or for one of its cost centres; "
        "null when none is set. Any member or API key of the organisation."
    )
    async def policy(
        self,
        info: Info,
        organisation_id: strawberry.ID | None = None,
        cost_centre_id: strawberry.ID | None = None,
    ) -> Policy | None:
        actor = await info.context.org_actor(optional_org_uuid(organisation_id, "organisation"))
        row = await info.context.policies.get(
            actor, cost_centre_id=optional_org_uuid(cost_centre_id, "cost centre")
        )
        return Policy.from_row(row) if row is not None else None

    @strawberry.field(
        description="The rules that apply to trips booked for this cost centre (or without "
        "one): the cost centre's rules where it sets them, the organisation's otherwise."
    )
    async def effective_policy(
        self,
        info: Info,
        organisation_id: strawberry.ID | None = None,
        cost_centre_id: strawberry.ID | None = None,
    ) -> EffectivePolicy:
        actor = await info.context.org_actor(optional_org_uuid(organisation_id, "organisation"))
        centre = optional_org_uuid(cost_centre_id, "cost centre")
        rules = await info.context.policies.effective(actor, centre)
        return EffectivePolicy.from_domain(rules)


@strawberry.type
class PolicyMutation:
    @strawberry.mutation(
        description="Replace the organisation's policy, or one cost centre's override (OWNER "
        "or ADMIN; not with an API key). Invalid rules: INVALID_POLICY, saying what to change."
    )
    async def set_policy(
        self,
        info: Info,
        input: PolicyInput,
        organisation_id: strawberry.ID | None = None,
        cost_centre_id: strawberry.ID | None = None,
    ) -> Policy:
        actor = await info.context.org_actor(
            optional_org_uuid(organisation_id, "organisation"), roles=ADMINS
        )
        area = input.business_area
        if area is not None and not isinstance(area, dict):
            raise InvalidInput("businessArea must be a GeoJSON object", code=domain.INVALID)
        row = await info.context.policies.set(
            actor,
            cost_centre_id=optional_org_uuid(cost_centre_id, "cost centre"),
            allowed_form_factors=(
                [f.value for f in input.allowed_form_factors]
                if input.allowed_form_factors is not None
                else None
            ),
            allowed_providers=(
                [str(p) for p in input.allowed_providers]
                if input.allowed_providers is not None
                else None
            ),
            max_price_minor=input.max_price_minor,
            currency=input.currency,
            allowed_weekdays=input.allowed_weekdays,
            allowed_from=input.allowed_from,
            allowed_until=input.allowed_until,
            business_area=area,
            monthly_budget_minor=input.monthly_budget_minor,
        )
        return Policy.from_row(row)
