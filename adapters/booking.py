"""The booking capability: how the aggregator reserves, unlocks, pauses, ends and cancels a ride
at an operator, beside the availability contract in :mod:`adapters.base`.

A provider whose operator has a booking API is configured with a booking operator (entry-point
group ``mobility.booking_operators``, e.g. ``tomp``); one without (plain GBFS) has none, and the
API answers with the operator's deep links instead. Each implementation advertises what it can
do as :class:`BookingCapability` values.

Reservation is two steps on purpose: :meth:`BookingOperator.prepare` obtains the operator's
reference for the booking-to-be (TOMP: the offer id, which becomes the booking id) *without
committing anything*; the caller stores that reference durably, and only then calls
:meth:`BookingOperator.reserve`, the call that binds the operator. After a crash between the two
stores, the reference is known and :meth:`BookingOperator.status` settles what happened.

Every call carries our idempotency key. Operators whose API has none (TOMP 1.6 has none: a
repeated ``POST /bookings`` answers 409) are made safe to retry by the implementation: on a
conflict it reads the operator's state instead of failing.

Errors: :class:`OperatorRejected` (the operator said no, with its reason: retrying will not
help), :class:`OperatorUnavailable` (timeout, connection failure, 5xx: the outcome may be
unknown), :class:`BookingNotFoundAtOperator` (the operator does not know the reference).
Money is integer minor units plus ISO 4217 code; conversion from operator decimals is the
implementation's job (:mod:`adapters.money`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import httpx

from adapters.base import installed, load_installed

if TYPE_CHECKING:
    from adapters.credentials import OperatorAuth

BOOKING_ENTRY_POINT_GROUP = "mobility.booking_operators"

__all__ = [
    "BOOKING_ENTRY_POINT_GROUP",
    "BookingCapability",
    "BookingContext",
    "BookingNotFoundAtOperator",
    "BookingOperator",
    "BookingOperatorError",
    "OperatorBooking",
    "OperatorBookingState",
    "OperatorMoney",
    "OperatorOffer",
    "OperatorRejected",
    "OperatorUnavailable",
    "ReservationRequest",
    "available_booking_operators",
    "load_booking_operator",
]


class BookingCapability(StrEnum):
    RESERVE = "RESERVE"
    START = "START"
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    END = "END"
    CANCEL = "CANCEL"
    STATUS = "STATUS"


class OperatorBookingState(StrEnum):
    """The operator's view, mapped to ours (TOMP: booking state combined with the leg state)."""

    PENDING = "PENDING"  # created, not yet binding (TOMP PENDING before COMMIT)
    CONFIRMED = "CONFIRMED"  # reserved, not started
    STARTED = "STARTED"  # in use
    PAUSED = "PAUSED"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class Position(NamedTuple):
    """A point on the ground (WGS 84), such as where a rider ends a trip."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class OperatorMoney:
    amount_minor: int
    currency: str  # ISO 4217


@dataclass(frozen=True, slots=True)
class ReservationRequest:
    """What we ask an operator to reserve."""

    idempotency_key: str
    vehicle_external_id: str
    # Where the vehicle is (the rider walks there): TOMP planning needs a ``from``.
    lat: float
    lon: float
    # The rider's destination, when known.
    to_lat: float | None = None
    to_lon: float | None = None
    # A stable pseudonymous reference for the rider (never their email or name).
    rider_reference: str = ""


@dataclass(frozen=True, slots=True)
class OperatorOffer:
    """The operator's reference for a booking-to-be, before anything is binding."""

    reference: str  # TOMP: the offer id == the booking id to POST
    valid_until: datetime | None = None
    estimated_price: OperatorMoney | None = None


@dataclass(frozen=True, slots=True)
class OperatorBooking:
    """The operator's answer about one booking."""

    reference: str  # the operator's booking id
    state: OperatorBookingState
    leg_reference: str | None = None  # TOMP: the leg id that leg events go to
    expires_at: datetime | None = None  # a reservation held until then
    price: OperatorMoney | None = None  # the operator's estimate, or its final price
    distance_meters: float | None = None
    raw_state: str | None = None  # the operator's own words, for the event log
    extra: Mapping[str, Any] = field(default_factory=dict)


class BookingOperatorError(Exception):
    code: ClassVar[str] = "OPERATOR_ERROR"

    def __init__(self, message: str, *, operator_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.operator_code = operator_code  # the operator's own error code, e.g. TOMP "3004"


class OperatorRejected(BookingOperatorError):
    """The operator refused (vehicle taken, illegal in its current state, user blocked…)."""

    code = "OPERATOR_REJECTED"


class OperatorUnavailable(BookingOperatorError):
    """The operator could not be reached or failed (timeout, 5xx): the outcome is unknown."""

    code = "OPERATOR_UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        operator_code: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message, operator_code=operator_code)
        self.retry_after_seconds = retry_after_seconds


class BookingNotFoundAtOperator(BookingOperatorError):
    code = "OPERATOR_BOOKING_NOT_FOUND"


@dataclass(slots=True)
class BookingContext:
    """What an implementation is given for one call: all HTTP goes through ``http`` (the
    deployment's timeouts and transport); ``auth`` carries the provider's operator credentials
    (put ``await auth.headers(http)`` on every request)."""

    http: httpx.AsyncClient
    auth: OperatorAuth | None = None


@runtime_checkable
class BookingOperator(Protocol):
    name: ClassVar[str]

    @property
    def capabilities(self) -> frozenset[BookingCapability]: ...

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BookingOperator:
        """Validate the provider's ``booking`` config; raise ``AdapterConfigError``."""
        ...

    async def prepare(self, ctx: BookingContext, request: ReservationRequest) -> OperatorOffer:
        """Obtain the operator's reference for this reservation; nothing binding yet."""
        ...

    async def reserve(
        self, ctx: BookingContext, offer: OperatorOffer, request: ReservationRequest
    ) -> OperatorBooking:
        """Make the reservation binding (TOMP: ``POST /bookings`` then ``COMMIT``). Safe to
        call again with the same offer after an unknown outcome."""
        ...

    async def start(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking: ...

    async def pause(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking: ...

    async def resume(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking: ...

    async def end(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str, at: Position
    ) -> OperatorBooking:
        """End the trip where the rider is (``at``), which the operator checks against its zones."""
        ...

    async def cancel(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking: ...

    async def status(self, ctx: BookingContext, reference: str) -> OperatorBooking:
        """The operator's current view; :class:`BookingNotFoundAtOperator` if it has none."""
        ...


def available_booking_operators() -> dict[str, type[BookingOperator]]:
    return installed(BOOKING_ENTRY_POINT_GROUP)


def load_booking_operator(name: str, config: Mapping[str, Any]) -> BookingOperator:
    operator: BookingOperator = load_installed(
        BOOKING_ENTRY_POINT_GROUP, "booking operator", name, config
    )
    return operator
