"""What callers of the booking service pass and get back besides outcomes: who books
(:class:`RiderLike`), for which organisation (:class:`OrgBooking`), and the errors the service
raises (each a :class:`app.platform.errors.DomainError` with a stable code).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from app.platform.errors import DomainError, NotFound

__all__ = ["BookingBusy", "BookingChanged", "BookingNotFound", "OrgBooking", "RiderLike"]


class RiderLike(Protocol):
    """Who books: the accounts service's rider (only what booking needs of it)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def birth_date(self) -> date | None: ...

    @property
    def licence_status(self) -> Any: ...


class BookingNotFound(NotFound):
    # Someone else's booking is "not found" too: ids are not confirmed by guessing.
    code = "BOOKING_NOT_FOUND"


class BookingBusy(DomainError):
    """Another change of the booking is under way (its operator call not answered yet)."""

    code = "BOOKING_BUSY"


class BookingChanged(DomainError):
    """The booking changed between our read and our write (another request won)."""

    code = "BOOKING_CHANGED"


@dataclass(frozen=True, slots=True)
class OrgBooking:
    """A booking made for an organisation (issue 6): for one of its members, charged to a cost
    centre, by a member (a booker, or the rider themselves) or by one of its API keys."""

    organisation_id: uuid.UUID
    cost_centre_id: uuid.UUID | None
    booked_by_user_id: uuid.UUID | None
    booked_by_api_key_id: uuid.UUID | None
