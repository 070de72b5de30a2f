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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from adapters.booking import (
    BookingNotFoundAtOperator,
    OperatorBooking,
    OperatorBookingState,
)
from adapters.booking import OperatorRejected as OperatorSaidNo
from adapters.booking import OperatorUnavailable as OperatorDown
from app.booking import idempotency as idem
from app.booking import outcomes as out
from app.booking.service import BookingService
from app.booking.states import BookingEvent, BookingState
from app.db import transaction
from app.models import Booking, Provider

log = logging.getLogger(__name__)

__all__ = ["MaintenanceReport", "run_maintenance", "start_booking_maintenance"]

_BATCH = 100


@dataclass(slots=True)
class MaintenanceReport:
    expired: list[uuid.UUID] = field(default_factory=list)
    reconciled: dict[uuid.UUID, str] = field(default_factory=dict)  # booking -> new state
    left_for_later: list[uuid.UUID] = field(default_factory=list)  # operator unreachable
    forgotten_keys: int = 0


async def run_maintenance(service: BookingService) -> MaintenanceReport:
    report = MaintenanceReport()
    await _expire(service, report)
    await _reconcile(service, report)
    async with transaction(service.sessions) as session:
        report.forgotten_keys = await idem.forget_expired(session, service.now())
    return report


async def _expire(service: BookingService, report: MaintenanceReport) -> None:
    now = service.now()
    async with service.sessions() as session:
        due = (
            await session.execute(
                select(Booking)
                .where(
                    Booking.state == BookingState.CONFIRMED.value,
                    Booking.reserved_until < now,
                )
                .order_by(Booking.reserved_until)
                .limit(_BATCH)
            )
        ).scalars()
        bookings = list(due)
    for booking in bookings:
        # The operator expires it on its side too; cancelling is how we make sure the vehicle
        # is not held there (a refusal means it already let go).
        await _cancel_at_operator(service, booking, f"{booking.id}:expire")
        if await service._settle(
            booking.id,
            BookingEvent.EXPIRE,
            "expiry",
            {"reserved_until": str(booking.reserved_until)},
        ):
            report.expired.append(booking.id)


async def _cancel_at_operator(service: BookingService, booking: Booking, key: str) -> bool:
    """Best effort; False only when the operator could not be reached."""
    if not booking.operator_booking_id:
        return True
    operator, ctx = await _operator(service, booking)
    if operator is None or ctx is None:
        return True
    current = OperatorBooking(
        reference=booking.operator_booking_id,
        state=OperatorBookingState(booking.state)
        if booking.state in OperatorBookingState.__members__
        else OperatorBookingState.PENDING,
        leg_reference=booking.operator_leg_id,
    )
    try:
        await service._call(operator.cancel(ctx, current, idempotency_key=key))
    except (OperatorSaidNo, BookingNotFoundAtOperator):
        pass
    except OperatorDown:
        return False
    return True


async def _operator(service: BookingService, booking: Booking) -> tuple[Any, Any]:
    async with service.sessions() as session:
        provider = await session.get(Provider, booking.provider_id)
    if provider is None:
        return None, None
    try:
        operator = service.operator_for(provider)
    except Exception:
        log.exception("provider %s: booking operator unusable", provider.id)
        return None, None
    if operator is None:
        return None, None
    return operator, await service._context(provider.id)


async def _reconcile(service: BookingService, report: MaintenanceReport) -> None:
    cutoff = service.now() - timedelta(seconds=service.settings.booking_reconcile_after_seconds)
    async with service.sessions() as session:
        stuck = list(
            (
                await session.execute(
                    select(Booking)
                    .where(Booking.state == BookingState.PENDING.value, Booking.updated_at < cutoff)
                    .order_by(Booking.updated_at)
                    .limit(_BATCH)
                )
            ).scalars()
        )
    for booking in stuck:
        try:
            state = await _reconcile_one(service, booking)
        except OperatorDown as exc:
            log.warning("booking %s: operator unreachable, reconcile later (%s)", booking.id, exc)
            report.left_for_later.append(booking.id)
            continue
        if state is not None:
            report.reconciled[booking.id] = state


async def _reconcile_one(service: BookingService, booking: Booking) -> str | None:
    """Ask the operator what became of a booking we left PENDING, and settle ours to match."""
    operator, ctx = await _operator(service, booking)
    at_operator: OperatorBooking | None = None
    if operator is not None and ctx is not None and booking.operator_booking_id:
        try:
            at_operator = await service._call(operator.status(ctx, booking.operator_booking_id))
        except BookingNotFoundAtOperator:
            at_operator = None
    if at_operator is not None and at_operator.state is OperatorBookingState.CONFIRMED:
        # The operator holds the vehicle for the rider: adopt it, and answer the rider's
        # request (its idempotency key) with it, so their retry gets the booking.
        reserved_until = at_operator.expires_at or (
            service.now() + timedelta(minutes=service.settings.default_reservation_minutes)
        )
        async with transaction(service.sessions) as session:
            adopted = await service._transition_in(
                session,
                booking.id,
                expected=BookingState.PENDING,
                event=BookingEvent.CONFIRM,
                cause="reconciliation",
                detail={"operator_state": at_operator.raw_state},
                values={
                    "operator_leg_id": at_operator.leg_reference,
                    "reserved_until": reserved_until,
                },
            )
            if adopted and booking.idempotency_owner and booking.idempotency_key:
                await idem.complete(
                    session,
                    idem.Claimed(booking.idempotency_owner, booking.idempotency_key),
                    out.to_json(out.BookingDone(booking.id)),
                )
        if adopted:
            await service._after_change(booking.vehicle_id, booking.id)
            return BookingState.CONFIRMED.value
        return None
    # Never committed (still PENDING there): let it go at the operator before we let go of
    # the vehicle.
    if (
        at_operator is not None
        and at_operator.state is OperatorBookingState.PENDING
        and not await _cancel_at_operator(service, booking, f"{booking.id}:reconcile")
    ):
        raise OperatorDown("cancel during reconciliation failed")
    detail = {"operator_state": at_operator.raw_state if at_operator else "unknown to the operator"}
    settled = await service._settle(
        booking.id, BookingEvent.FAIL, "reconciliation", detail, failure_code="RECONCILED"
    )
    if settled and booking.idempotency_owner and booking.idempotency_key:
        # The rider's request died with the process; their retry may run again.
        await idem.release(
            service.sessions, idem.Claimed(booking.idempotency_owner, booking.idempotency_key)
        )
    return BookingState.FAILED.value if settled else None


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

    task = asyncio.create_task(loop(), name="booking-maintenance")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
