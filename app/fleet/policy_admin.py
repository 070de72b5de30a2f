"""An organisation's travel policies and usage reports as the API reads and sets them: each
change one transaction of its own, each read one short session (the rules are in
app/fleet/policies.py and app/fleet/reports.py)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.fleet import policies, reports
from app.fleet.principal import OrgActor
from app.models import Policy

__all__ = ["PolicyAdmin"]


class PolicyAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, actor: OrgActor, cost_centre_id: uuid.UUID | None) -> Policy | None:
        """The policy set at this level (the organisation's, or a cost centre's), if any."""
        async with self._sessions() as session:
            return await policies.get_policy(session, actor, cost_centre_id=cost_centre_id)

    async def effective(
        self, actor: OrgActor, cost_centre_id: uuid.UUID | None
    ) -> policies.EffectivePolicy:
        """The rules that apply to a trip booked for the cost centre (or without one);
        NOT_FOUND for a cost centre of another organisation."""
        async with self._sessions() as session:
            if cost_centre_id is not None:
                await policies.get_policy(session, actor, cost_centre_id=cost_centre_id)
            return await policies.effective_policy(session, actor.organisation_id, cost_centre_id)

    async def set(
        self,
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
        """:func:`app.fleet.policies.set_policy` in a transaction of its own."""
        async with transaction(self._sessions) as session:
            return await policies.set_policy(
                session,
                actor,
                cost_centre_id=cost_centre_id,
                allowed_form_factors=allowed_form_factors,
                allowed_providers=allowed_providers,
                max_price_minor=max_price_minor,
                currency=currency,
                allowed_weekdays=allowed_weekdays,
                allowed_from=allowed_from,
                allowed_until=allowed_until,
                business_area=business_area,
                monthly_budget_minor=monthly_budget_minor,
            )

    async def usage_report(
        self, actor: OrgActor, *, month: str, group_by: reports.GroupBy
    ) -> reports.UsageReport:
        async with self._sessions() as session:
            return await reports.usage_report(session, actor, month=month, group_by=group_by)
