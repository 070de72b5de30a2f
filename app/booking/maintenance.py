"""Booking upkeep, run periodically: expire reservations not started in time, settle bookings
left PENDING by a crash (by asking the operator), forget old idempotency keys.

Every step is idempotent and guarded by the state it read, so several processes may run it at
once (each booking is settled by whichever gets there first; the others change nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from adapters.booking import (
    BookingNotFoundAtOperator,
    OperatorBooking,
    OperatorBookingState,
)
from adapters.booking import OperatorRejected as OperatorSaidNo
from adapters.booking import OperatorUnavailable as OperatorDown
from app.booking import idempotency as idem
from app.booking import outcomes as out
from app.booking import repository
from app.booking.receipts import finish_values
from app.booking.repository import COMPENSATION_DUE
from app.booking.service import BookingService
from app.booking.states import BookingEvent, BookingState, transition
from app.fleet.webhooks import forget_old_events
from app.models import Booking
from app.platform.background import in_background
from app.platform.db import transaction

log = logging.getLogger(__name__)

__all__ = ["MaintenanceReport", "run_maintenance", "start_booking_maintenance"]

_BATCH = 100


@dataclass(slots=True)
class MaintenanceReport:
    expired: list[uuid.UUID] = field(default_factory=list)
    reconciled: dict[uuid.UUID, str] = field(default_factory=dict)  # booking -> new state
    left_for_later: list[uuid.UUID] = field(default_factory=list)  # operator unreachable
    forgotten_keys: int = 0
    forgotten_events: int = 0  # organisation events past their retention (webhooks)


async def run_maintenance(service: BookingService) -> MaintenanceReport:
    report = MaintenanceReport()
    await _expire(service, report)
    await _reconcile(service, report)
    async with transaction(service.sessions) as session:
        report.forgotten_keys = await idem.forget_expired(session, service.now())
        report.forgotten_events = await forget_old_events(session, service.now())
    return report


class _Skip(Exception):
    """Leave this booking for a later round (operator unreachable, someone else acting)."""


async def _each(
    service: BookingService,
    report: MaintenanceReport,
    bookings: list[Booking],
    settle: Any,
) -> None:
    # One booking's trouble (a refused read, a bug) must not stop the others' upkeep.
    for booking in bookings:
        try:
            await settle(service, booking, report)
        except (_Skip, OperatorDown) as exc:
            log.info("booking %s: left for a later round (%s)", booking.id, exc)
            report.left_for_later.append(booking.id)
        except Exception:
            log.exception("booking %s: maintenance failed; next round tries again", booking.id)
            report.left_for_later.append(booking.id)


async def _expire(service: BookingService, report: MaintenanceReport) -> None:
    now = service.now()
    async with service.sessions() as session:
        due = await repository.due_to_expire(session, now, _BATCH)
    await _each(service, report, due, _expire_one)


async def _expire_one(service: BookingService, booking: Booking, report: MaintenanceReport) -> None:
    lease = await service.core.take_lease(booking.id, BookingState.CONFIRMED)
    if lease is None:
        raise _Skip("a change is under way")  # e.g. the rider is starting it right now
    try:
        operator, ctx = await _operator(service, booking)
        if operator is not None and booking.operator_booking_id:
            current = _as_operator_booking(booking)
            try:
                await service.operators.call(
                    operator.cancel(ctx, current, idempotency_key=f"{booking.id}:expire")
                )
            except (OperatorSaidNo, BookingNotFoundAtOperator):
                # Refused: the operator's booking moved on (let go already, or the ride
                # started after all). Ours follows what the operator holds.
                at_operator = await _status(service, operator, ctx, booking)
                if at_operator is None or at_operator.state in _GONE:
                    pass  # let go there: expire here
                else:
                    state = await _converge(service, booking, at_operator, lease)
                    if state is not None:
                        report.reconciled[booking.id] = state
                    return
        expired = await _write_leased(
            service,
            booking,
            lease,
            expected=BookingState.CONFIRMED,
            event=BookingEvent.EXPIRE,
            cause="expiry",
            detail={"reserved_until": str(booking.reserved_until)},
        )
        if expired:
            report.expired.append(booking.id)
    finally:
        await service.core.drop_lease(booking.id, lease)


_GONE = frozenset(
    {
        OperatorBookingState.CANCELLED,
        OperatorBookingState.EXPIRED,
        OperatorBookingState.REJECTED,
    }
)


def _as_operator_booking(booking: Booking) -> OperatorBooking:
    return OperatorBooking(
        reference=booking.operator_booking_id or "",
        state=OperatorBookingState(booking.state)
        if booking.state in OperatorBookingState.__members__
        else OperatorBookingState.PENDING,
        leg_reference=booking.operator_leg_id,
    )


async def _status(
    service: BookingService, operator: Any, ctx: Any, booking: Booking
) -> OperatorBooking | None:
    """The operator's view; None when it does not know the booking."""
    if not booking.operator_booking_id:
        return None
    try:
        result: OperatorBooking = await service.operators.call(
            operator.status(ctx, booking.operator_booking_id)
        )
    except BookingNotFoundAtOperator:
        return None
    return result


async def _operator(service: BookingService, booking: Booking) -> tuple[Any, Any]:
    operator = await service.operators.operator_of(booking.provider_id)
    if operator is None:
        return None, None
    return operator, await service.operators.context(booking.provider_id)


# Which of our events brings a booking in state (key) to the operator's state (value).
_CONVERGE: dict[tuple[BookingState, OperatorBookingState], BookingEvent] = {
    (BookingState.PENDING, OperatorBookingState.CONFIRMED): BookingEvent.CONFIRM,
    (BookingState.CONFIRMED, OperatorBookingState.STARTED): BookingEvent.START,
    (BookingState.CONFIRMED, OperatorBookingState.PAUSED): BookingEvent.START,
    (BookingState.STARTED, OperatorBookingState.PAUSED): BookingEvent.PAUSE,
    (BookingState.PAUSED, OperatorBookingState.STARTED): BookingEvent.RESUME,
    (BookingState.STARTED, OperatorBookingState.FINISHED): BookingEvent.FINISH,
    (BookingState.PAUSED, OperatorBookingState.FINISHED): BookingEvent.FINISH,
    (BookingState.CONFIRMED, OperatorBookingState.CANCELLED): BookingEvent.CANCEL,
    (BookingState.CONFIRMED, OperatorBookingState.EXPIRED): BookingEvent.EXPIRE,
    (BookingState.CONFIRMED, OperatorBookingState.REJECTED): BookingEvent.CANCEL,
    (BookingState.STARTED, OperatorBookingState.CANCELLED): BookingEvent.FAIL,
    (BookingState.PAUSED, OperatorBookingState.CANCELLED): BookingEvent.FAIL,
}


async def _converge(
    service: BookingService, booking: Booking, at_operator: OperatorBooking, lease: str
) -> str | None:
    """Move our booking (held by ``lease``) to what the operator holds, in one event where
    the state machine has one; returns the new state, None if nothing was (or could be) done."""
    state = BookingState(booking.state)
    event = _CONVERGE.get((state, at_operator.state))
    if event is None:
        return None
    now = service.now()
    values: dict[str, Any] = {}
    if event is BookingEvent.CONFIRM:
        values["operator_leg_id"] = at_operator.leg_reference
        values["reserved_until"] = at_operator.expires_at or (
            now + timedelta(minutes=service.settings.default_reservation_minutes)
        )
    elif event is BookingEvent.START:
        values["started_at"] = now
    elif event is BookingEvent.FINISH:
        # Where the ride ended is not known here; the operator's own figures are billed.
        values.update(finish_values(booking, at_operator, None, None, now))
    applied = await _write_leased(
        service,
        booking,
        lease,
        expected=state,
        event=event,
        cause="reconciliation",
        detail={"operator_state": at_operator.raw_state or at_operator.state.value},
        values=values,
        # A confirmed booking answers the rider's request that died with the process, so
        # their retry gets it (the booking was made at the instant the key was claimed).
        settle_request=event is BookingEvent.CONFIRM,
        response=out.to_json(out.BookingDone(booking.id)),
    )
    return transition(state, event).value if applied else None


async def _reconcile(service: BookingService, report: MaintenanceReport) -> None:
    now = service.now()
    cutoff = now - timedelta(seconds=service.settings.booking_reconcile_after_seconds)
    async with service.sessions() as session:
        stuck = await repository.due_to_reconcile(session, now, cutoff, _BATCH)
    await _each(service, report, stuck, _reconcile_one)


async def _reconcile_one(
    service: BookingService, booking: Booking, report: MaintenanceReport
) -> None:
    state = BookingState(booking.state)
    lease = await service.core.take_lease(booking.id, state)
    if lease is None:
        raise _Skip("a change is under way")
    try:
        operator, ctx = await _operator(service, booking)
        if operator is None:
            # No usable booking API now (misconfigured): nothing can be asked; keep it.
            raise _Skip("the operator's booking API is not usable")
        at_operator = await _status(service, operator, ctx, booking)
        compensating = booking.failure_code == COMPENSATION_DUE
        if state is BookingState.PENDING and (
            compensating
            or at_operator is None
            or at_operator.state is not OperatorBookingState.CONFIRMED
        ):
            if at_operator is not None and at_operator.state not in _GONE:
                # Held there but never ours to keep (or never committed): let it go first.
                with contextlib.suppress(OperatorSaidNo, BookingNotFoundAtOperator):
                    await service.operators.call(
                        operator.cancel(ctx, at_operator, idempotency_key=f"{booking.id}:reconcile")
                    )
            result = await _fail(service, booking, at_operator, lease, compensating)
        elif at_operator is None:
            raise _Skip("the operator does not know an active booking; left for staff")
        else:
            result = await _converge(service, booking, at_operator, lease)
            if result is None and _same(state, at_operator.state):
                await _clear_mark(service, booking.id)
        if result is not None:
            report.reconciled[booking.id] = result
    finally:
        await service.core.drop_lease(booking.id, lease)


def _same(ours: BookingState, theirs: OperatorBookingState) -> bool:
    return ours.value == theirs.value


async def _clear_mark(service: BookingService, booking_id: uuid.UUID) -> None:
    async with transaction(service.sessions) as session:
        await repository.clear_reconcile_mark(session, booking_id)


async def _fail(
    service: BookingService,
    booking: Booking,
    at_operator: OperatorBooking | None,
    lease: str,
    compensating: bool,
) -> str | None:
    detail = {
        "operator_state": at_operator.raw_state or at_operator.state.value
        if at_operator
        else "unknown to the operator"
    }
    failed = await _write_leased(
        service,
        booking,
        lease,
        expected=BookingState.PENDING,
        event=BookingEvent.FAIL,
        cause="compensation" if compensating else "reconciliation",
        detail=detail,
        failure_code=booking.failure_code if compensating else "RECONCILED",
        # The rider's request died with the process: its key is forgotten, so their retry
        # may run again, and a failed booking never keeps it locked.
        settle_request=not compensating,
        response=None,
    )
    return BookingState.FAILED.value if failed else None


async def _write_leased(
    service: BookingService,
    booking: Booking,
    lease: str,
    *,
    expected: BookingState,
    event: BookingEvent,
    cause: str,
    detail: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
    failure_code: str | None = None,
    settle_request: bool = False,
    response: dict[str, Any] | None = None,
) -> bool:
    """Apply ``event`` to ``booking`` (in ``expected``, held by ``lease``) in a transaction of
    its own, then its effects; False if it was no longer so. With ``settle_request``, the
    idempotency key of the rider's request that made the booking is settled in the same
    transaction (answered with ``response``, or forgotten when it is None)."""
    async with transaction(service.sessions) as session:
        applied = await repository.write_transition(
            session,
            booking.id,
            now=service.now(),
            expected=expected,
            event=event,
            cause=cause,
            detail=detail,
            values=values,
            failure_code=failure_code,
            lease=lease,
        )
        if applied and settle_request and booking.idempotency_owner and booking.idempotency_key:
            await idem.settle_orphan(
                session,
                idem.Claimed(booking.idempotency_owner, booking.idempotency_key),
                claimed_at=booking.created_at,
                response=response,
            )
    if applied:
        await service.effects.after_change(booking.vehicle_id, booking.id)
    return applied


@contextlib.asynccontextmanager
async def start_booking_maintenance(service: BookingService) -> AsyncIterator[None]:
    """Run :func:`run_maintenance` every ``booking_maintenance_interval_seconds`` in the
    background for as long as the context is open (``mobility serve``)."""

    async def loop() -> None:
        while True:
            try:
                report = await run_maintenance(service)
                if report.expired or report.reconciled:
                    log.info(
                        "booking maintenance: %d expired, %d reconciled",
                        len(report.expired),
                        len(report.reconciled),
                    )
            except Exception:
                log.exception("booking maintenance failed; trying again next round")
            await asyncio.sleep(service.settings.booking_maintenance_interval_seconds)

    async with in_background(loop(), name="booking-maintenance"):
        yield
