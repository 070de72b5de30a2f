"""The provider-administration service the API calls (DESIGN.md: ``graphql_schema`` talks to
``app`` services only). The rules live with the provider records in ``providers/admin.py``;
:class:`ProviderAdmin` is the one door to them from the API layer: each change is one
transaction of its own, each read one short session, so the API holds no connection and does
not depend on how ``providers/`` is organised inside."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.models import Provider
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
    """Staff's changes to providers and what only staff may read of them. Who may call it
    (ADMIN) is the API's check, made before any of these."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, slug: str) -> Provider | None:
        async with self._sessions() as session:
            return await get_provider(session, slug)

    async def add(
        self, *, slug: str, name: str | None, adapter: str, config: dict[str, Any], enabled: bool
    ) -> None:
        async with transaction(self._sessions) as session:
            await admin.add_provider(
                session, slug=slug, name=name, adapter=adapter, config=config, enabled=enabled
            )

    async def update(self, slug: str, changes: ProviderUpdate) -> None:
        async with transaction(self._sessions) as session:
            await admin.update_provider(session, slug, changes)

    async def set_overrides(self, slug: str, overrides: dict[str, Any] | None) -> None:
        async with transaction(self._sessions) as session:
            await admin.set_overrides(session, slug, overrides)

    async def set_enabled(self, slug: str, enabled: bool) -> None:
        async with transaction(self._sessions) as session:
            await admin.set_enabled(session, slug, enabled)

    async def delete(self, slug: str) -> None:
        async with transaction(self._sessions) as session:
            await admin.delete_provider(session, slug)

    async def sync_now(self, slugs: Sequence[str]) -> int:
        """:func:`providers.dispatch.force_sync`: how many of ``slugs`` exist."""
        return await force_sync(self._sessions, slugs)

    async def set_credentials(
        self, slug: str, kind: str | None, values: dict[str, Any] | None
    ) -> None:
        async with transaction(self._sessions) as session:
            await admin.set_credentials(session, slug, kind, values)

    async def set_booking(self, slug: str, booking: dict[str, Any] | None) -> Provider:
        async with transaction(self._sessions) as session:
            return await admin.set_booking(session, slug, booking)

    async def set_private_to(self, slug: str, organisation_id: uuid.UUID | None) -> Provider:
        async with transaction(self._sessions) as session:
            return await admin.set_private_to(session, slug, organisation_id)

    async def credentials_kind(self, slug: str) -> str | None:
        """The kind of the provider's operator credentials, or None: never the secret."""
        async with self._sessions() as session:
            found = (await admin.credentials_kinds(session, [slug])).get(slug)
        return found[0] if found else None
