"""An organisation's webhook endpoints and its delivery log, as its admins (or keys with
``webhooks:manage``) manage them: register, list, enable or disable, delete, read the log and
replay a delivery. Every function takes an :class:`OrgActor` resolved for one organisation and
never touches another organisation's rows: an id of another organisation's endpoint or
delivery is :class:`OrgNotFound`."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.fleet.outbox import EventType
from app.fleet.principal import OrgActor, OrgNotFound, Scope
from app.fleet.webhooks.destinations import canonical_url
from app.fleet.webhooks.signing import SECRET_PREFIX
from app.fleet.webhooks.states import DeliveryStatus
from app.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from app.platform.errors import InvalidInput
from app.platform.settings import Settings

MAX_ENDPOINTS_PER_ORGANISATION = 20
DELIVERIES_PAGE_DEFAULT = 50
DELIVERIES_PAGE_MAX = 200


class WebhookDisabled(InvalidInput):
    code = "WEBHOOK_DISABLED"


def _require_manager(actor: OrgActor) -> None:
    actor.require_admin_or_scope(Scope.WEBHOOKS_MANAGE)


def _checked_events(events: Collection[EventType | str]) -> list[str]:
    wanted: list[str] = []
    for event in events:
        try:
            value = EventType(event).value
        except ValueError:
            raise InvalidInput(
                f"unknown event type {event!r}", code="INVALID_WEBHOOK_EVENTS"
            ) from None
        if value not in wanted:
            wanted.append(value)
    if not wanted:
        raise InvalidInput("subscribe to at least one event type", code="INVALID_WEBHOOK_EVENTS")
    return sorted(wanted)


async def register_endpoint(
    session: AsyncSession,
    actor: OrgActor,
    url: str,
    events: Collection[EventType | str],
    *,
    settings: Settings,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (``whsec_…``): the secret is shown this once."""
    _require_manager(actor)
    checked_url = canonical_url(url, settings)
    checked_events = _checked_events(events)
    count = await session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.organisation_id == actor.organisation_id)
    )
    if (count or 0) >= MAX_ENDPOINTS_PER_ORGANISATION:
        raise InvalidInput(
            f"an organisation has at most {MAX_ENDPOINTS_PER_ORGANISATION} webhook endpoints",
            code="TOO_MANY_WEBHOOKS",
        )
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(
        organisation_id=actor.organisation_id,
        url=checked_url,
        secret=secret,
        events=checked_events,
        enabled=True,
    )
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint, ["created_at"])
    return endpoint, secret


async def list_endpoints(session: AsyncSession, actor: OrgActor) -> list[WebhookEndpoint]:
    _require_manager(actor)
    rows = await session.execute(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.organisation_id == actor.organisation_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return list(rows.scalars())


async def _own_endpoint(
    session: AsyncSession, actor: OrgActor, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    endpoint = (
        await session.execute(
            select(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.organisation_id == actor.organisation_id,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if endpoint is None:
        raise OrgNotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


async def set_endpoint_enabled(
    session: AsyncSession,
    actor: OrgActor,
    endpoint_id: uuid.UUID,
    enabled: bool,
) -> WebhookEndpoint:
    """Disabling stops new deliveries to the endpoint and fails its pending ones (an admin may
    replay them once it is enabled again)."""
    _require_manager(actor)
    endpoint = await _own_endpoint(session, actor, endpoint_id)
    endpoint.enabled = enabled
    if not enabled:
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == endpoint.id,
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
            )
            .values(
                status=DeliveryStatus.FAILED.value,
                next_attempt_at=None,
                last_error="the endpoint was disabled",
            )
        )
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, actor: OrgActor, endpoint_id: uuid.UUID) -> None:
    """The endpoint and its delivery log go (the log is the endpoint's)."""
    _require_manager(actor)
    await _own_endpoint(session, actor, endpoint_id)
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


async def endpoint_organisation(session: AsyncSession, endpoint_id: uuid.UUID) -> uuid.UUID | None:
    """The endpoint's organisation, to resolve the caller's permission in it first."""
    return await session.scalar(
        select(WebhookEndpoint.organisation_id).where(WebhookEndpoint.id == endpoint_id)
    )


async def delivery_organisation(session: AsyncSession, delivery_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(
        select(WebhookEndpoint.organisation_id)
        .join(WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
        .where(WebhookDelivery.id == delivery_id)
    )


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One line of the delivery log."""

    delivery: WebhookDelivery
    event_type: str
    event_created_at: datetime


async def deliveries_of(
    session: AsyncSession,
    actor: OrgActor,
    *,
    endpoint_id: uuid.UUID | None = None,
    delivery_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    first: int | None = None,
) -> list[DeliveryRecord]:
    """The organisation's delivery log, newest first."""
    _require_manager(actor)
    limit = DELIVERIES_PAGE_DEFAULT if first is None else first
    if not 1 <= limit <= DELIVERIES_PAGE_MAX:
        raise InvalidInput(f"first must be 1-{DELIVERIES_PAGE_MAX}", code="INVALID_PAGE_SIZE")
    query = (
        select(WebhookDelivery, OutboxEvent.event_type, OutboxEvent.created_at)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookEndpoint.organisation_id == actor.organisation_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if delivery_id is not None:
        query = query.where(WebhookDelivery.id == delivery_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    rows = await session.execute(query)
    return [DeliveryRecord(d, event_type, created) for d, event_type, created in rows.all()]


async def replay_delivery(
    session: AsyncSession, actor: OrgActor, delivery_id: uuid.UUID, *, now: datetime
) -> WebhookDelivery:
    """Send a DELIVERED or FAILED delivery again: PENDING now, with a new 24 h window (its
    attempt count is kept, so the log shows every attempt ever made)."""
    _require_manager(actor)
    row = (
        await session.execute(
            select(WebhookDelivery, WebhookEndpoint.enabled)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookEndpoint.organisation_id == actor.organisation_id,
            )
            .with_for_update(of=WebhookDelivery)
        )
    ).first()
    if row is None:
        raise OrgNotFound(f"no webhook delivery {delivery_id}")
    delivery, enabled = row
    if not enabled:
        raise WebhookDisabled("the endpoint is disabled: enable it first")
    if delivery.status == DeliveryStatus.PENDING.value:
        raise InvalidInput(
            "this delivery is still being attempted", code="WEBHOOK_DELIVERY_PENDING"
        )
    delivery.status = DeliveryStatus.PENDING.value
    delivery.next_attempt_at = now
    delivery.delivered_at = None
    delivery.window_opened_at = now
    await session.flush()
    return delivery


def event_types(values: Sequence[str]) -> list[EventType]:
    """Stored event type strings as the enum (unknown ones, from a future version, dropped)."""
    return [EventType(v) for v in values if v in EventType._value2member_map_]
