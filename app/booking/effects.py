"""A booking change's side effects: the search index, the live signal, the organisation outbox.

After a change commits, the vehicle's entry in the Redis search index is rewritten from PostGIS
(reserved vehicles leave search, freed ones come back) and subscribers are told: of the vehicle
on the delta channel, of the booking on ``bookingUpdates``' channel. Neither may fail the
change: PostGIS is the truth, search answers from it while Redis fails, and an index write that
did not go through is retried until it does (:class:`SideEffects`).

The outbox is written the other way: *inside* the transaction that makes the change
(:func:`emit_transition`, :func:`emit_policy_violation`), so an organisation's webhook event
exists if and only if the change does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking.schemas import OrgBooking
from app.booking.states import BookingState
from app.fleet.outbox import EventType, emit
from app.platform import metrics
from app.platform.redis import RedisClient, RedisKeys, publish
from app.search import repository as search_repository
from app.vehicle_index import VehicleDoc, VehicleIndex

log = logging.getLogger(__name__)

__all__ = ["Changed", "SideEffects", "emit_policy_violation", "emit_transition"]

# Index writes a booking change could not make: retried this often, at most this many held.
_INDEX_RETRY_SECONDS = 1.0
_MAX_INDEX_DEBT = 10_000

# The organisation events a transition sends (issue 6 webhooks); (None, state): from any state.
_WEBHOOK_EVENTS: dict[tuple[BookingState | None, BookingState], EventType] = {
    (None, BookingState.CONFIRMED): EventType.BOOKING_CONFIRMED,
    (BookingState.CONFIRMED, BookingState.STARTED): EventType.BOOKING_STARTED,
    (None, BookingState.FINISHED): EventType.BOOKING_FINISHED,
    (None, BookingState.CANCELLED): EventType.BOOKING_CANCELLED,
    (None, BookingState.EXPIRED): EventType.BOOKING_EXPIRED,
}


@dataclass(kw_only=True, eq=False)
class SideEffects:
    """What follows a committed booking change in Redis. One per booking service: it holds the
    index writes still owed."""

    sessions: async_sessionmaker[AsyncSession]
    redis: RedisClient
    keys: RedisKeys
    index: VehicleIndex
    # Vehicles whose search-index entry a booking change could not write (Redis down or
    # hung): retried every second by one task until written (see _owe_index).
    _index_debt: set[str] = field(default_factory=set, init=False, repr=False)
    _index_retry: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def after_change(self, vehicle_id: str, booking_id: uuid.UUID) -> None:
        await self.refresh_vehicle(vehicle_id)
        await self.publish(booking_id)

    async def refresh_vehicle(self, vehicle_id: str) -> bool:
        """Make the search index show the vehicle as PostGIS now has it (reserved ones are
        left out), and tell live subscribers. PostGIS is the truth: while Redis fails search
        answers from PostGIS, and the write is retried (_owe_index) so that a Redis that comes
        back (a hang, a network cut) does not serve the vehicle's earlier state."""
        async with self.sessions() as session:
            hit = await search_repository.vehicle_by_id(session, vehicle_id)
        if hit is None:
            return True
        doc: VehicleDoc = hit.vehicle
        try:
            await self.index.apply(doc.provider_id, [doc], ())
        except (RedisError, OSError) as exc:
            metrics.redis_error("booking")
            log.warning("index update for %s failed, retried until written: %s", vehicle_id, exc)
            self._owe_index(vehicle_id)
            return False
        try:
            await self.index.publish_delta(doc.provider_id, [], [doc], [])
        except (RedisError, OSError) as exc:
            # Subscribers resynchronise when their Redis subscription comes back.
            metrics.redis_error("booking")
            log.warning("live update for %s not published: %s", vehicle_id, exc)
        return True

    def _owe_index(self, vehicle_id: str) -> None:
        if len(self._index_debt) >= _MAX_INDEX_DEBT:
            # A long outage under load: the provider's next sync rebuilds its index anyway.
            log.warning("index retries full: %s waits for its provider's next sync", vehicle_id)
            return
        self._index_debt.add(vehicle_id)
        if self._index_retry is None or self._index_retry.done():
            self._index_retry = asyncio.create_task(self._pay_index_debt())

    async def _pay_index_debt(self) -> None:
        while self._index_debt:
            await asyncio.sleep(_INDEX_RETRY_SECONDS)
            try:
                await self.redis.ping()  # one timeout per round while Redis is away, not one each
            except (RedisError, OSError):
                continue
            for vehicle_id in list(self._index_debt):
                self._index_debt.discard(vehicle_id)
                try:
                    if not await self.refresh_vehicle(vehicle_id):
                        break  # re-owed; Redis went away again: wait for the next round
                except Exception:  # the database: keep the debt, try next round
                    log.exception("index retry for %s failed", vehicle_id)
                    self._index_debt.add(vehicle_id)
                    break

    async def aclose(self) -> None:
        """Stop retrying index writes (the process is shutting down; syncs rebuild)."""
        if self._index_retry is not None:
            self._index_retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._index_retry

    async def publish(self, booking_id: uuid.UUID) -> None:
        """The live signal: ``bookingUpdates`` subscribers re-read the booking."""
        try:
            await publish(self.redis, self.keys.booking_changes, str(booking_id).encode())
        except (RedisError, OSError) as exc:
            metrics.redis_error("booking")
            log.warning("booking update for %s not published: %s", booking_id, exc)


class Changed(NamedTuple):
    """The booking as a transition left it (the transition writer's RETURNING): what its
    organisation's webhook event says."""

    vehicle_id: str
    provider_id: str
    organisation_id: uuid.UUID | None
    user_id: uuid.UUID
    cost_centre_id: uuid.UUID | None
    final_price_minor: int | None
    currency: str | None


async def emit_transition(
    session: AsyncSession,
    booking_id: uuid.UUID,
    row: Changed,
    *,
    expected: BookingState,
    new: BookingState,
    cause: str,
    at: datetime,
) -> None:
    """The organisation's webhook event for this change, if it sends one; in the transaction
    that writes the change (the event exists if and only if the change does)."""
    webhook_event = _WEBHOOK_EVENTS.get((expected, new)) or _WEBHOOK_EVENTS.get((None, new))
    if row.organisation_id is None or webhook_event is None:
        return
    await emit(
        session,
        organisation_id=row.organisation_id,
        event_type=webhook_event,
        payload={
            "booking_id": str(booking_id),
            "state": new.value,
            "member_user_id": str(row.user_id),
            "cost_centre_id": str(row.cost_centre_id) if row.cost_centre_id else None,
            "vehicle_id": row.vehicle_id,
            "provider_id": row.provider_id,
            "final_price_minor": row.final_price_minor,
            "currency": row.currency,
            "cause": cause,
            "at": at.isoformat(),
        },
    )


async def emit_policy_violation(
    session: AsyncSession,
    org: OrgBooking,
    *,
    member_user_id: uuid.UUID,
    vehicle_id: str,
    provider_id: str,
    violations: Sequence[tuple[str, str]],
    at: datetime,
) -> None:
    """``policy.violation``: a reservation the organisation's policy refused, in the
    transaction that stores the refusal as the request's answer."""
    await emit(
        session,
        organisation_id=org.organisation_id,
        event_type=EventType.POLICY_VIOLATION,
        payload={
            "member_user_id": str(member_user_id),
            "vehicle_id": vehicle_id,
            "provider_id": provider_id,
            "cost_centre_id": str(org.cost_centre_id) if org.cost_centre_id else None,
            "violations": [{"policy": p, "detail": d} for p, d in violations],
            "at": at.isoformat(),
        },
    )
