"""Bookings, their event log and the idempotency keys of booking requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    DateTime,
    Float,
    Index,
    LargeBinary,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, _now_by_default, _uuid_pk, _uuid_ref

#: The booking states that hold a vehicle, as the database knows them: migration 0008's unique
#: partial index ``ux_bookings_active_vehicle`` is built over them. The booking domain's state
#: machine (app/booking/states.ACTIVE) is checked against this at import; the sync and push
#: paths read it here, so they need nothing of the booking domain.
ACTIVE_BOOKING_STATES: tuple[str, ...] = ("PENDING", "CONFIRMED", "STARTED", "PAUSED")


class Booking(Base):
    """One booking of one vehicle by one rider (migration 0008). PostgreSQL is the arbiter of
    "one active booking per vehicle": a unique partial index over ``vehicle_id`` for the active
    states (app/booking/states.ACTIVE). ``provider_id`` has no foreign key on purpose: deleting
    a provider must not delete (or be blocked by) riders' booking history."""

    __tablename__ = "bookings"
    __table_args__ = (
        Index(
            "ux_bookings_active_vehicle",
            "vehicle_id",
            unique=True,
            postgresql_where=text(
                "state IN (" + ", ".join(f"'{s}'" for s in ACTIVE_BOOKING_STATES) + ")"
            ),
        ),
        Index("ix_bookings_user_created", "user_id", text("created_at DESC")),
        Index(
            "ix_bookings_open",
            "state",
            "updated_at",
            postgresql_where=text("state IN ('PENDING', 'CONFIRMED')"),
        ),
        Index(
            "ix_bookings_reconcile",
            "reconcile_after",
            postgresql_where=text("reconcile_after IS NOT NULL"),
        ),
        Index(
            "ix_bookings_organisation_created",
            "organisation_id",
            "created_at",
            postgresql_where=text("organisation_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = _uuid_ref("users.id", ondelete="RESTRICT")
    provider_id: Mapped[str] = mapped_column(Text, nullable=False)
    vehicle_id: Mapped[str] = mapped_column(Text, nullable=False)  # public "<provider>:<ext>"
    vehicle_external_id: Mapped[str] = mapped_column(Text, nullable=False)
    vehicle_type_id: Mapped[str | None] = mapped_column(Text)
    form_factor: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(Text, nullable=False)
    # The operator's side: its booking and leg ids, as soon as they are known (before the
    # call that makes them binding, so a crash can be reconciled by asking the operator).
    operator_booking_id: Mapped[str | None] = mapped_column(Text)
    operator_leg_id: Mapped[str | None] = mapped_column(Text)
    # The pricing plan as it was at reservation (GBFS shape, minor units): the final price
    # uses it even if the operator changes its plans meanwhile.
    pricing_plan: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The vehicle type's CO2 per km at reservation, for usage reports (migration 0013).
    co2_grams_per_km: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(CHAR(3))
    estimated_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    final_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    start_lat: Mapped[float | None] = mapped_column(Float)
    start_lon: Mapped[float | None] = mapped_column(Float)
    end_lat: Mapped[float | None] = mapped_column(Float)
    end_lon: Mapped[float | None] = mapped_column(Float)
    distance_meters: Mapped[float | None] = mapped_column(Float)
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_code: Mapped[str | None] = mapped_column(Text)
    # The reserveVehicle request that created it, so the reconciliation task can record the
    # answer under that request's idempotency key when it settles a booking after a crash.
    idempotency_owner: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    # Booked for an organisation (migration 0010): the rider is the member it is for; who
    # booked it is the member (booker) or API key that asked.
    organisation_id: Mapped[uuid.UUID | None] = _uuid_ref("organisations.id", ondelete="RESTRICT")
    cost_centre_id: Mapped[uuid.UUID | None] = _uuid_ref("cost_centres.id", ondelete="SET NULL")
    booked_by_user_id: Mapped[uuid.UUID | None] = _uuid_ref("users.id", ondelete="SET NULL")
    booked_by_api_key_id: Mapped[uuid.UUID | None] = _uuid_ref("api_keys.id", ondelete="SET NULL")
    # The one change in flight (migration 0011): whoever holds an unexpired lease is the only
    # one who may call the operator for this booking or change its state.
    action_token: Mapped[str | None] = mapped_column(Text)
    action_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when what the operator holds may differ from ours (an action's answer was lost, a
    # compensating cancel is still due): maintenance asks the operator after this time.
    reconcile_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now_by_default()
    updated_at: Mapped[datetime] = _now_by_default()


class BookingEventRow(Base):
    """Every transition of a booking, with its time and cause (migration 0008)."""

    __tablename__ = "booking_events"
    __table_args__ = (Index("ix_booking_events_booking", "booking_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    booking_id: Mapped[uuid.UUID] = _uuid_ref("bookings.id", ondelete="CASCADE")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    event: Mapped[str] = mapped_column(Text, nullable=False)
    from_state: Mapped[str | None] = mapped_column(Text)
    to_state: Mapped[str] = mapped_column(Text, nullable=False)
    # Who or what caused it: "rider", "operator", "expiry", "reconciliation", "compensation"…
    cause: Mapped[str] = mapped_column(Text, nullable=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)


class IdempotencyKey(Base):
    """A mutation's idempotency key (migration 0008): the first request's payload hash and, once
    done, its answer, so the same key and payload replays it. Scoped to the caller."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)

    owner: Mapped[str] = mapped_column(Text, primary_key=True)  # e.g. "user:<uuid>"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    operation: Mapped[str] = mapped_column(Text, nullable=False)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)  # IN_PROGRESS | DONE
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now_by_default()
    # An IN_PROGRESS key whose request died (process killed) is free again after this.
    locked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
