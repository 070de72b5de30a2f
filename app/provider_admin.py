"""The provider-administration service the API calls (DESIGN.md: ``graphql_schema`` talks to
``app`` services only). The rules live with the provider records in ``providers/admin.py``;
:class:`ProviderAdmin` is the one door to them from the API layer: each change is one
transaction of its own, each read one short session, so the API holds no connection and does
not depend on how ``providers/`` is organised inside."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.platform.db import in_session, in_transaction
from providers import admin
from providers.admin import (
    OverridesSummary,
    ProviderExists,
    ProviderUpdate,
    config_view,
    overrides_summary,
)
from providers.dispatch import ProviderDisabled, force_sync
from providers.repository import get as get_provider
from providers.repository import health_records

__all__ = [
    "OverridesSummary",
    "ProviderAdmin",
    "ProviderDisabled",
    "ProviderExists",
    "ProviderUpdate",
    "config_view",
    "health_records",
    "overrides_summary",
]


class ProviderAdmin:
    """Staff's changes to providers and what only staff may read of them: the functions of
    ``providers/admin.py``, each change in a transaction of its own, each read in a short
    session. Who may call it (ADMIN) is the API's check, made before any of these."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.get = in_session(sessions, get_provider)
        # Each provider's row and latest finished sync, for a batch of slugs (health, validation).
        self.health_records = in_session(sessions, health_records)
        self.add = in_transaction(sessions, admin.add_provider)
        self.update = in_transaction(sessions, admin.update_provider)
        self.set_overrides = in_transaction(sessions, admin.set_overrides)
        self.set_enabled = in_transaction(sessions, admin.set_enabled)
        self.delete = in_transaction(sessions, admin.delete_provider)
        self.set_credentials = in_transaction(sessions, admin.set_credentials)
        self.set_booking = in_transaction(sessions, admin.set_booking)
        self.set_private_to = in_transaction(sessions, admin.set_private_to)

    async def sync_now(self, slugs: Sequence[str]) -> int:
        """:func:`providers.dispatch.force_sync`: how many of ``slugs`` exist."""
        return await force_sync(self._sessions, slugs)

    async def credentials_kind(self, slug: str) -> str | None:
        """The kind of the provider's operator credentials, or None: never the secret."""
        async with self._sessions() as session:
            found = (await admin.credentials_kinds(session, [slug])).get(slug)
        return found[0] if found else None
