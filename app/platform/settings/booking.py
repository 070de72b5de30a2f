"""Booking: who may book what, the operator call's timeout and the reservation's deadline, how
long a reservation is held, bookings per rider, settling bookings left pending, and
idempotency keys.

Read by app/booking/service.py, app/booking/maintenance.py (reconciliation and expiry),
app/booking/eligibility.py (through the service) and app/runtime.py (the operators' HTTP
client timeout).
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class BookingSettings(MobilityBaseSettings):
    # --- Booking (app/booking) ---
    # Eligibility per form factor: minimum age and whether a verified licence is needed. The
    # keys are form factors; a form factor not listed has no requirement.
    eligibility_rules: dict[str, dict[str, int | bool]] = Field(
        default_factory=lambda: {
            "car": {"min_age": 18, "licence_required": True},
            "moped": {"min_age": 16, "licence_required": True},
        }
    )
    # Timeout for one call to an operator's booking API, and the overall deadline of a
    # reservation (planning + booking + commit).
    booking_http_timeout_seconds: float = Field(default=10.0, gt=0)
    booking_deadline_seconds: float = Field(default=20.0, gt=0)
    # A reservation is held this long when the operator does not say (GBFS
    # default_reserve_time is per vehicle type and wins).
    default_reservation_minutes: int = Field(default=15, ge=1)
    # Bookings one rider may hold at once (reserved, riding or paused), whoever booked them
    # (the rider, or a booker or API key of their organisation): one account cannot hoard a fleet.
    max_active_bookings_per_rider: int = Field(default=3, ge=1)
    # Bookings left PENDING longer than this (a crash between the operator's answer and our
    # commit) are settled by the reconciliation task, which asks the operator.
    booking_reconcile_after_seconds: float = Field(default=60.0, gt=0)
    booking_maintenance_interval_seconds: float = Field(default=15.0, gt=0)
    # Idempotency keys are kept this long, then forgotten.
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
