"""Quotes and trip options: what a ride would cost and when it would arrive, as signed offers.

Three layers, so the rules unit-test without a database:

* **Estimates** (pure): walk to the vehicle, ride to the destination, the price of that ride
  under the operator's GBFS pricing plan (computed by :mod:`app.booking.pricing`, the one
  price computation), and the ranking of options.
* **Offers** (pure, given a key): stateless signed tokens carrying what was quoted, so the
  booking service can accept an offer id without any storage (:func:`verify_offer`).
* **The service** (:class:`QuoteService`): finds vehicles through the search service, so the
  same visibility rules apply (stale providers, reserved and disabled vehicles are hidden), and
  reads pricing plans from the reference cache.

The estimate model, its rounding, and the error codes are described in docs/quotes.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple

import orjson

from adapters.dto import PricingSegment
from app import models
from app.admission import COSTLY, slots
from app.booking.pricing import PriceBreakdown, estimate_price
from app.errors import DomainError, InvalidInput, NotFound
from app.reference import ReferenceCache, ReferenceData
from app.search.schemas import VehicleFilter, VehicleHit
from app.search.service import SearchService
from app.search.validation import Area, validate_first
from app.settings import Settings
from geo.areas import Near, valid_lat, valid_lon
from geo.distance import geodesic_meters

__all__ = [
    "LatLon",
    "Leg",
    "Offer",
    "OfferExpired",
    "OfferInvalid",
    "PlanTerms",
    "Quote",
    "QuoteService",
    "RideModel",
    "TripEstimate",
    "TripOption",
    "TripOptions",
    "TripRanking",
    "VehicleNotAvailable",
    "VehicleNotFound",
    "estimate_trip",
    "issue_offer",
    "offer_signing_key",
    "rank_trip_estimates",
    "ride_for_minutes",
    "ride_to",
    "verify_offer",
    "walk_to",
]

# A quote is for one rental; a week covers the longest car rentals priced per minute, and keeps
# amounts far inside what a JSON number carries exactly.
MAX_QUOTE_MINUTES = 7 * 24 * 60
# Used when settings.ride_speed_kmh has neither the form factor nor "other" (a deployment that
# overrode the whole mapping): the default "other" speed.
FALLBACK_RIDE_SPEED_KMH = 12.0


# --------------------------------------------------------------------------- errors


class VehicleNotFound(NotFound):
    code = "VEHICLE_NOT_FOUND"


class VehicleNotAvailable(DomainError):
    """The vehicle exists but cannot be rented now: reserved, disabled, or its operator's data
    is stale (search hides it for the same reasons)."""

    code = "VEHICLE_UNAVAILABLE"


class OfferInvalid(DomainError):
    """Not an offer we issued: garbage, tampered with, or signed with another key."""

    code = "OFFER_INVALID"


class OfferExpired(DomainError):
    code = "OFFER_EXPIRED"


# --------------------------------------------------------------------------- estimates (pure)


class LatLon(NamedTuple):
    lat: float
    lon: float


class TripRanking(Enum):
    TOTAL_PRICE = "total_price"
    ARRIVAL_TIME = "arrival_time"


def _whole_up(value: float) -> int:
    """Round an estimate up to a whole unit. Rounded to a micro-unit first: a float error of
    1e-12 must not add a whole minute or metre."""
    return math.ceil(round(value, 6))


@dataclass(frozen=True, slots=True)
class Leg:
    """One part of a trip, unrounded (arrival times and ranking use these figures)."""

    meters: float
    minutes: float

    # Shown and priced figures are rounded *up* to whole minutes and metres. GBFS charges per
    # started interval and pricing.py charges at the beginning of each interval, so with the
    # integer segment bounds GBFS defines, pricing ceil(minutes) gives exactly the price of the
    # unrounded minutes: the offer's price is the price of the figures it shows.
    @property
    def whole_meters(self) -> int:
        return _whole_up(self.meters)

    @property
    def whole_minutes(self) -> int:
        return _whole_up(self.minutes)


@dataclass(frozen=True, slots=True)
class RideModel:
    """How walking and riding are estimated (settings, "Quotes and trip options")."""

    walking_speed_kmh: float
    detour_factor: float
    ride_speed_kmh: Mapping[str, float]

    @classmethod
    def from_settings(cls, settings: Settings) -> RideModel:
        return cls(
            walking_speed_kmh=settings.walking_speed_kmh,
            detour_factor=settings.detour_factor,
            ride_speed_kmh=dict(settings.ride_speed_kmh),
        )

    def ride_speed(self, form_factor: str) -> float:
        for key in (form_factor, "other"):
            speed = self.ride_speed_kmh.get(key)
            if speed is not None and speed > 0:  # a zero speed would be a division by zero
                return speed
        return FALLBACK_RIDE_SPEED_KMH


def _minutes_at(meters: float, speed_kmh: float) -> float:
    return meters / 1000.0 / speed_kmh * 60.0


def walk_to(model: RideModel, meters: float) -> Leg:
    """Walking ``meters`` (geodesic, as search measures the distance to a vehicle)."""
    return Leg(meters, _minutes_at(meters, model.walking_speed_kmh))


def ride_to(model: RideModel, form_factor: str, start: LatLon, destination: LatLon) -> Leg:
    """Riding from ``start`` to ``destination``: the geodesic distance times the detour factor
    (streets are not straight), at the form factor's average speed."""
    meters = geodesic_meters(start.lat, start.lon, destination.lat, destination.lon)
    meters *= model.detour_factor
    return Leg(meters, _minutes_at(meters, model.ride_speed(form_factor)))


def ride_for_minutes(model: RideModel, form_factor: str, minutes: int) -> Leg:
    """Riding ``minutes`` with no destination given: the distance is what the form factor's
    average speed covers in that time (per-km segments need a distance)."""
    return Leg(minutes / 60.0 * model.ride_speed(form_factor) * 1000.0, float(minutes))


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """What pricing needs of a GBFS pricing plan."""

    plan_id: str
    currency: str
    price_minor: int
    per_min_pricing: tuple[PricingSegment, ...]
    per_km_pricing: tuple[PricingSegment, ...]

    @classmethod
    def from_model(cls, plan: models.PricingPlan) -> PlanTerms:
        return cls(
            plan_id=plan.id,
            currency=plan.currency.strip(),  # CHAR(3): stored padded if ever shorter
            price_minor=plan.price_minor,
            per_min_pricing=_segments(plan.per_min_pricing),
            per_km_pricing=_segments(plan.per_km_pricing),
        )

    def price(self, ride: Leg) -> PriceBreakdown:
        return estimate_price(
            currency=self.currency,
            price_minor=self.price_minor,
            per_min_pricing=self.per_min_pricing,
            per_km_pricing=self.per_km_pricing,
            minutes=ride.whole_minutes,
            kilometers=ride.whole_meters / 1000.0,
        )


def _segments(raw: Sequence[Mapping[str, Any]]) -> tuple[PricingSegment, ...]:
    return tuple(
        PricingSegment(
            start=int(s["start"]),
            rate_minor=int(s["rate_minor"]),
            interval=int(s["interval"]),
            end=int(s["end"]) if s.get("end") is not None else None,
        )
        for s in raw
    )


@dataclass(frozen=True, slots=True)
class TripEstimate:
    vehicle_id: str
    walk: Leg
    ride: Leg
    price: PriceBreakdown | None  # None: the vehicle has no pricing plan
    arrival_time: datetime


def estimate_trip(
    model: RideModel,
    *,
    vehicle_id: str,
    form_factor: str,
    vehicle_at: LatLon,
    walk_meters: float,
    destination: LatLon,
    plan: PlanTerms | None,
    now: datetime,
) -> TripEstimate:
    """Walk ``walk_meters`` to the vehicle at ``vehicle_at``, ride it to ``destination``."""
    walk = walk_to(model, walk_meters)
    ride = ride_to(model, form_factor, vehicle_at, destination)
    # Unrounded: rounding each leg up would make vehicles a few metres apart tie.
    arrival = now + timedelta(minutes=walk.minutes + ride.minutes)
    price = plan.price(ride) if plan is not None else None
    return TripEstimate(vehicle_id, walk, ride, price, arrival)


def rank_trip_estimates(
    estimates: Sequence[TripEstimate], ranking: TripRanking
) -> list[TripEstimate]:
    """Cheapest first (unpriced last, ties by arrival) or earliest arrival first (ties by
    price). The vehicle id breaks remaining ties, so the order is stable across requests.

    Amounts in different currencies cannot be compared without exchange rates (nor can minor
    units of currencies with different exponents). Options priced in the currency most options
    use (the local one, in practice) are ranked first by price, then each other currency's,
    then the unpriced ones."""
    counts = Counter(e.price.currency for e in estimates if e.price is not None)
    local = min(counts, key=lambda c: (-counts[c], c)) if counts else None

    def price_key(e: TripEstimate) -> tuple[bool, bool, str, int]:
        if e.price is None:
            return (True, True, "", 0)
        return (False, e.price.currency != local, e.price.currency, e.price.total_minor)

    if ranking is TripRanking.TOTAL_PRICE:
        return sorted(estimates, key=lambda e: (price_key(e), e.arrival_time, e.vehicle_id))
    return sorted(estimates, key=lambda e: (e.arrival_time, price_key(e), e.vehicle_id))


# --------------------------------------------------------------------------- offers (pure)

_OFFER_VERSION = "o1"
# Domain separation: the offer key is derived from the JWT secret, never the secret itself, so
# an offer id can never pass as an access token nor the other way round.
_OFFER_KEY_LABEL = b"mobility-aggregator/offer-id/v1"
# Without MOBILITY_JWT_SECRET, each process signs with its own random key: offers then die with
# the process, and one API process cannot verify another's. Multi-process deployments must set
# MOBILITY_JWT_SECRET (settings.py: production is meant to refuse to start without it).
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


# --------------------------------------------------------------------------- service


@dataclass(frozen=True, slots=True)
class Quote:
    offer: Offer
    hit: VehicleHit
    reference: ReferenceData  # the snapshot the price was read from, to show the vehicle


@dataclass(frozen=True, slots=True)
class TripOption:
    offer: Offer
    hit: VehicleHit
    walk: Leg
    ride: Leg
    arrival_time: datetime

    @property
    def price(self) -> PriceBreakdown | None:
        return self.offer.price


@dataclass(frozen=True, slots=True)
class TripOptions:
    options: list[TripOption]
    reference: ReferenceData


def _check_point(point: LatLon, what: str) -> None:
    # Same wording and code as the search's checks: one mistake, one error, in every query.
    if not (math.isfinite(point.lat) and valid_lat(point.lat)):
        raise InvalidInput(
            f"{what}: latitude {point.lat} is out of range; use a value from -90 to 90",
            code="INVALID_COORDINATES",
        )
    if not (math.isfinite(point.lon) and valid_lon(point.lon)):
        raise InvalidInput(
            f"{what}: longitude {point.lon} is out of range; use a value from -180 to 180",
            code="INVALID_COORDINATES",
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class QuoteService:
    """Stateless apart from its collaborators: cheap to build per request."""

    def __init__(
        self,
        settings: Settings,
        search: SearchService,
        reference: ReferenceCache,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.search = search
        self.reference = reference
        self.clock = clock
        self.model = RideModel.from_settings(settings)

    def _plan(self, ref: ReferenceData, plan_id: str | None) -> PlanTerms | None:
        plan = ref.pricing_plans.get(plan_id) if plan_id is not None else None
        return PlanTerms.from_model(plan) if plan is not None else None

    def _check_distance(self, start: LatLon, end: LatLon) -> None:
        # A shared vehicle's ride, not a journey across the world (which would be offered as a
        # ride of weeks): the same bound for a quote to a point and for trip options.
        cap = self.settings.max_trip_distance_meters
        if geodesic_meters(start.lat, start.lon, end.lat, end.lon) > cap:
            raise InvalidInput(
                f"the destination is more than {cap / 1000:g} km away: shared vehicles are "
                "quoted for rides up to that distance",
                code="TRIP_TOO_LONG",
            )

    def _valid_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.settings.quote_ttl_seconds)

    async def quote(
        self,
        *,
        vehicle_id: str,
        to: LatLon | None = None,
        minutes: int | None = None,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> Quote:
        """An offer for renting ``vehicle_id`` to ``to``, or for ``minutes``. Another
        organisation's private fleet (not in ``viewer_orgs``) is not found."""
        if (to is None) == (minutes is None):
            raise InvalidInput(
                "give exactly one of `to` (where the ride ends) or `minutes` (how long it lasts)"
            )
        if to is not None:
            _check_point(to, "to")
        if minutes is not None and not 0 < minutes <= MAX_QUOTE_MINUTES:
            raise InvalidInput(f"minutes must be between 1 and {MAX_QUOTE_MINUTES}; got {minutes}")
        # Each read takes a connection only while it runs, one after another: a request never
        # holds two.
        hit = await self.search.vehicle_record(vehicle_id)
        # The provider sets first (re-read if this provider is new to them), then who may see
        # it: a private fleet added a moment ago is hidden at once.
        servable = await self.search.servable_providers(
            including=[hit.vehicle.provider_id] if hit is not None else []
        )
        hidden = await self.search.hidden_providers(viewer_orgs)
        if hit is None or hit.vehicle.provider_id in hidden:
            raise VehicleNotFound(f"no vehicle {vehicle_id!r}")
        vehicle = hit.vehicle
        if vehicle.is_reserved or vehicle.is_disabled:
            raise VehicleNotAvailable(f"vehicle {vehicle_id!r} is not available to rent now")
        if vehicle.provider_id not in servable:
            raise VehicleNotAvailable(
                f"vehicle {vehicle_id!r} is not available to rent now: its operator's data is "
                "out of date"
            )
        ref = await self.reference.covering(
            providers=[vehicle.provider_id],
            types=[vehicle.vehicle_type_id],
            plans=[vehicle.pricing_plan_id],
        )
        if to is not None:
            self._check_distance(LatLon(vehicle.lat, vehicle.lon), to)
            ride = ride_to(self.model, vehicle.form_factor, LatLon(vehicle.lat, vehicle.lon), to)
        else:
            assert minutes is not None
            ride = ride_for_minutes(self.model, vehicle.form_factor, minutes)
        plan = self._plan(ref, vehicle.pricing_plan_id)
        offer = issue_offer(
            offer_signing_key(self.settings),
            vehicle_id=vehicle.id,
            price=plan.price(ride) if plan is not None else None,
            ride=ride,
            destination=to,
            valid_until=self._valid_until(self.clock()),
        )
        return Quote(offer, hit, ref)

    async def trip_options(
        self,
        *,
        origin: LatLon,
        destination: LatLon,
        form_factors: frozenset[str] | None = None,
        first: int | None = None,
        ranking: TripRanking = TripRanking.TOTAL_PRICE,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> TripOptions:
        """One option per available vehicle within ``trip_options_radius_meters`` of
        ``origin``, ranked, at most ``first``.

        Candidates are the nearest ``max_first`` vehicles in that radius (search's own page
        cap): ranking is by price or arrival, not distance, so the cut comes after ranking;
        the cap keeps a dense city centre from costing thousands of estimates."""
        _check_point(origin, "from")
        _check_point(destination, "to")
        self._check_distance(origin, destination)
        limit = validate_first(self.settings, first)
        # An expensive operation: a few at a time per process, waiting without a connection.
        async with slots(COSTLY, self.settings.max_concurrent_costly_operations):
            return await self._trip_options(
                origin, destination, form_factors, limit, ranking, viewer_orgs
            )

    async def _trip_options(
        self,
        origin: LatLon,
        destination: LatLon,
        form_factors: frozenset[str] | None,
        limit: int,
        ranking: TripRanking,
        viewer_orgs: frozenset[uuid.UUID],
    ) -> TripOptions:
        near = Near(origin.lat, origin.lon, self.settings.trip_options_radius_meters)
        hits = await self.search.vehicles(
            area=Area(near, None),
            flt=VehicleFilter(form_factors=form_factors),
            first=self.settings.max_first,
            viewer_orgs=viewer_orgs,
        )
        # After the search gave its connection back: a reload of reference data takes one.
        ref = await self.reference.covering(
            providers={h.vehicle.provider_id for h in hits},
            types={h.vehicle.vehicle_type_id for h in hits},
            plans={h.vehicle.pricing_plan_id for h in hits},
        )
        now = self.clock()
        by_id = {h.vehicle.id: h for h in hits}
        plans: dict[str | None, PlanTerms | None] = {}
        estimates = []
        for hit in hits:
            v = hit.vehicle
            if v.pricing_plan_id not in plans:  # a fleet shares a handful of plans
                plans[v.pricing_plan_id] = self._plan(ref, v.pricing_plan_id)
            walk_meters = hit.distance_meters
            if walk_meters is None:  # radius searches measure it; kept correct regardless
                walk_meters = geodesic_meters(origin.lat, origin.lon, v.lat, v.lon)
            estimates.append(
                estimate_trip(
                    self.model,
                    vehicle_id=v.id,
                    form_factor=v.form_factor,
                    vehicle_at=LatLon(v.lat, v.lon),
                    walk_meters=walk_meters,
                    destination=destination,
                    plan=plans[v.pricing_plan_id],
                    now=now,
                )
            )
        key = offer_signing_key(self.settings)
        valid_until = self._valid_until(now)
        options = [
            TripOption(
                offer=issue_offer(
                    key,
                    vehicle_id=e.vehicle_id,
                    price=e.price,
                    ride=e.ride,
                    destination=destination,
                    valid_until=valid_until,
                ),
                hit=by_id[e.vehicle_id],
                walk=e.walk,
                ride=e.ride,
                arrival_time=e.arrival_time,
            )
            # Offers are signed only for the options returned.
            for e in rank_trip_estimates(estimates, ranking)[:limit]
        ]
        return TripOptions(options, ref)
