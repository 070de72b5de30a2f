"""An organisation's webhooks as the API manages them: each change one transaction of its own,
each read one short session (the rules are in app/fleet/webhooks.py, which tests call with a
session of their own)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.fleet import webhooks
from app.fleet.outbox import EventType
from app.fleet.principal import OrgActor
from app.models import WebhookEndpoint
from app.settings import Settings

__all__ = ["WebhookAdmin"]


class WebhookAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    async def endpoint_organisation(self, endpoint_id: uuid.UUID) -> uuid.UUID | None:
        async with self._sessions() as session:
            return await webhooks.endpoint_organisation(session, endpoint_id)

    async def delivery_organisation(self, delivery_id: uuid.UUID) -> uuid.UUID | None:
        async with self._sessions() as session:
            return await webhooks.delivery_organisation(session, delivery_id)

    async def endpoints(self, actor: OrgActor) -> list[WebhookEndpoint]:
        async with self._sessions() as session:
            return await webhooks.list_endpoints(session, actor)

    async def deliveries(
        self,
        actor: OrgActor,
        *,
        endpoint_id: uuid.UUID | None = None,
        status: webhooks.DeliveryStatus | None = None,
        first: int | None = None,
    ) -> list[webhooks.DeliveryRecord]:
        async with self._sessions() as session:
            return await webhooks.deliveries_of(
                session, actor, endpoint_id=endpoint_id, status=status, first=first
            )

    async def register(
        self, actor: OrgActor, url: str, events: Sequence[EventType]
    ) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its signing secret (shown this once)."""
        async with transaction(self._sessions) as session:
            return await webhooks.register_endpoint(
                session, actor, url, list(events), settings=self._settings
            )

    async def set_enabled(
        self, actor: OrgActor, endpoint_id: uuid.UUID, enabled: bool
    ) -> WebhookEndpoint:
        async with transaction(self._sessions) as session:
            return await webhooks.set_endpoint_enabled(session, actor, endpoint_id, enabled)

    async def delete(self, actor: OrgActor, endpoint_id: uuid.UUID) -> None:
        async with transaction(self._sessions) as session:
            await webhooks.delete_endpoint(session, actor, endpoint_id)

    async def replay(
        self, actor: OrgActor, delivery_id: uuid.UUID, *, now: datetime
    ) -> webhooks.DeliveryRecord:
        """The delivery, due again now, as the delivery log shows it."""
        async with transaction(self._sessions) as session:
            await webhooks.replay_delivery(session, actor, delivery_id, now=now)
            records = await webhooks.deliveries_of(session, actor, delivery_id=delivery_id)
        return records[0]
