"""Organisation events, written to the outbox in the transaction of the change they report: an
event exists if and only if its change was committed, whatever process dies when. Webhook
deliveries are made from the outbox afterwards (app/fleet/webhooks/)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import OutboxEvent
from app.platform.request_id import current as current_request_id

__all__ = ["EventType", "emit"]


class EventType(StrEnum):
    BOOKING_CONFIRMED = "booking.confirmed"
    BOOKING_STARTED = "booking.started"
    BOOKING_FINISHED = "booking.finished"
    BOOKING_CANCELLED = "booking.cancelled"
    BOOKING_EXPIRED = "booking.expired"
    POLICY_VIOLATION = "policy.violation"


async def emit(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    event_type: EventType,
    payload: dict[str, Any],
) -> None:
    """Add the event to the caller's transaction (it commits or rolls back with it), with the
    id of the request being served, if any: its deliveries log with it."""
    session.add(
        OutboxEvent(
            organisation_id=organisation_id,
            event_type=event_type.value,
            payload=payload,
            request_id=current_request_id(),
        )
    )
    await session.flush()
