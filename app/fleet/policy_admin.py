"""An organisation's travel policies and usage reports as the API reads and sets them: each
change one transaction of its own, each read one short session (the rules are in
app/fleet/policies/ and app/fleet/reports.py)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.fleet import policies, reports
from app.fleet.principal import OrgActor
from app.platform.db import in_session, in_transaction

__all__ = ["PolicyAdmin"]


class PolicyAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        #: :func:`app.fleet.policies.set_policy` (its arguments after the session), in a
        #: transaction of its own.
        self.set = in_transaction(sessions, policies.set_policy)
        #: The policy set at one level (the organisation's, or a cost centre's), if any.
        self.get = in_session(sessions, policies.get_policy)
        self.usage_report = in_session(sessions, reports.usage_report)

    async def effective(
        self, actor: OrgActor, cost_centre_id: uuid.UUID | None
    ) -> policies.EffectivePolicy:
        """The rules that apply to a trip booked for the cost centre (or without one);
        NOT_FOUND for a cost centre of another organisation."""
        async with self._sessions() as session:
            if cost_centre_id is not None:
                await policies.get_policy(session, actor, cost_centre_id=cost_centre_id)
            return await policies.effective_policy(session, actor.organisation_id, cost_centre_id)
