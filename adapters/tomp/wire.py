"""TOMP-API 1.6 wire shapes: reading the operator's JSON into our booking types, and the bodies
we send. Pure functions, no I/O.

Everything read here comes from another company's server, so every accessor checks the shape
and raises :class:`WireError` (turned into ``OperatorUnavailable`` by the operator) instead of
letting a ``KeyError`` or ``TypeError`` escape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from adapters.booking import OperatorBooking, OperatorBookingState, OperatorMoney
from adapters.money import to_minor_units

__all__ = [
    "BOOKING_STATES",
    "LEG_STATES",
    "TompError",
    "WireError",
    "booking_state",
    "coordinates",
    "fare_total",
    "offer_for_asset",
    "parse_booking",
    "parse_error",
    "parse_http_date",
    "parse_timestamp",
]

# components.schemas.bookingState and legState of the 1.6.1 document.
BOOKING_STATES = frozenset(
    {
        "NEW",
        "PENDING",
        "REJECTED",
        "RELEASED",
        "EXPIRED",
        "CONDITIONAL_CONFIRMED",
        "CONFIRMED",
        "CANCELLED",
        "STARTED",
        "FINISHED",
    }
)
LEG_STATES = frozenset(
    {
        "NOT_STARTED",
        "PREPARING",
        "IN_USE",
        "PAUSED",
        "FINISHING",
        "FINISHED",
        "ISSUE_REPORTED",
        "CANCELLED",
    }
)

_S = OperatorBookingState
# The booking state alone, before the leg state refines it.
_BY_BOOKING_STATE: Mapping[str, OperatorBookingState] = {
    "NEW": _S.PENDING,
    "PENDING": _S.PENDING,
    # A postponed commit binds nothing yet: the TO may still DENY it.
    "CONDITIONAL_CONFIRMED": _S.PENDING,
    "CONFIRMED": _S.CONFIRMED,
    "STARTED": _S.STARTED,
    "FINISHED": _S.FINISHED,
    "CANCELLED": _S.CANCELLED,
    # 1.x never defines RELEASED apart from CANCELLED: either way the asset is free again.
    "RELEASED": _S.CANCELLED,
    "EXPIRED": _S.EXPIRED,
    "REJECTED": _S.REJECTED,
}
# Leg states that say more than a CONFIRMED or STARTED booking does: operators move the leg
# with every trip event, the booking state only with some.
_BY_LEG_STATE: Mapping[str, OperatorBookingState] = {
    "IN_USE": _S.STARTED,
    "FINISHING": _S.STARTED,
    "ISSUE_REPORTED": _S.STARTED,
    "PAUSED": _S.PAUSED,
    "FINISHED": _S.FINISHED,
    "CANCELLED": _S.CANCELLED,
}


_EXPIRING = frozenset({_S.PENDING, _S.CONFIRMED})


class WireError(ValueError):
    """The operator's answer is not the TOMP shape we need; the message says what is wrong."""


class TompError:
    """A TOMP ``error`` body (1.6.1 ``components.schemas.error``), read leniently."""

    __slots__ = ("detail", "errorcode", "title")

    def __init__(self, errorcode: str | None, title: str | None, detail: str | None) -> None:
        self.errorcode = errorcode
        self.title = title
        self.detail = detail

    def describe(self) -> str:
        parts = [p for p in (self.title, self.detail) if p]
        return ": ".join(parts)


def parse_error(body: object) -> TompError | None:
    """The error body, if the answer carried one (404/409/410 have none in 1.6.1)."""
    if not isinstance(body, Mapping):
        return None
    raw_code = body.get("errorcode", body.get("errorCode"))  # the wiki spells it errorCode
    code = (
        str(raw_code)
        if isinstance(raw_code, int | str) and not isinstance(raw_code, bool)
        else None
    )
    title = body.get("title")
    detail = body.get("detail")
    return TompError(
        code,
        title if isinstance(title, str) else None,
        detail if isinstance(detail, str) else None,
    )


def booking_state(booking_state: str, leg_state: str | None) -> OperatorBookingState:
    """Our state for a TOMP booking state refined by its (first) leg's state."""
    base = _BY_BOOKING_STATE[booking_state]
    if leg_state is not None and base in (_S.CONFIRMED, _S.STARTED):
        return _BY_LEG_STATE.get(leg_state, base)
    return base


def coordinates(lat: float, lon: float) -> dict[str, Any]:
    """A TOMP ``place`` at a point (``coordinates`` spells longitude ``lng``)."""
    return {"coordinates": {"lat": lat, "lng": lon}}


def parse_timestamp(raw: object, what: str) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise WireError(f"{what} is not a date-time string")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise WireError(f"{what} is not an RFC 3339 date-time: {raw!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # TOMP times without offset are read as UTC
    return parsed.astimezone(UTC)


def parse_http_date(raw: str | None) -> datetime | None:
    """The ``Expires`` header; an unreadable date is ignored (it only informs)."""
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def fare_total(fare: object) -> OperatorMoney | None:
    """A TOMP ``fare`` as one amount: "the total fare is the sum of all parts, except for the
    'MAX' farePart" (1.6.1). Each part is converted to minor units before adding, so float
    sums never round a cent away. ``None`` when the fare has no parts."""
    if fare is None:
        return None
    if not isinstance(fare, Mapping):
        raise WireError("pricing is not a fare object")
    parts = fare.get("parts")
    if not isinstance(parts, Sequence) or isinstance(parts, str | bytes):
        raise WireError("pricing.parts is not a list")
    currency: str | None = None
    total = 0
    counted = 0
    for index, part in enumerate(parts):
        if not isinstance(part, Mapping):
            raise WireError(f"pricing.parts[{index}] is not an object")
        if part.get("type") == "MAX":
            continue  # a cap on the fare, not a charge
        code = part.get("currencyCode")
        if not isinstance(code, str):
            raise WireError(f"pricing.parts[{index}] has no currencyCode")
        code = code.upper()
        if currency is not None and code != currency:
            raise WireError(f"pricing mixes currencies {currency} and {code}")
        currency = code
        amount = part.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int | float | str):
            raise WireError(f"pricing.parts[{index}].amount is not a number")
        try:
            total += to_minor_units(amount, code)
        except ValueError as exc:
            raise WireError(f"pricing.parts[{index}]: {exc}") from None
        counted += 1
    if currency is None or counted == 0:
        return None
    return OperatorMoney(amount_minor=total, currency=currency)


def _first_leg(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    legs = body.get("legs")
    if legs is None:
        return None
    if not isinstance(legs, Sequence) or isinstance(legs, str | bytes):
        raise WireError("booking.legs is not a list")
    if not legs:
        return None
    leg = legs[0]
    if not isinstance(leg, Mapping):
        raise WireError("booking.legs[0] is not an object")
    return leg


def _asset_id(leg: Mapping[str, Any] | None) -> str | None:
    if leg is None:
        return None
    asset = leg.get("asset")
    if isinstance(asset, Mapping) and isinstance(asset.get("id"), str):
        return str(asset["id"])
    asset_type = leg.get("assetType")
    if isinstance(asset_type, Mapping):
        assets = asset_type.get("assets")
        if isinstance(assets, Sequence) and len(assets) == 1 and isinstance(assets[0], Mapping):
            found = assets[0].get("id")
            return found if isinstance(found, str) else None
    return None


def parse_booking(body: object, *, expires: str | None = None) -> OperatorBooking:
    """A TOMP ``booking`` as :class:`OperatorBooking`; ``expires`` is the Expires header."""
    if not isinstance(body, Mapping):
        raise WireError("the booking is not a JSON object")
    reference = body.get("id")
    if not isinstance(reference, str) or not reference:
        raise WireError("the booking has no id")
    raw_state = body.get("state")
    if raw_state not in BOOKING_STATES:
        raise WireError(f"booking {reference} has no known state (got {raw_state!r})")
    leg = _first_leg(body)
    leg_id = leg.get("id") if leg is not None else None
    if leg_id is not None and not isinstance(leg_id, str):
        raise WireError(f"booking {reference}: legs[0].id is not a string")
    leg_state = leg.get("state") if leg is not None else None
    if leg_state is not None and leg_state not in LEG_STATES:
        raise WireError(f"booking {reference}: unknown leg state {leg_state!r}")
    # booking.pricing is the whole booking's; legs carry pricing only when the booking has none.
    price = fare_total(body.get("pricing"))
    if price is None and leg is not None:
        price = fare_total(leg.get("pricing"))
    distance = leg.get("distance") if leg is not None else None
    if distance is not None and (isinstance(distance, bool) or not isinstance(distance, int)):
        raise WireError(f"booking {reference}: legs[0].distance is not an integer")
    extra: dict[str, Any] = {}
    if leg_state is not None:
        extra["leg_state"] = leg_state
    asset_id = _asset_id(leg)
    if asset_id is not None:
        extra["asset_id"] = asset_id
    state = booking_state(str(raw_state), leg_state)
    return OperatorBooking(
        reference=reference,
        state=state,
        leg_reference=leg_id,
        # Only a held booking runs out; some TOs send Expires on every answer.
        expires_at=parse_http_date(expires) if state in _EXPIRING else None,
        price=price,
        distance_meters=float(distance) if distance is not None else None,
        raw_state=str(raw_state) if leg_state is None else f"{raw_state}/{leg_state}",
        extra=extra,
    )


def offer_for_asset(planning: object, asset_id: str) -> tuple[Mapping[str, Any], datetime | None]:
    """The planning option that books ``asset_id``, and the planning's ``validUntil``.

    Raises :class:`LookupError` when no option is for that asset (the operator did not offer
    it), :class:`WireError` when the planning is not a planning.
    """
    if not isinstance(planning, Mapping):
        raise WireError("the planning is not a JSON object")
    options = planning.get("options")
    if not isinstance(options, Sequence) or isinstance(options, str | bytes):
        raise WireError("planning.options is not a list")
    valid_until = parse_timestamp(planning.get("validUntil"), "planning.validUntil")
    for index, option in enumerate(options):
        if not isinstance(option, Mapping):
            raise WireError(f"planning.options[{index}] is not an object")
        legs = option.get("legs")
        if not isinstance(legs, Sequence) or isinstance(legs, str | bytes):
            continue
        if any(isinstance(leg, Mapping) and _asset_id(leg) == asset_id for leg in legs):
            if not isinstance(option.get("id"), str) or not option["id"]:
                raise WireError(f"planning.options[{index}] has no id to book")
            return option, valid_until
    raise LookupError(asset_id)
