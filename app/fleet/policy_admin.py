"""An organisation's travel policies and usage reports as the API reads and sets them: each
change one transaction of its own, each read one short session (the rules are in
app/fleet/policies.py and app/fleet/reports.py)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import in_transaction
from app.fleet import policies, reports
from app.fleet.principal import OrgActor
from app.models import Policy

__all__ = ["PolicyAdmin"]


class PolicyAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        #: :func:`app.fleet.policies.set_policy` (its arguments after the session), in a
        #: transaction of its own.
        self.set = in_transaction(sessions, policies.set_policy)

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

    async def usage_report(
        self, actor: OrgActor, *, month: str, group_by: reports.GroupBy
    ) -> reports.UsageReport:
        async with self._sessions() as session:
            return await reports.usage_report(session, actor, month=month, group_by=group_by)
