"""Who is calling: the one door from a request's credentials to the caller it names.

A request carries at most one ``Authorization`` header, and what it names is one of: a staff
token (app/staff_auth.py), a rider's access token, ours or a trusted identity provider's
(app/accounts/), or an organisation's API key (app/fleet/api_keys.py). :class:`Identity` looks
each up in a short transaction of its own (a lookup writes ``last_used_at``, and an external
identity's first use creates its account), so the interfaces that ask hold no session.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import Rider, rider_for_token
from app.fleet.access import actor_for, memberships_of
from app.fleet.api_keys import is_api_key, verify_api_key
from app.fleet.principal import Scope
from app.platform.db import in_transaction, transaction
from app.platform.errors import DomainError
from app.platform.settings import Settings
from app.staff_auth import TOKEN_PREFIX, viewer_for

__all__ = ["Identity"]


class Identity:
    """The lookups behind a request's caller; no state of its own."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self.staff_viewer = in_transaction(sessions, viewer_for)
        self.api_key = in_transaction(sessions, verify_api_key)
        # Who acts for an organisation: a member (with a role) or an API key (with a scope).
        self.org_actor = in_transaction(sessions, actor_for)

    async def rider(self, token: str) -> Rider:
        """The rider a bearer token names (its errors: ``INVALID_TOKEN``, ``TOKEN_EXPIRED``…)."""
        async with transaction(self._sessions) as session:
            return await rider_for_token(session, self._settings, token)

    async def organisations_of(self, rider_id: uuid.UUID) -> frozenset[uuid.UUID]:
        """The organisations the rider is a member of."""
        async with self._sessions() as session:
            return frozenset(m.organisation_id for m in await memberships_of(session, rider_id))

    async def map_viewer(
        self, authorization: str | None, *, private_fleets: bool
    ) -> frozenset[uuid.UUID]:
        """For reads of the map outside GraphQL (vector tiles): the organisations whose private
        fleets the caller of this ``Authorization`` header may see, as GraphQL's search does.
        An API key must be valid and hold ``vehicles:read`` (``INVALID_API_KEY``,
        ``MISSING_SCOPE``); a rider's token that does not check out reads as anonymous (a map
        never fails for a stale token), and so does a staff token. Organisations are looked up
        only when ``private_fleets`` exist: anonymous maps pay nothing for the feature."""
        if not authorization:
            return frozenset()
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or token.startswith(TOKEN_PREFIX):
            return frozenset()
        if is_api_key(token):
            principal = await self.api_key(token, datetime.now(UTC))
            principal.require_scope(Scope.VEHICLES_READ)
            return frozenset({principal.organisation_id})
        if not private_fleets:
            return frozenset()
        try:
            rider = await self.rider(token)
        except DomainError:
            return frozenset()
        return await self.organisations_of(rider.id)
