"""What every booking flow shares: the session factory, the settings, the clock, the side
effects, and the writes the flows all make the same way.

- :meth:`BookingCore.once` and :meth:`BookingCore.answer`: a mutation run once per idempotency
  key (claimed, replayed to a retry, released if the mutation fails), and its answer stored
  (``app/booking/idempotency.py`` says how keys behave).
- :meth:`BookingCore.settle`: an event applied to a booking by the transition writer
  (:func:`app.booking.repository.write_transition`) in a transaction of its own, then the
  vehicle's search entry and the live signal (``app/booking/effects.py``).
- :meth:`BookingCore.take_lease` and :meth:`BookingCore.drop_lease`: the right to change a
  booking while its operator is asked, so two changes never act on one booking at once.

The time is the clock's (:meth:`BookingCore.now`), never ``datetime.now``: the service hands
in its own, so a test that moves the service's clock moves every part of booking.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking import idempotency as idem
from app.booking import outcomes as out
from app.booking import repository
from app.booking.effects import SideEffects
from app.booking.schemas import RiderLike
from app.booking.states import TERMINAL, BookingEvent, BookingState
from app.platform.db import transaction
from app.platform.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["BookingCore", "owner_of", "quietly"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BookingCore:
    """One per booking service; the flows, the operators and maintenance hold it."""

    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    clock: Callable[[], datetime]
    effects: SideEffects

    def now(self) -> datetime:
        return self.clock()

    # ------------------------------------------------------------------ idempotency

    async def once(
        self,
        owner: str,
        key: str,
        operation: str,
        payload: Mapping[str, Any],
        now: datetime,
        run: Callable[[idem.Claimed], Awaitable[out.Outcome]],
    ) -> out.Outcome:
        """``run`` with the idempotency key claimed; a retry with the key gets the first
        request's answer instead. If ``run`` raises, the key is released (the request may be
        retried with it); ``run`` stores its answer itself (:meth:`answer`)."""
        claimed = await idem.claim(
            self.sessions,
            owner=owner,
            key=key,
            operation=operation,
            payload=payload,
            now=now,
            # Longer than any request can run: past it, the request is presumed dead.
            lock_seconds=self.settings.booking_deadline_seconds * 3 + 30,
            ttl_seconds=self.settings.idempotency_ttl_seconds,
        )
        if isinstance(claimed, idem.Replay):
            return out.from_json(claimed.response)
        try:
            return await run(claimed)
        except BaseException:
            await quietly(idem.release(self.sessions, claimed))
            raise

    async def answer(self, claimed: idem.Claimed, outcome: out.Outcome) -> out.Outcome:
        async with transaction(self.sessions) as session:
            await idem.complete(session, claimed, out.to_json(outcome))
        return outcome

    # ------------------------------------------------------------------ transitions

    async def settle(
        self,
        booking_id: uuid.UUID,
        event: BookingEvent,
        cause: str,
        detail: Mapping[str, Any],
        *,
        failure_code: str | None = None,
        expected: BookingState | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Apply ``event`` to a booking in ``expected`` (None: whatever active state it is in
        now) that nobody holds a lease on; False if it is not so."""
        async with transaction(self.sessions) as session:
            found = await repository.lock_booking(session, booking_id)
            if found is None or found[0] in TERMINAL:
                return False
            state, vehicle_id = found
            if expected is not None and state is not expected:
                return False
            applied = await repository.write_transition(
                session,
                booking_id,
                expected=state,
                event=event,
                cause=cause,
                detail=detail,
                now=self.now(),
                failure_code=failure_code,
                values=values,
            )
        if applied:
            await self.effects.after_change(vehicle_id, booking_id)
        return applied

    # ------------------------------------------------------------------ leases

    async def take_lease(self, booking_id: uuid.UUID, expected: BookingState) -> str | None:
        """The right to change this booking (call its operator, then record the outcome), if
        it is still in ``expected`` and nobody else holds it; None otherwise."""
        token = secrets.token_hex(8)
        now = self.now()
        until = now + timedelta(seconds=self.settings.booking_deadline_seconds * 2 + 10)
        async with transaction(self.sessions) as session:
            taken = await repository.take_lease(
                session, booking_id, expected, token=token, now=now, until=until
            )
        return token if taken else None

    async def drop_lease(
        self, booking_id: uuid.UUID, token: str, *, reconcile: bool = False
    ) -> None:
        reconcile_after = (
            self.now() + timedelta(seconds=self.settings.booking_reconcile_after_seconds)
            if reconcile
            else None
        )
        async with transaction(self.sessions) as session:
            await repository.drop_lease(session, booking_id, token, reconcile_after=reconcile_after)


def owner_of(rider: RiderLike) -> str:
    """Whose a rider's idempotency keys are."""
    return f"user:{rider.id}"


async def quietly(call: Awaitable[Any]) -> None:
    try:
        await call
    except Exception:
        log.exception("best-effort step failed")
