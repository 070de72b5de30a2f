"""The outbox side of webhooks: undispatched events become one PENDING delivery per
subscribed, enabled endpoint of their organisation; dispatched events are forgotten after
:data:`OUTBOX_RETENTION`, their delivery log with them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.fleet.webhooks.states import DeliveryStatus
from app.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from app.platform.db import transaction

# Dispatched events (and with them their delivery log) are kept this long, then forgotten
# (unless a delivery of theirs is still being attempted).
OUTBOX_RETENTION = timedelta(days=30)
# One round's work: bounded so one round's transactions and open sockets stay small.
DISPATCH_BATCH = 200


async def dispatch_outbox(
    sessions: async_sessionmaker[AsyncSession], now: datetime, *, batch: int = DISPATCH_BATCH
) -> int:
    """Turn one batch of undispatched outbox events into deliveries; how many events it took.

    Events are locked with SKIP LOCKED, so concurrent runners take disjoint batches; the unique
    (endpoint_id, event_id) makes a repeat of the same event a no-op all the same."""
    async with transaction(sessions) as session:
        event_ids = list(
            (
                await session.execute(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.dispatched_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
        )
        if not event_ids:
            return 0
        subscribed = (
            select(
                WebhookEndpoint.id,
                OutboxEvent.id,
                literal(DeliveryStatus.PENDING.value, WebhookDelivery.status.type),
                literal(0, WebhookDelivery.attempts.type),
                literal(now, WebhookDelivery.next_attempt_at.type),
                literal(now, WebhookDelivery.created_at.type),
                literal(now, WebhookDelivery.window_opened_at.type),
            )
            .join(
                WebhookEndpoint,
                (WebhookEndpoint.organisation_id == OutboxEvent.organisation_id)
                & WebhookEndpoint.enabled
                & OutboxEvent.event_type.op("=")(func.any(WebhookEndpoint.events)),
            )
            .where(OutboxEvent.id.in_(event_ids))
        )
        await session.execute(
            pg_insert(WebhookDelivery)
            .from_select(
                [
                    "endpoint_id",
                    "event_id",
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                    "window_opened_at",
                ],
                subscribed,
            )
            .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
        )
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(event_ids)).values(dispatched_at=now)
        )
    return len(event_ids)


async def forget_old_events(session: AsyncSession, now: datetime, *, batch: int = 1000) -> int:
    """Delete dispatched events older than :data:`OUTBOX_RETENTION` whose deliveries are all
    settled (their delivery log goes with them); at most ``batch`` a call. Returns how many."""
    pending = select(WebhookDelivery.id).where(
        WebhookDelivery.event_id == OutboxEvent.id,
        WebhookDelivery.status == DeliveryStatus.PENDING.value,
    )
    old = (
        select(OutboxEvent.id)
        .where(OutboxEvent.dispatched_at < now - OUTBOX_RETENTION, ~pending.exists())
        .order_by(OutboxEvent.dispatched_at)
        .limit(batch)
    )
    result = await session.execute(
        delete(OutboxEvent).where(OutboxEvent.id.in_(old)).returning(OutboxEvent.id)
    )
    return len(result.all())
