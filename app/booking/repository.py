"""Every SQL statement booking makes, the transition writer, and the locks it takes.

Each function runs in the session or transaction its caller opened, so the caller decides what
commits together (a change and its idempotent answer, for one). Time is passed in (``now``),
never read here. The advisory-lock keys come from ``app/platform/advisory_locks.py``, the one home
they
share with sync and push.

Every state change goes through :func:`write_transition`: checked by
:func:`app.booking.states.transition`, written with an event row (time, cause) and the
organisation's webhook event in the same transaction, and guarded by the state it was read in
(and the lease, if one is held), so two concurrent changes cannot both apply.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.booking.effects import Changed, emit_transition
from app.booking.schemas import BookingNotFound
from app.booking.states import ACTIVE, TERMINAL, BookingEvent, BookingState, transition
from app.fleet.access import BOOKERS
from app.fleet.principal import ApiKeyPrincipal, Role
from app.models import Booking, BookingEventRow, OrganisationMember, Vehicle
from app.platform.advisory_locks import RIDER_BOOKINGS_LOCK, VEHICLES_LOCK_SHARED

__all__ = [
    "ACTIVE_NAMES",
    "COMPENSATION_DUE",
    "booking_by_id",
    "booking_for",
    "booking_of_request",
    "bookings_of",
    "clear_reconcile_mark",
    "drop_lease",
    "due_to_expire",
    "due_to_reconcile",
    "events_of",
    "insert_pending",
    "lock_booking",
    "lock_vehicles_shared",
    "mark_compensation_due",
    "may_hold_another",
    "member_of_user",
    "set_operator_reference",
    "take_lease",
    "write_transition",
]

ACTIVE_NAMES = tuple(s.value for s in ACTIVE)
#: failure_code of a PENDING booking whose cancel at the operator did not get through yet.
COMPENSATION_DUE = "COMPENSATION_DUE"


# ---------------------------------------------------------------------------------- reads


async def booking_for(
    session: AsyncSession,
    rider_id: uuid.UUID | None,
    booking_id: uuid.UUID,
    *,
    api_key: ApiKeyPrincipal | None = None,
) -> Booking:
    """The booking, if the caller may see it: the rider it is for; for an organisation's
    booking also its OWNER, ADMIN and BOOKER members and its API keys. Anyone else:
    BOOKING_NOT_FOUND, exactly as for an id that does not exist."""
    booking = await session.get(Booking, booking_id)
    if booking is not None and await _may_see(session, booking, rider_id, api_key):
        return booking
    raise BookingNotFound(f"no booking {booking_id} of yours")


async def _may_see(
    session: AsyncSession,
    booking: Booking,
    rider_id: uuid.UUID | None,
    api_key: ApiKeyPrincipal | None,
) -> bool:
    if api_key is not None:
        return booking.organisation_id == api_key.organisation_id
    if rider_id is None:
        return False
    if booking.user_id == rider_id:
        return True
    if booking.organisation_id is None:
        return False
    role = (
        await session.execute(
            select(OrganisationMember.role).where(
                OrganisationMember.organisation_id == booking.organisation_id,
                OrganisationMember.user_id == rider_id,
            )
        )
    ).scalar_one_or_none()
    return role is not None and Role(role) in BOOKERS


async def booking_by_id(session: AsyncSession, booking_id: uuid.UUID) -> Booking:
    """No access check: for answering a caller about the booking it has just made."""
    booking = await session.get(Booking, booking_id)
    if booking is None:
        raise BookingNotFound(f"no booking {booking_id}")
    return booking


async def bookings_of(
    session: AsyncSession, rider_id: uuid.UUID, *, active: bool | None, first: int
) -> list[Booking]:
    query = select(Booking).where(Booking.user_id == rider_id)
    if active is True:
        query = query.where(Booking.state.in_(ACTIVE_NAMES))
    elif active is False:
        query = query.where(Booking.state.not_in(ACTIVE_NAMES))
    query = query.order_by(Booking.created_at.desc(), Booking.id).limit(first)
    return list((await session.execute(query)).scalars())


async def events_of(
    session: AsyncSession, booking_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Any]]:
    rows = (
        await session.execute(
            select(BookingEventRow)
            .where(BookingEventRow.booking_id.in_(booking_ids))
            .order_by(BookingEventRow.booking_id, BookingEventRow.id)
        )
    ).scalars()
    found: dict[uuid.UUID, list[Any]] = {b: [] for b in booking_ids}
    for row in rows:
        found[row.booking_id].append(row)
    return found


async def booking_of_request(
    session: AsyncSession, rider_id: uuid.UUID, owner: str, key: str
) -> tuple[uuid.UUID, str] | None:
    """The active booking an earlier request with this idempotency key made, if any (id,
    state)."""
    row = (
        await session.execute(
            select(Booking.id, Booking.state)
            .where(
                Booking.user_id == rider_id,
                Booking.idempotency_owner == owner,
                Booking.idempotency_key == key,
                Booking.state.in_(ACTIVE_NAMES),
            )
            .order_by(Booking.created_at.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (row.id, row.state)


async def member_of_user(
    session: AsyncSession, organisation_id: uuid.UUID, user_id: uuid.UUID
) -> OrganisationMember:
    """The acting user's own membership (they are a member: the actor was resolved from it)."""
    return (
        await session.execute(
            select(OrganisationMember).where(
                OrganisationMember.organisation_id == organisation_id,
                OrganisationMember.user_id == user_id,
            )
        )
    ).scalar_one()


async def due_to_expire(session: AsyncSession, now: datetime, limit: int) -> list[Booking]:
    """CONFIRMED bookings whose reservation time has run out, oldest first."""
    return list(
        (
            await session.execute(
                select(Booking)
                .where(
                    Booking.state == BookingState.CONFIRMED.value,
                    Booking.reserved_until < now,
                )
                .order_by(Booking.reserved_until)
                .limit(limit)
            )
        ).scalars()
    )


async def due_to_reconcile(
    session: AsyncSession, now: datetime, cutoff: datetime, limit: int
) -> list[Booking]:
    """Active bookings to settle with the operator: PENDING since before ``cutoff``, or
    marked for reconciliation by ``now``."""
    return list(
        (
            await session.execute(
                select(Booking)
                .where(
                    Booking.state.in_(ACTIVE_NAMES),
                    or_(
                        # Left PENDING by a crash (a live request finishes well before).
                        and_(
                            Booking.state == BookingState.PENDING.value,
                            Booking.updated_at < cutoff,
                        ),
                        # An action whose answer was lost, a compensation still due.
                        Booking.reconcile_after <= now,
                    ),
                )
                .order_by(Booking.updated_at)
                .limit(limit)
            )
        ).scalars()
    )


# ---------------------------------------------------------------------------------- writes


async def may_hold_another(session: AsyncSession, user_id: uuid.UUID, limit: int) -> bool:
    """Whether the rider holds fewer than ``limit`` active bookings; holds the rider's lock
    to the end of the transaction, so their next reservation waits for this one."""
    await session.execute(text(RIDER_BOOKINGS_LOCK), {"user_id": str(user_id)})
    active = await session.scalar(
        select(func.count())
        .select_from(Booking)
        .where(Booking.user_id == user_id, Booking.state.in_(ACTIVE_NAMES))
    )
    return (active or 0) < limit


async def lock_vehicles_shared(session: AsyncSession, provider_id: str) -> None:
    await session.execute(text(VEHICLES_LOCK_SHARED), {"provider": provider_id})


async def insert_pending(session: AsyncSession, booking: Booking, now: datetime) -> None:
    """The PENDING booking, its RESERVE event, and its vehicle marked reserved. The unique
    partial index over active bookings decides a race for the vehicle here (IntegrityError on
    ``ux_bookings_active_vehicle`` at the flush)."""
    session.add(booking)
    await session.flush()
    _log_event(session, booking.id, "RESERVE", None, BookingState.PENDING, "rider", now, {})
    await lock_vehicles_shared(session, booking.provider_id)
    await session.execute(
        update(Vehicle).where(Vehicle.id == booking.vehicle_id).values(is_reserved=True)
    )


async def set_operator_reference(
    session: AsyncSession, booking_id: uuid.UUID, reference: str, now: datetime
) -> None:
    """The operator's reference, stored before the call that binds it (a crash in between
    can then be reconciled)."""
    await session.execute(
        update(Booking)
        .where(Booking.id == booking_id)
        .values(operator_booking_id=reference, updated_at=now)
    )


async def mark_compensation_due(
    session: AsyncSession, booking_id: uuid.UUID, now: datetime
) -> None:
    await session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.state == BookingState.PENDING.value)
        .values(failure_code=COMPENSATION_DUE, reconcile_after=now)
    )


async def clear_reconcile_mark(session: AsyncSession, booking_id: uuid.UUID) -> None:
    await session.execute(
        update(Booking).where(Booking.id == booking_id).values(reconcile_after=None)
    )


async def take_lease(
    session: AsyncSession,
    booking_id: uuid.UUID,
    expected: BookingState,
    *,
    token: str,
    now: datetime,
    until: datetime,
) -> bool:
    """Hold the booking under ``token`` until ``until``, if it is still in ``expected`` and
    nobody else holds it."""
    taken = await session.execute(
        update(Booking)
        .where(
            Booking.id == booking_id,
            Booking.state == expected.value,
            or_(Booking.action_until.is_(None), Booking.action_until < now),
        )
        .values(action_token=token, action_until=until)
        .returning(Booking.id)
    )
    return taken.first() is not None


async def drop_lease(
    session: AsyncSession,
    booking_id: uuid.UUID,
    token: str,
    *,
    reconcile_after: datetime | None = None,
) -> None:
    """Let go of the lease ``token``; with ``reconcile_after``, maintenance asks the operator
    from then on what became of the booking."""
    values: dict[str, Any] = {"action_token": None, "action_until": None}
    if reconcile_after is not None:
        values["reconcile_after"] = reconcile_after
    await session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.action_token == token)
        .values(**values)
    )


async def lock_booking(
    session: AsyncSession, booking_id: uuid.UUID
) -> tuple[BookingState, str] | None:
    """The booking's (state, vehicle id), its row locked to the end of the transaction."""
    found = (
        await session.execute(
            select(Booking.state, Booking.vehicle_id)
            .where(Booking.id == booking_id)
            .with_for_update()
        )
    ).first()
    return None if found is None else (BookingState(found.state), found.vehicle_id)


async def write_transition(
    session: AsyncSession,
    booking_id: uuid.UUID,
    *,
    expected: BookingState,
    event: BookingEvent,
    cause: str,
    detail: Mapping[str, Any],
    now: datetime,
    values: Mapping[str, Any] | None = None,
    failure_code: str | None = None,
    end_position: tuple[float, float] | None = None,
    lease: str | None = None,
) -> bool:
    """Apply ``event`` to a booking still in ``expected`` and held by ``lease`` (None: by
    nobody); False if that is no longer so. Releases the lease and any reconcile mark."""
    new = transition(expected, event)
    changes: dict[str, Any] = {
        "state": new.value,
        "updated_at": now,
        "action_token": None,
        "action_until": None,
        "reconcile_after": None,
        **(values or {}),
    }
    if failure_code is not None:
        changes["failure_code"] = failure_code
    held = (
        Booking.action_token == lease
        if lease is not None
        else or_(Booking.action_until.is_(None), Booking.action_until < now)
    )
    result = await session.execute(
        update(Booking)
        .where(Booking.id == booking_id, Booking.state == expected.value, held)
        .values(**changes)
        .returning(
            Booking.vehicle_id,
            Booking.provider_id,
            Booking.organisation_id,
            Booking.user_id,
            Booking.cost_centre_id,
            Booking.final_price_minor,
            Booking.currency,
        )
    )
    found = result.first()
    if found is None:
        return False
    row = Changed(**found._mapping)
    _log_event(session, booking_id, event, expected, new, cause, now, dict(detail))
    await emit_transition(session, booking_id, row, expected=expected, new=new, cause=cause, at=now)
    if new in TERMINAL:
        vehicle_values: dict[str, Any] = {"is_reserved": False}
        if end_position is not None:
            # The vehicle is where the ride ended (until the operator's next feed says).
            vehicle_values["geom"] = func.ST_SetSRID(
                func.ST_MakePoint(end_position[1], end_position[0]), 4326
            )
        await lock_vehicles_shared(session, row.provider_id)
        await session.execute(
            update(Vehicle).where(Vehicle.id == row.vehicle_id).values(**vehicle_values)
        )
    return True


def _log_event(
    session: AsyncSession,
    booking_id: uuid.UUID,
    event: BookingEvent | str,
    from_state: BookingState | None,
    to_state: BookingState,
    cause: str,
    at: datetime,
    detail: dict[str, Any],
) -> None:
    session.add(
        BookingEventRow(
            booking_id=booking_id,
            at=at,
            event=str(event),
            from_state=from_state.value if from_state else None,
            to_state=to_state.value,
            cause=cause,
            detail={k: v for k, v in detail.items() if v is not None},
        )
    )
