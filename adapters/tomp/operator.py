"""The TOMP-API 1.6 booking operator: :class:`TompBookingOperator`, the MaaS-provider side of
TOMP's planning, booking and trip-execution calls (``conformance/tomp/NOTES.md``).

TOMP 1.6 has no idempotency key. What makes our caller's retries safe is re-reading state:
a repeated ``POST /bookings`` answers 409 (the booking id is the offer id, a natural key), and a
repeated event after the state moved answers 403; in both cases this module reads
``GET /bookings/{id}`` and continues from the state it finds. The module itself never loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from adapters.base import AdapterConfigError
from adapters.booking import (
    BookingCapability,
    BookingContext,
    BookingNotFoundAtOperator,
    OperatorBooking,
    OperatorBookingState,
    OperatorOffer,
    OperatorRejected,
    OperatorUnavailable,
    Position,
    ReservationRequest,
)
from adapters.http import parse_retry_after
from adapters.tomp.wire import (
    WireError,
    coordinates,
    fare_total,
    offer_for_asset,
    parse_booking,
    parse_error,
)

__all__ = ["TompBookingOperator"]

_S = OperatorBookingState
_CONFIG_KEYS = frozenset({"base_url", "maas_id", "api_version", "language"})
DEFAULT_MAAS_ID = "mobility-aggregator"
DEFAULT_API_VERSION = "1.6.1"
# Answers that say "the operator refused", as opposed to "the operator is not working".
_REFUSALS = frozenset({400, 403, 404, 409, 410, 412, 422, 428})
# Booking states in which the reservation is ours and binding: a retried reserve is done.
_HELD = frozenset({_S.CONFIRMED, _S.STARTED, _S.PAUSED})


def _text(config: Mapping[str, Any], key: str, default: str) -> str:
    value = config.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise AdapterConfigError(f"tomp: {key} must be a non-empty string")
    if not all(" " <= c <= "~" for c in value):
        raise AdapterConfigError(f"tomp: {key} must be printable ASCII (it is sent as a header)")
    return value.strip()


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise OperatorUnavailable(
            f"TOMP {what}: HTTP {response.status_code} with a body that is not JSON"
        ) from None


class TompBookingOperator:
    """Books through a TOMP-API 1.6 transport operator.

    Config: ``base_url`` (required), ``maas_id`` (our id at the operator), ``api_version``,
    ``language`` (``Accept-Language``).
    """

    name: ClassVar[str] = "tomp"

    def __init__(
        self,
        base_url: str,
        *,
        maas_id: str = DEFAULT_MAAS_ID,
        api_version: str = DEFAULT_API_VERSION,
        language: str = "en",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.maas_id = maas_id
        self.api_version = api_version
        self.language = language

    def __repr__(self) -> str:
        return f"TompBookingOperator({self.base_url!r}, maas_id={self.maas_id!r})"

    @property
    def capabilities(self) -> frozenset[BookingCapability]:
        return frozenset(BookingCapability)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TompBookingOperator:
        if not isinstance(config, Mapping):
            raise AdapterConfigError("tomp: the booking config must be a mapping")
        unknown = sorted(set(config) - _CONFIG_KEYS)
        if unknown:
            known = ", ".join(sorted(_CONFIG_KEYS))
            raise AdapterConfigError(f"tomp: unknown config key(s) {unknown} (known: {known})")
        if "base_url" not in config:
            raise AdapterConfigError("tomp: base_url is required")
        base_url = config["base_url"]
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if (
            parts is None
            or parts.scheme not in {"http", "https"}
            or not parts.hostname
            or parts.query
            or parts.fragment
        ):
            raise AdapterConfigError(
                f"tomp: base_url must be an http(s) URL without query or fragment, got {base_url!r}"
            )
        return cls(
            str(base_url),
            maas_id=_text(config, "maas_id", DEFAULT_MAAS_ID),
            api_version=_text(config, "api_version", DEFAULT_API_VERSION),
            language=_text(config, "language", "en"),
        )

    # -- HTTP ---------------------------------------------------------------------------------

    async def _headers(self, ctx: BookingContext) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Accept-Language": self.language,
            "Api": "TOMP",
            "Api-Version": self.api_version,
            "maas-id": self.maas_id,
        }
        if ctx.auth is not None:
            headers.update(await ctx.auth.headers(ctx.http))
        return headers

    async def _call(
        self, ctx: BookingContext, method: str, path: str, body: object | None = None
    ) -> httpx.Response:
        """One request; transport failures, 5xx, 401 and 429 become OperatorUnavailable, every
        other answer is returned for the caller to read."""
        what = f"{method} {path}"
        headers = await self._headers(ctx)
        try:
            response = await ctx.http.request(
                method, self.base_url + path, headers=headers, json=body
            )
        except httpx.TimeoutException as exc:
            raise OperatorUnavailable(f"TOMP {what}: timed out ({exc.__class__.__name__})") from exc
        except httpx.HTTPError as exc:
            raise OperatorUnavailable(f"TOMP {what}: {exc.__class__.__name__}") from exc
        status = response.status_code
        if status >= 500 or status == 429:
            error = parse_error(_lenient_json(response))
            raise OperatorUnavailable(
                f"TOMP {what}: HTTP {status}"
                + (f" ({error.describe()})" if error and error.describe() else ""),
                operator_code=error.errorcode if error else None,
                retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
            )
        if status == 401:
            if ctx.auth is not None:
                ctx.auth.invalidate(headers)  # a stale OAuth2 token: the next call gets a new one
            raise OperatorUnavailable(f"TOMP {what}: the operator refused our credentials (401)")
        return response

    def _rejected(self, response: httpx.Response, what: str, reason: str) -> OperatorRejected:
        error = parse_error(_lenient_json(response))
        described = error.describe() if error else ""
        message = f"TOMP {what}: {reason} (HTTP {response.status_code})"
        if described:
            message += f": {described}"
        return OperatorRejected(message, operator_code=error.errorcode if error else None)

    def _unexpected(self, response: httpx.Response, what: str) -> OperatorUnavailable:
        return OperatorUnavailable(f"TOMP {what}: unexpected HTTP {response.status_code}")

    def _booking(self, response: httpx.Response, what: str) -> OperatorBooking:
        try:
            return parse_booking(_json(response, what), expires=response.headers.get("Expires"))
        except WireError as exc:
            raise OperatorUnavailable(f"TOMP {what}: {exc}") from None

    # -- planning -----------------------------------------------------------------------------

    async def prepare(self, ctx: BookingContext, request: ReservationRequest) -> OperatorOffer:
        planning_request: dict[str, Any] = {
            "from": coordinates(request.lat, request.lon),
            "nrOfTravelers": 1,
            # TOMP's own field for "this asset": GBFS vehicle ids are asset ids (endpoint
            # `useAssets: ["vehicle_id"]` in the spec's GBFS example).
            "useAssets": [request.vehicle_external_id],
        }
        if request.to_lat is not None and request.to_lon is not None:
            planning_request["to"] = coordinates(request.to_lat, request.to_lon)
        what = "POST /planning/offers"
        response = await self._call(ctx, "POST", "/planning/offers", planning_request)
        if response.status_code in _REFUSALS:
            raise self._rejected(response, what, "planning refused")
        if response.status_code not in (200, 201):
            raise self._unexpected(response, what)
        try:
            option, valid_until = offer_for_asset(
                _json(response, what), request.vehicle_external_id
            )
            price = fare_total(option.get("pricing"))
        except LookupError:
            raise OperatorRejected(
                f"TOMP {what}: no offer for vehicle {request.vehicle_external_id} "
                "(taken or unknown at the operator)"
            ) from None
        except WireError as exc:
            raise OperatorUnavailable(f"TOMP {what}: {exc}") from None
        return OperatorOffer(
            reference=str(option["id"]), valid_until=valid_until, estimated_price=price
        )

    # -- booking ------------------------------------------------------------------------------

    async def reserve(
        self, ctx: BookingContext, offer: OperatorOffer, request: ReservationRequest
    ) -> OperatorBooking:
        what = "POST /bookings"
        response = await self._call(ctx, "POST", "/bookings", {"id": offer.reference})
        status = response.status_code
        if status in (200, 201):
            booking = self._booking(response, what)
        elif status == 409:
            # TOMP's duplicate: an earlier attempt (whose answer we lost) created it. Its state
            # says how far that attempt got.
            try:
                booking = await self.status(ctx, offer.reference)
            except BookingNotFoundAtOperator:
                raise self._rejected(response, what, "conflict, and no such booking") from None
        elif status == 410:
            raise self._rejected(response, what, "the offer expired")
        elif status in _REFUSALS:
            raise self._rejected(response, what, "booking refused")
        else:
            raise self._unexpected(response, what)
        if booking.state is _S.PENDING:
            return await self._commit(ctx, booking)
        if booking.state in _HELD:
            return booking
        raise OperatorRejected(
            f"TOMP booking {booking.reference} is {booking.raw_state}",
            operator_code=None,
        )

    async def _commit(self, ctx: BookingContext, pending: OperatorBooking) -> OperatorBooking:
        path = f"/bookings/{quote(pending.reference, safe='')}/events"
        what = f"COMMIT {pending.reference}"
        response = await self._call(ctx, "POST", path, {"operation": "COMMIT"})
        status = response.status_code
        if status == 200:
            booking = self._booking(response, what)
        elif status == 403:
            # "If the booking is in state COMMITTED, CANCELLED or EXPIRED, a commit will result
            # a 403": an earlier COMMIT may have gone through.
            booking = await self.status(ctx, pending.reference)
            if booking.state not in _HELD:
                raise self._rejected(response, what, f"commit refused, booking is {booking.state}")
        elif status == 410:
            raise self._rejected(response, what, "the booking expired before the commit")
        elif status in _REFUSALS:
            raise self._rejected(response, what, "commit refused")
        else:
            raise self._unexpected(response, what)
        if booking.state in _HELD or booking.state is _S.PENDING:
            # PENDING after COMMIT: a postponed (conditional) commit; status() settles it later.
            return booking
        raise OperatorRejected(f"TOMP booking {booking.reference} is {booking.raw_state}")

    async def cancel(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking:
        path = f"/bookings/{quote(booking.reference, safe='')}/events"
        what = f"CANCEL {booking.reference}"
        response = await self._call(ctx, "POST", path, {"operation": "CANCEL"})
        if response.status_code == 200:
            return self._booking(response, what)
        if response.status_code in (403, 410):
            # A repeated or late cancel: if the booking is over without a ride, the outcome the
            # caller wants (nothing held, nothing to pay) is already there.
            current = await self.status(ctx, booking.reference)
            if current.state in (_S.CANCELLED, _S.EXPIRED, _S.REJECTED):
                return current
            raise self._rejected(response, what, f"cancel refused, booking is {current.state}")
        if response.status_code in _REFUSALS:
            raise self._rejected(response, what, "cancel refused")
        raise self._unexpected(response, what)

    async def status(self, ctx: BookingContext, reference: str) -> OperatorBooking:
        what = f"GET /bookings/{reference}"
        response = await self._call(ctx, "GET", f"/bookings/{quote(reference, safe='')}")
        if response.status_code == 200:
            return self._booking(response, what)
        if response.status_code == 404:
            raise BookingNotFoundAtOperator(f"TOMP operator does not know booking {reference}")
        if response.status_code == 410:
            # "No longer available. This is permanent": over, without a state to read.
            return OperatorBooking(reference=reference, state=_S.EXPIRED, raw_state="HTTP 410")
        if response.status_code in _REFUSALS:
            raise self._rejected(response, what, "status refused")
        raise self._unexpected(response, what)

    # -- trip execution -----------------------------------------------------------------------

    async def start(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking:
        return await self._leg_event(ctx, booking, "SET_IN_USE", _S.STARTED)

    async def pause(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking:
        return await self._leg_event(ctx, booking, "PAUSE", _S.PAUSED)

    async def resume(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking:
        return await self._leg_event(ctx, booking, "SET_IN_USE", _S.STARTED)

    async def end(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str, at: Position
    ) -> OperatorBooking:
        return await self._leg_event(
            ctx, booking, "FINISH", _S.FINISHED, {"userLocation": coordinates(at.lat, at.lon)}
        )

    async def _leg_event(
        self,
        ctx: BookingContext,
        booking: OperatorBooking,
        event: str,
        target: OperatorBookingState,
        extra: Mapping[str, Any] | None = None,
    ) -> OperatorBooking:
        leg_id = booking.leg_reference
        if leg_id is None:
            leg_id = (await self.status(ctx, booking.reference)).leg_reference
            if leg_id is None:
                raise OperatorUnavailable(
                    f"TOMP booking {booking.reference} has no leg to send {event} to"
                )
        body: dict[str, Any] = {"time": _now(), "event": event, **(extra or {})}
        what = f"{event} leg {leg_id}"
        response = await self._call(ctx, "POST", f"/legs/{quote(leg_id, safe='')}/events", body)
        status = response.status_code
        if status in (200, 204):
            # The answer is the leg; the booking (its state, its final price) is read after.
            return await self.status(ctx, booking.reference)
        if status == 403:
            # Repeated after a lost answer: the leg is already where we wanted it.
            current = await self.status(ctx, booking.reference)
            if current.state is target:
                return current
            raise self._rejected(response, what, f"{event} refused, booking is {current.state}")
        if status in _REFUSALS:
            raise self._rejected(response, what, f"{event} refused")
        raise self._unexpected(response, what)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _lenient_json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None
