"""An organisation's webhooks as the API manages them: each change one transaction of its own,
each read one short session (the rules are in app/fleet/webhooks/, which tests call with a
session of their own)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.fleet import webhooks
from app.fleet.outbox import EventType
from app.fleet.principal import OrgActor
from app.models import WebhookEndpoint
from app.platform.db import in_session, in_transaction, transaction
from app.platform.settings import Settings

__all__ = ["WebhookAdmin"]


class WebhookAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings
        self.endpoint_organisation = in_session(sessions, webhooks.endpoint_organisation)
        self.delivery_organisation = in_session(sessions, webhooks.delivery_organisation)
        self.endpoints = in_session(sessions, webhooks.list_endpoints)
        self.deliveries = in_session(sessions, webhooks.deliveries_of)
        self.set_enabled = in_transaction(sessions, webhooks.set_endpoint_enabled)
        self.delete = in_transaction(sessions, webhooks.delete_endpoint)

    async def register(
        self, actor: OrgActor, url: str, events: Sequence[EventType]
    ) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its signing secret (shown this once)."""
        async with transaction(self._sessions) as session:
            return await webhooks.register_endpoint(
                session, actor, url, list(events), settings=self._settings
            )

    async def replay(
        self, actor: OrgActor, delivery_id: uuid.UUID, *, now: datetime
    ) -> webhooks.DeliveryRecord:
        """The delivery, due again now, as the delivery log shows it."""
        async with transaction(self._sessions) as session:
            await webhooks.replay_delivery(session, actor, delivery_id, now=now)
            records = await webhooks.deliveries_of(session, actor, delivery_id=delivery_id)
        return records[0]
