"""Webhooks in the API: register, list, enable/disable and delete endpoints; read and replay
the delivery log.

For an organisation's admins (OWNER, ADMIN) and its API keys with ``webhooks:manage``. Anyone
outside the organisation gets ``NOT_FOUND`` for it and for every endpoint or delivery in it; a
member with a lesser role ``FORBIDDEN``; a key without the scope ``MISSING_SCOPE``.
docs/webhooks.md says how a receiver checks the signature.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import Enum

import strawberry

from app.fleet import webhooks as service
from app.fleet.access import ADMINS
from app.fleet.outbox import EventType
from app.fleet.principal import OrgActor, Scope
from app.records import WebhookEndpointRecord
from graphql_schema.context import Context
from graphql_schema.org_access import actor_for_item, optional_org_uuid, org_uuid

Info = strawberry.Info[Context, None]


@strawberry.enum(description="What an organisation's webhook endpoint can be told about.")
class WebhookEventType(Enum):
    BOOKING_CONFIRMED = EventType.BOOKING_CONFIRMED.value
    BOOKING_STARTED = EventType.BOOKING_STARTED.value
    BOOKING_FINISHED = EventType.BOOKING_FINISHED.value
    BOOKING_CANCELLED = EventType.BOOKING_CANCELLED.value
    BOOKING_EXPIRED = EventType.BOOKING_EXPIRED.value
    POLICY_VIOLATION = EventType.POLICY_VIOLATION.value


strawberry.enum(
    service.DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="PENDING: being attempted (retried with backoff for 24 hours); DELIVERED: the "
    "endpoint answered 2xx; FAILED: it did not within the window (replay sends it again).",
)


def _event_types(values: list[str]) -> list[WebhookEventType]:
    return [WebhookEventType(e.value) for e in service.event_types(values)]


@strawberry.type(description="An HTTPS endpoint of the organisation that receives signed events.")
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    events: list[WebhookEventType]
    enabled: bool
    created_at: datetime

    @classmethod
    def from_model(cls, row: WebhookEndpointRecord) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(str(row.id)),
            url=row.url,
            events=_event_types(row.events),
            enabled=row.enabled,
            created_at=row.created_at,
        )


@strawberry.type(
    description="A new endpoint and its signing secret. The secret is shown only here: keep it "
    "to verify the `Mobility-Signature` header of each delivery."
)
class RegisteredWebhook:
    endpoint: WebhookEndpoint
    secret: str


@strawberry.type(description="One event's delivery to one endpoint, with its latest attempt.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(
        description="Also the `id` of the JSON body: the same on every retry and replay."
    )
    endpoint_id: strawberry.ID
    event_type: WebhookEventType
    event_created_at: datetime
    status: service.DeliveryStatus
    attempts: int
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_response: str | None = strawberry.field(
        description="The first kilobyte of the endpoint's last answer."
    )
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime = strawberry.field(description="When the delivery was created.")
    window_opened_at: datetime = strawberry.field(
        description="When the current 24-hour retry window opened: the delivery's creation, "
        "or its last replay."
    )

    @classmethod
    def from_record(cls, record: service.DeliveryRecord) -> WebhookDelivery:
        d = record.delivery
        return cls(
            id=strawberry.ID(str(d.id)),
            endpoint_id=strawberry.ID(str(d.endpoint_id)),
            event_type=WebhookEventType(record.event_type),
            event_created_at=record.event_created_at,
            status=service.DeliveryStatus(d.status),
            attempts=d.attempts,
            last_attempt_at=d.last_attempt_at,
            last_status_code=d.last_status_code,
            last_response=d.last_response,
            last_error=d.last_error,
            next_attempt_at=d.next_attempt_at,
            delivered_at=d.delivered_at,
            created_at=d.created_at,
            window_opened_at=d.window_opened_at,
        )


async def _manager(info: Info, organisation_id: strawberry.ID | None) -> OrgActor:
    return await info.context.org_actor(
        optional_org_uuid(organisation_id, "organisation"),
        roles=ADMINS,
        scope=Scope.WEBHOOKS_MANAGE,
    )


async def _manager_of(
    info: Info,
    raw_id: strawberry.ID,
    what: str,
    lookup: Callable[[uuid.UUID], Awaitable[uuid.UUID | None]],
) -> tuple[uuid.UUID, OrgActor]:
    """The id of an endpoint or delivery, and the caller acting for its organisation."""
    item_id = org_uuid(raw_id, what)
    actor = await actor_for_item(
        info.context, item_id, what, lookup, roles=ADMINS, scope=Scope.WEBHOOKS_MANAGE
    )
    return item_id, actor


@strawberry.type
class WebhookQuery:
    @strawberry.field(
        description="The organisation's webhook endpoints (admins, or a key with "
        "webhooks:manage). `organisationId` may be left out by a key or a member of one "
        "organisation."
    )
    async def webhook_endpoints(
        self, info: Info, organisation_id: strawberry.ID | None = None
    ) -> list[WebhookEndpoint]:
        actor = await _manager(info, organisation_id)
        rows = await info.context.webhooks.endpoints(actor)
        return [WebhookEndpoint.from_model(r) for r in rows]

    @strawberry.field(
        description="The delivery log, newest first: every event sent (or being sent) to the "
        "organisation's endpoints, with attempts and the last answer. `first`: 1-200, "
        "default 50."
    )
    async def webhook_deliveries(
        self,
        info: Info,
        organisation_id: strawberry.ID | None = None,
        endpoint_id: strawberry.ID | None = None,
        status: service.DeliveryStatus | None = None,
        first: int | None = None,
    ) -> list[WebhookDelivery]:
        actor = await _manager(info, organisation_id)
        records = await info.context.webhooks.deliveries(
            actor,
            endpoint_id=optional_org_uuid(endpoint_id, "webhook endpoint"),
            status=status,
            first=first,
        )
        return [WebhookDelivery.from_record(r) for r in records]


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="Register an HTTPS endpoint for some event types (admins, or a key with "
        "webhooks:manage). The answer carries the signing secret, shown this once."
    )
    async def register_webhook(
        self,
        info: Info,
        url: str,
        events: list[WebhookEventType],
        organisation_id: strawberry.ID | None = None,
    ) -> RegisteredWebhook:
        actor = await _manager(info, organisation_id)
        row, secret = await info.context.webhooks.register(
            actor, url, [EventType(e.value) for e in events]
        )
        return RegisteredWebhook(endpoint=WebhookEndpoint.from_model(row), secret=secret)

    @strawberry.mutation(
        description="Stop or resume deliveries to an endpoint. Disabling fails its pending "
        "deliveries (replay them once it is enabled again)."
    )
    async def set_webhook_enabled(
        self, info: Info, id: strawberry.ID, enabled: bool
    ) -> WebhookEndpoint:
        endpoint_id, actor = await _manager_of(
            info, id, "webhook endpoint", info.context.webhooks.endpoint_organisation
        )
        row = await info.context.webhooks.set_enabled(actor, endpoint_id, enabled)
        return WebhookEndpoint.from_model(row)

    @strawberry.mutation(description="Delete an endpoint and its delivery log; returns its id.")
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        endpoint_id, actor = await _manager_of(
            info, id, "webhook endpoint", info.context.webhooks.endpoint_organisation
        )
        await info.context.webhooks.delete(actor, endpoint_id)
        return id

    @strawberry.mutation(
        description="Send a DELIVERED or FAILED delivery again, now, with a new 24-hour retry "
        "window (its attempt count is kept)."
    )
    async def replay_webhook_delivery(self, info: Info, id: strawberry.ID) -> WebhookDelivery:
        delivery_id, actor = await _manager_of(
            info, id, "webhook delivery", info.context.webhooks.delivery_organisation
        )
        record = await info.context.webhooks.replay(actor, delivery_id, now=datetime.now(UTC))
        return WebhookDelivery.from_record(record)
