"""The trip actions: start, pause, resume, end and cancel a booking.

Each is an idempotent mutation (the key is claimed after the caller's access is checked, so a
replayed answer is no way around it). The state machine says first whether the action is legal
at all; ending a ride is checked against the ride-end rules (``app/booking/ride_end.py``); then
the booking is leased, the operator asked outside any transaction, and its answer recorded with
the idempotent answer in one transaction. If the operator's answer is lost or cannot be
recorded, the booking is marked for maintenance to ask the operator what became of it.
"""

from __future__ import annotations

import uuid
from typing import Any

from adapters.booking import (
    BookingContext,
    BookingOperator,
    OperatorBooking,
    OperatorBookingState,
    Position,
)
from adapters.booking import OperatorRejected as OperatorSaidNo
from adapters.booking import OperatorUnavailable as OperatorDown
from app.booking import idempotency as idem
from app.booking import outcomes as out
from app.booking import repository
from app.booking.core import BookingCore, owner_of, quietly
from app.booking.operators import Operators
from app.booking.receipts import finish_values
from app.booking.ride_end import ride_end_refusal
from app.booking.schemas import BookingBusy, BookingChanged, RiderLike
from app.booking.states import BookingEvent, BookingState, transition
from app.fleet.principal import ApiKeyPrincipal
from app.models import Booking
from app.platform.db import in_session, transaction
from app.platform.errors import InvalidInput
from app.search import repository as search_repository

__all__ = ["TripActions"]

# The idempotency operation of each action: the mutation's name.
_OPERATIONS = {
    BookingEvent.START: "startTrip",
    BookingEvent.PAUSE: "pauseTrip",
    BookingEvent.RESUME: "resumeTrip",
    BookingEvent.FINISH: "endTrip",
    BookingEvent.CANCEL: "cancelBooking",
}


class TripActions:
    def __init__(self, core: BookingCore, operators: Operators) -> None:
        self.core = core
        self.operators = operators
        self._booking_for = in_session(core.sessions, repository.booking_for)

    async def act(
        self,
        rider: RiderLike | None,
        *,
        api_key: ApiKeyPrincipal | None = None,
        booking_id: uuid.UUID,
        event: BookingEvent,
        idempotency_key: str,
        lat: float | None = None,
        lon: float | None = None,
    ) -> out.Outcome:
        """Start, pause, resume, end (needs ``lat``/``lon``) or cancel a booking."""
        operation = _OPERATIONS[event]
        now = self.core.now()
        payload = {"bookingId": str(booking_id), "lat": lat, "lon": lon}
        if api_key is not None:
            owner = f"key:{api_key.key_id}"
        elif rider is not None:
            owner = owner_of(rider)
        else:
            raise ValueError("a rider or an API key acts")
        rider_id = rider.id if rider is not None else None
        # Access first: a replayed answer is no way around it (a booker since removed from
        # the organisation must not read the booking through an old key).
        await self._booking_for(rider_id, booking_id, api_key=api_key)

        async def run(claimed: idem.Claimed) -> out.Outcome:
            booking = await self._booking_for(rider_id, booking_id, api_key=api_key)
            return await self._act(booking, claimed, booking_id, event, lat, lon)

        return await self.core.once(owner, idempotency_key, operation, payload, now, run)

    async def _act(
        self,
        booking: Booking,
        claimed: idem.Claimed,
        booking_id: uuid.UUID,
        event: BookingEvent,
        lat: float | None,
        lon: float | None,
    ) -> out.Outcome:
        state = BookingState(booking.state)
        transition(state, event)  # IllegalTransition before anything else happens
        if event is BookingEvent.FINISH:
            if lat is None or lon is None:
                raise InvalidInput("endTrip needs the vehicle's position (lat, lon)")
            refusal = await ride_end_refusal(self.core.sessions, booking, lat, lon, self.core.now)
            if refusal is not None:
                return await self.core.answer(claimed, refusal)
        operator = await self.operators.operator_of(booking.provider_id)
        if operator is None:
            # Not stored: a retry with this key runs again once the operator is reachable.
            await idem.release(self.core.sessions, claimed)
            return out.OperatorUnavailable(
                booking.provider_id, None, "this operator's booking API is not available now"
            )
        lease = await self.core.take_lease(booking_id, state)
        if lease is None:
            raise BookingBusy("another change of this booking is under way; retry in a moment")
        ctx = await self.operators.context(booking.provider_id)
        current = OperatorBooking(
            reference=booking.operator_booking_id or "",
            state=_operator_state(state),
            leg_reference=booking.operator_leg_id,
        )
        try:
            answer = await self._ask(
                operator, ctx, current, event, f"{booking_id}:{claimed.key}", lat, lon
            )
        except OperatorSaidNo as exc:
            await self.core.drop_lease(booking_id, lease)
            return await self.core.answer(
                claimed, out.OperatorRejected(booking.provider_id, exc.operator_code, exc.message)
            )
        except OperatorDown as exc:
            # The operator may have done it anyway: maintenance asks it and settles ours to
            # match; the rider may retry with the same key meanwhile.
            await self.core.drop_lease(booking_id, lease, reconcile=True)
            await idem.release(self.core.sessions, claimed)
            return out.OperatorUnavailable(
                booking.provider_id, exc.retry_after_seconds, exc.message
            )
        except BaseException:
            await quietly(self.core.drop_lease(booking_id, lease, reconcile=True))
            raise
        return await self._record(booking, claimed, state, event, answer, lease, lat, lon)

    async def _ask(
        self,
        operator: BookingOperator,
        ctx: BookingContext,
        current: OperatorBooking,
        event: BookingEvent,
        key: str,
        lat: float | None,
        lon: float | None,
    ) -> OperatorBooking:
        if event is BookingEvent.START:
            return await self.operators.call(operator.start(ctx, current, idempotency_key=key))
        if event is BookingEvent.PAUSE:
            return await self.operators.call(operator.pause(ctx, current, idempotency_key=key))
        if event is BookingEvent.RESUME:
            return await self.operators.call(operator.resume(ctx, current, idempotency_key=key))
        if event is BookingEvent.FINISH:
            assert lat is not None and lon is not None
            return await self.operators.call(
                operator.end(ctx, current, idempotency_key=key, at=Position(lat, lon))
            )
        return await self.operators.call(operator.cancel(ctx, current, idempotency_key=key))

    async def _record(
        self,
        booking: Booking,
        claimed: idem.Claimed,
        state: BookingState,
        event: BookingEvent,
        answer: OperatorBooking,
        lease: str,
        lat: float | None,
        lon: float | None,
    ) -> out.Outcome:
        """The operator did it: the change and the idempotent answer, in one transaction."""
        now = self.core.now()
        values: dict[str, Any] = {}
        if event is BookingEvent.START:
            values["started_at"] = now
            position = await self._vehicle_position(booking.vehicle_id)
            if position is not None:
                values["start_lat"], values["start_lon"] = position
        elif event is BookingEvent.FINISH:
            assert lat is not None and lon is not None
            values.update(finish_values(booking, answer, lat, lon, now))
        done = out.BookingDone(booking.id)
        try:
            async with transaction(self.core.sessions) as session:
                applied = await repository.write_transition(
                    session,
                    booking.id,
                    expected=state,
                    event=event,
                    cause="rider",
                    detail={"operator_state": answer.raw_state, "lat": lat, "lon": lon},
                    now=self.core.now(),
                    values=values,
                    end_position=(lat, lon) if lat is not None and lon is not None else None,
                    lease=lease,
                )
                if not applied:
                    # Our lease lapsed (a very slow operator) and something else moved.
                    raise BookingChanged("the booking changed meanwhile; read it again")
                await idem.complete(session, claimed, out.to_json(done))
        except BaseException:
            # The operator did it and we could not record it: maintenance re-reads it.
            await quietly(self.core.drop_lease(booking.id, lease, reconcile=True))
            raise
        await self.core.effects.after_change(booking.vehicle_id, booking.id)
        return done

    async def _vehicle_position(self, vehicle_id: str) -> tuple[float, float] | None:
        async with self.core.sessions() as session:
            hit = await search_repository.vehicle_by_id(session, vehicle_id)
        return (hit.vehicle.lat, hit.vehicle.lon) if hit else None


def _operator_state(state: BookingState) -> OperatorBookingState:
    return {
        BookingState.PENDING: OperatorBookingState.PENDING,
        BookingState.CONFIRMED: OperatorBookingState.CONFIRMED,
        BookingState.STARTED: OperatorBookingState.STARTED,
        BookingState.PAUSED: OperatorBookingState.PAUSED,
    }.get(state, OperatorBookingState.CANCELLED)
