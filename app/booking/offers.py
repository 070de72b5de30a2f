"""Offers (pure, given a key): stateless signed tokens carrying what was quoted, so the booking
service can accept an offer id without any storage (:func:`verify_offer`).

The token format and the error codes are described in docs/quotes.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from adapters.gbfs.pricing import PriceBreakdown
from app.booking.estimates import LatLon, Leg
from app.platform.errors import DomainError
from app.platform.settings import Settings

__all__ = [
    "Offer",
    "OfferExpired",
    "OfferInvalid",
    "issue_offer",
    "offer_signing_key",
    "verify_offer",
]


class OfferInvalid(DomainError):
    """Not an offer we issued: garbage, tampered with, or signed with another key."""

    code = "OFFER_INVALID"


class OfferExpired(DomainError):
    code = "OFFER_EXPIRED"


_OFFER_VERSION = "o1"
# Domain separation: the offer key is derived from the JWT secret, never the secret itself, so
# an offer id can never pass as an access token nor the other way round.
_OFFER_KEY_LABEL = b"mobility-aggregator/offer-id/v1"
# Without MOBILITY_JWT_SECRET, each process signs with its own random key: offers then die with
# the process, and one API process cannot verify another's. Multi-process deployments must set
# MOBILITY_JWT_SECRET (app/accounts/tokens.py: production is meant to refuse to start without it).
_PROCESS_KEY = secrets.token_bytes(32)
# Our offer ids are about 200 characters; anything much longer is not ours and is refused
# before it costs a decode.
_MAX_OFFER_ID_LENGTH = 1024


def offer_signing_key(settings: Settings) -> bytes:
    if settings.jwt_secret:
        return hmac.new(settings.jwt_secret.encode(), _OFFER_KEY_LABEL, hashlib.sha256).digest()
    return _PROCESS_KEY


@dataclass(frozen=True, slots=True)
class Offer:
    """A priced ride, valid until ``valid_until``; ``id`` is the signed token carrying it."""

    id: str
    vehicle_id: str
    price: PriceBreakdown | None
    ride_minutes: int
    ride_meters: int
    destination: LatLon | None  # None for a quote by minutes
    valid_until: datetime

    @property
    def price_minor(self) -> int | None:
        return self.price.total_minor if self.price is not None else None

    @property
    def currency(self) -> str | None:
        return self.price.currency if self.price is not None else None

    @property
    def estimated_price(self) -> tuple[int, str] | None:
        """(minor units, currency), as the booking service records an accepted offer."""
        return (self.price.total_minor, self.price.currency) if self.price is not None else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()


def issue_offer(
    key: bytes,
    *,
    vehicle_id: str,
    price: PriceBreakdown | None,
    ride: Leg,
    destination: LatLon | None,
    valid_until: datetime,
) -> Offer:
    # Whole seconds: the token carries epoch seconds, and the offer must read back unchanged.
    expires = math.floor(valid_until.timestamp())
    payload: dict[str, Any] = {
        "v": vehicle_id,
        "p": None
        if price is None
        else [
            price.currency,
            price.base_minor,
            price.time_minor,
            price.distance_minor,
            price.total_minor,
        ],
        "m": ride.whole_minutes,
        "d": ride.whole_meters,
        "to": None if destination is None else [destination.lat, destination.lon],
        "exp": expires,
    }
    signed = f"{_OFFER_VERSION}.{_b64(orjson.dumps(payload))}"
    token = f"{signed}.{_b64(_mac(key, signed))}"
    return _offer_from_payload(token, payload)


def _offer_from_payload(token: str, payload: Mapping[str, Any]) -> Offer:
    raw_price = payload["p"]
    price = None
    if raw_price is not None:
        currency, base, time_part, distance, total = raw_price
        price = PriceBreakdown(str(currency), int(base), int(time_part), int(distance), int(total))
    to = payload["to"]
    return Offer(
        id=token,
        vehicle_id=str(payload["v"]),
        price=price,
        ride_minutes=int(payload["m"]),
        ride_meters=int(payload["d"]),
        destination=LatLon(float(to[0]), float(to[1])) if to is not None else None,
        valid_until=datetime.fromtimestamp(int(payload["exp"]), UTC),
    )


def verify_offer(settings: Settings, offer_id: str, now: datetime) -> Offer:
    """The offer ``offer_id`` carries, if we issued it and it is still valid at ``now``.

    Raises :class:`OfferInvalid` (``OFFER_INVALID``) for anything we did not sign and
    :class:`OfferExpired` (``OFFER_EXPIRED``) once ``now`` is past its ``valid_until``."""
    return _verify(offer_signing_key(settings), offer_id, now)


def _verify(key: bytes, offer_id: str, now: datetime) -> Offer:
    invalid = OfferInvalid("this offer id is not one we issued; ask for a new quote")
    if len(offer_id) > _MAX_OFFER_ID_LENGTH or not offer_id.isascii():
        raise invalid
    parts = offer_id.split(".")
    if len(parts) != 3 or parts[0] != _OFFER_VERSION:
        raise invalid
    signed = f"{parts[0]}.{parts[1]}"
    try:
        mac = _unb64(parts[2])
        if not hmac.compare_digest(mac, _mac(key, signed)):
            raise invalid
        offer = _offer_from_payload(offer_id, orjson.loads(_unb64(parts[1])))
    except (ValueError, TypeError, KeyError, IndexError, orjson.JSONDecodeError) as exc:
        # Signed by us but unreadable would mean a format change without a version change.
        raise invalid from exc
    if now > offer.valid_until:
        raise OfferExpired(
            f"this offer expired at {offer.valid_until.isoformat()}; ask for a new quote"
        )
    return offer
