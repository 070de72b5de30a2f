"""The booking state machine: the one place that says which change of state is legal.

    PENDING ──confirm──> CONFIRMED ──start──> STARTED ──pause──> PAUSED
       │                    │                  │  ^────resume───┘ │
       │                    │                  └──finish──> FINISHED <──finish──┘
       ├─reject─> REJECTED  ├─cancel─> CANCELLED
       ├─cancel─> CANCELLED ├─expire─> EXPIRED     (the reservation time ran out)
       ├─expire─> EXPIRED   └─fail───> FAILED      (we could not reach a decision with the
       └─fail───> FAILED                            operator, and compensated)

STARTED and PAUSED can also FAIL (the operator lost the trip); nothing leaves a terminal state.
PENDING is ours (the operator has not answered yet). The states map onto TOMP-API 1.6's booking
and leg states in the TOMP adapter; they are kept operator-neutral here.

An illegal change raises :class:`IllegalTransition` (a typed error with a stable code), never a
silent no-op: a client that ends a trip twice is told so, and the booking service replays the
first answer only through idempotency keys, not by ignoring the second request.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType

from app.models import ACTIVE_BOOKING_STATES
from app.platform.errors import DomainError

__all__ = [
    "ACTIVE",
    "RIDER_EVENTS",
    "TERMINAL",
    "BookingEvent",
    "BookingState",
    "IllegalTransition",
    "allowed_events",
    "transition",
]


class BookingState(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"  # reserved: held for the operator's reservation time
    STARTED = "STARTED"  # unlocked, in use
    PAUSED = "PAUSED"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


class BookingEvent(StrEnum):
    CONFIRM = "CONFIRM"
    REJECT = "REJECT"
    START = "START"
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    FINISH = "FINISH"
    CANCEL = "CANCEL"
    EXPIRE = "EXPIRE"
    FAIL = "FAIL"


S, E = BookingState, BookingEvent

_TRANSITIONS: MappingProxyType[tuple[BookingState, BookingEvent], BookingState] = MappingProxyType(
    {
        (S.PENDING, E.CONFIRM): S.CONFIRMED,
        (S.PENDING, E.REJECT): S.REJECTED,
        (S.PENDING, E.CANCEL): S.CANCELLED,
        (S.PENDING, E.EXPIRE): S.EXPIRED,
        (S.PENDING, E.FAIL): S.FAILED,
        (S.CONFIRMED, E.START): S.STARTED,
        (S.CONFIRMED, E.CANCEL): S.CANCELLED,
        (S.CONFIRMED, E.EXPIRE): S.EXPIRED,
        (S.CONFIRMED, E.FAIL): S.FAILED,
        (S.STARTED, E.PAUSE): S.PAUSED,
        (S.STARTED, E.FINISH): S.FINISHED,
        (S.STARTED, E.FAIL): S.FAILED,
        (S.PAUSED, E.RESUME): S.STARTED,
        (S.PAUSED, E.FINISH): S.FINISHED,
        (S.PAUSED, E.FAIL): S.FAILED,
    }
)

#: States in which a booking holds its vehicle: at most one such booking per vehicle (the
#: unique partial index of the bookings table is built from this set).
ACTIVE = frozenset({S.PENDING, S.CONFIRMED, S.STARTED, S.PAUSED})
# The database's own list (the unique index, and what sync and push hold vehicles for).
assert {s.value for s in ACTIVE} == set(ACTIVE_BOOKING_STATES), ACTIVE_BOOKING_STATES
#: States nothing leaves.
TERMINAL = frozenset(BookingState) - ACTIVE


#: What a rider can ask for; the rest (confirm, reject, expire, fail) is the system's doing.
RIDER_EVENTS = frozenset({E.START, E.PAUSE, E.RESUME, E.FINISH, E.CANCEL})


class IllegalTransition(DomainError):
    code = "ILLEGAL_TRANSITION"

    def __init__(self, state: BookingState, event: BookingEvent) -> None:
        possible = allowed_events(state)
        if event in RIDER_EVENTS:
            # A rider is told what they can do, not what the system might do to the booking.
            possible &= RIDER_EVENTS
        allowed = ", ".join(sorted(possible)) or "nothing: it is over"
        super().__init__(
            f"a {state.value} booking cannot {event.value.lower()} (possible now: {allowed})"
        )
        self.state = state
        self.event = event


def transition(state: BookingState, event: BookingEvent) -> BookingState:
    """The state after ``event``, or :class:`IllegalTransition`."""
    try:
        return _TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None


def allowed_events(state: BookingState) -> frozenset[BookingEvent]:
    return frozenset(e for (s, e) in _TRANSITIONS if s is state)
