"""What a booking mutation answers: a booking, or one typed reason it could not be done.

Outcomes are stored under the request's idempotency key as JSON and replayed from it, so each
one round-trips through :func:`to_json` / :func:`from_json` exactly.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = [
    "ActiveBookingLimit",
    "BookingDone",
    "BookingFailed",
    "ExternalBooking",
    "NotEligible",
    "OperatorRejected",
    "OperatorUnavailable",
    "Outcome",
    "PolicyViolated",
    "RideEndNotAllowed",
    "VehicleUnavailable",
    "from_json",
    "to_json",
]


@dataclass(frozen=True, slots=True)
class BookingDone:
    booking_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class VehicleUnavailable:
    vehicle_id: str
    reason: str  # NOT_FOUND, RESERVED, DISABLED, BOOKED
    message: str


@dataclass(frozen=True, slots=True)
class NotEligible:
    form_factor: str
    refusals: tuple[tuple[str, str], ...]  # (code, message)
    message: str


@dataclass(frozen=True, slots=True)
class ActiveBookingLimit:
    """The rider has as many active bookings as one rider may: finish or cancel one first."""

    limit: int
    message: str


@dataclass(frozen=True, slots=True)
class PolicyViolated:
    """The organisation's travel policy does not allow this trip (checked before any operator
    call): every broken rule, as (rule, detail)."""

    violations: tuple[tuple[str, str], ...]
    message: str


@dataclass(frozen=True, slots=True)
class OperatorRejected:
    provider_id: str
    operator_code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class OperatorUnavailable:
    provider_id: str
    retry_after_seconds: float | None
    message: str


@dataclass(frozen=True, slots=True)
class RideEndNotAllowed:
    zone_id: str | None
    zone_name: str | None
    message: str


@dataclass(frozen=True, slots=True)
class BookingFailed:
    """Our side failed after the operator said yes; the operator's booking was cancelled."""

    booking_id: uuid.UUID
    message: str


@dataclass(frozen=True, slots=True)
class ExternalBooking:
    """The operator has no booking API: the rider books in the operator's own app."""

    vehicle_id: str
    provider_id: str
    provider_name: str
    android_uri: str | None
    ios_uri: str | None
    web_uri: str | None
    message: str


Outcome = (
    BookingDone
    | VehicleUnavailable
    | NotEligible
    | ActiveBookingLimit
    | PolicyViolated
    | OperatorRejected
    | OperatorUnavailable
    | RideEndNotAllowed
    | BookingFailed
    | ExternalBooking
)

_KINDS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        BookingDone,
        VehicleUnavailable,
        NotEligible,
        ActiveBookingLimit,
        PolicyViolated,
        OperatorRejected,
        OperatorUnavailable,
        RideEndNotAllowed,
        BookingFailed,
        ExternalBooking,
    )
}


def to_json(outcome: Outcome) -> dict[str, Any]:
    body = asdict(outcome)
    for key, value in body.items():
        if isinstance(value, uuid.UUID):
            body[key] = str(value)
        elif isinstance(value, tuple):
            body[key] = [list(v) if isinstance(v, tuple) else v for v in value]
    return {"kind": type(outcome).__name__, **body}


def from_json(data: dict[str, Any]) -> Outcome:
    cls = _KINDS[data["kind"]]
    values: dict[str, Any] = {}
    for f in fields(cls):
        value = data[f.name]
        if f.name == "booking_id":
            value = uuid.UUID(value)
        elif f.name in ("refusals", "violations"):
            value = tuple(tuple(v) for v in value)
        values[f.name] = value
    result: Outcome = cls(**values)
    return result
