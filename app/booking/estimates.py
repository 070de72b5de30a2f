"""Trip estimates (pure): walk to the vehicle, ride to the destination, the price of that ride
under the operator's GBFS pricing plan (computed by :mod:`adapters.gbfs.pricing`, the one price
computation), and the ranking of options. No I/O, so the rules unit-test without a database;
:mod:`app.booking.quotes` serves them, :mod:`app.booking.offers` signs what they priced.

The estimate model and its rounding are described in docs/quotes.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple

from adapters.dto import PricingSegment
from adapters.gbfs.pricing import PriceBreakdown, estimate_price
from app import models
from app.platform.settings import Settings
from geo.distance import geodesic_meters

__all__ = [
    "FALLBACK_RIDE_SPEED_KMH",
    "LatLon",
    "Leg",
    "PlanTerms",
    "RideModel",
    "TripEstimate",
    "TripRanking",
    "estimate_trip",
    "rank_trip_estimates",
    "ride_for_minutes",
    "ride_to",
    "walk_to",
]

# Used when settings.ride_speed_kmh has neither the form factor nor "other" (a deployment that
# overrode the whole mapping): the default "other" speed.
FALLBACK_RIDE_SPEED_KMH = 12.0


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
