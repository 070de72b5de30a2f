"""Trip estimates (pure): walk to the vehicle, ride to the destination, the price of that ride
under the operator's GBFS pricing plan (computed by :mod:`adapters.gbfs.pricing`, the one price
computation), and the choice and ranking of options (walking the whole way included, options it
or another option beats dropped, the rest kept diverse). No I/O, so the rules unit-test without a
database;
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
from typing import NamedTuple

from adapters.dto import PricingSegment
from adapters.gbfs.pricing import PriceBreakdown, estimate_price
from app import models
from app.booking.receipts import pricing_segments
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
    "choose_trip_estimates",
    "dominates",
    "estimate_trip",
    "estimate_walk",
    "local_currency",
    "non_dominated",
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
            per_min_pricing=pricing_segments(plan.per_min_pricing),
            per_km_pricing=pricing_segments(plan.per_km_pricing),
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


@dataclass(frozen=True, slots=True)
class TripEstimate:
    """One way to make the trip: walk to a vehicle and ride it, or (``vehicle_id`` None) walk
    the whole way, with ``ride`` empty."""

    vehicle_id: str | None  # None: walking the whole way
    walk: Leg
    ride: Leg
    price: PriceBreakdown | None  # None: the vehicle has no pricing plan, or walking
    arrival_time: datetime
    provider_id: str | None = None
    form_factor: str | None = None

    @property
    def is_walk(self) -> bool:
        return self.vehicle_id is None

    @property
    def transfers(self) -> int:
        """Vehicle legs: 0 walking, 1 on a shared vehicle."""
        return 0 if self.is_walk else 1


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
    provider_id: str | None = None,
) -> TripEstimate:
    """Walk ``walk_meters`` to the vehicle at ``vehicle_at``, ride it to ``destination``."""
    walk = walk_to(model, walk_meters)
    ride = ride_to(model, form_factor, vehicle_at, destination)
    # Unrounded: rounding each leg up would make vehicles a few metres apart tie.
    arrival = now + timedelta(minutes=walk.minutes + ride.minutes)
    price = plan.price(ride) if plan is not None else None
    return TripEstimate(vehicle_id, walk, ride, price, arrival, provider_id, form_factor)


def estimate_walk(
    model: RideModel, origin: LatLon, destination: LatLon, now: datetime
) -> TripEstimate:
    """Walking the whole way, with the walking model of :func:`walk_to` (the geodesic distance
    at the walking speed, as the walk to a vehicle is estimated)."""
    walk = walk_to(model, geodesic_meters(origin.lat, origin.lon, destination.lat, destination.lon))
    return TripEstimate(None, walk, Leg(0.0, 0.0), None, now + timedelta(minutes=walk.minutes))


def _costs_no_more(a: TripEstimate, b: TripEstimate) -> bool:
    """Whether ``a`` is known to cost no more than ``b``. Walking is free and no rental costs
    less than nothing (a GBFS price is never below zero), so walking costs no more than any
    option, priced or not. Otherwise only amounts in one currency compare: an unpriced option,
    or one in another currency, is neither cheaper nor dearer."""
    if a.is_walk:
        return True
    if a.price is None:
        return False
    if b.is_walk:
        return a.price.total_minor == 0
    return (
        b.price is not None
        and a.price.currency == b.price.currency
        and a.price.total_minor <= b.price.total_minor
    )


def dominates(a: TripEstimate, b: TripEstimate) -> bool:
    """``a`` is at least as good as ``b`` in arrival time, price and transfers, and better in
    one of them (Pareto dominance; prices compare as :func:`_costs_no_more` says)."""
    if not (
        a.arrival_time <= b.arrival_time and a.transfers <= b.transfers and _costs_no_more(a, b)
    ):
        return False
    return a.arrival_time < b.arrival_time or a.transfers < b.transfers or not _costs_no_more(b, a)


def non_dominated(estimates: Sequence[TripEstimate]) -> list[TripEstimate]:
    """The estimates no other one :func:`dominates`, in the given order.

    Not a comparison of every pair (200 candidates would be 40,000): walking dominates exactly
    the vehicle options arriving no earlier; among the rest (one transfer each) only options
    priced in one currency can dominate each other, so each currency is a sweep in order of
    arrival keeping the lowest price seen; unpriced ones only walking can dominate. Written for
    these two kinds of options: a journey with other transfer counts needs a general front."""
    walks = [e for e in estimates if e.is_walk]
    walk_arrival = min((e.arrival_time for e in walks), default=None)
    by_currency: dict[str, list[TripEstimate]] = {}
    dropped: set[int] = set()
    for e in estimates:
        if e.is_walk:
            if walk_arrival is not None and e.arrival_time > walk_arrival:
                dropped.add(id(e))  # a slower walk (the service makes only one)
        elif walk_arrival is not None and e.arrival_time >= walk_arrival:
            dropped.add(id(e))
        elif e.price is not None:
            by_currency.setdefault(e.price.currency, []).append(e)
    for group in by_currency.values():
        group.sort(key=lambda e: (e.arrival_time, _total(e)))
        cheapest_before = math.inf  # the lowest price among options arriving strictly earlier
        i = 0
        while i < len(group):
            j = i  # group[i:j] arrive at the same instant, cheapest first
            while j < len(group) and group[j].arrival_time == group[i].arrival_time:
                j += 1
            cheapest_here = _total(group[i])
            for e in group[i:j]:
                # Dominated by an earlier option no dearer, or a simultaneous cheaper one.
                if cheapest_before <= _total(e) or cheapest_here < _total(e):
                    dropped.add(id(e))
            cheapest_before = min(cheapest_before, cheapest_here)
            i = j
    return [e for e in estimates if id(e) not in dropped]


def _total(e: TripEstimate) -> int:
    assert e.price is not None
    return e.price.total_minor


def rank_trip_estimates(
    estimates: Sequence[TripEstimate], ranking: TripRanking, local: str | None = None
) -> list[TripEstimate]:
    """Cheapest first (walking at zero, unpriced last, ties by arrival) or
    earliest arrival first (ties by price). The vehicle id breaks remaining ties, so the order
    is stable across requests.

    Amounts in different currencies cannot be compared without exchange rates (nor can minor
    units of currencies with different exponents). Options priced in the currency most options
    use (the local one, in practice) are ranked first by price, then each other currency's,
    then the unpriced ones. Walking costs nothing in any currency: it ranks with the local
    options at zero. ``local`` defaults to :func:`local_currency` of ``estimates``."""
    if local is None:
        local = local_currency(estimates)

    def price_key(e: TripEstimate) -> tuple[bool, bool, str, int]:
        if e.is_walk:
            return (False, False, local or "", 0)
        if e.price is None:
            return (True, True, "", 0)
        return (False, e.price.currency != local, e.price.currency, e.price.total_minor)

    def id_key(e: TripEstimate) -> str:
        return e.vehicle_id or ""  # walking, the one option without a vehicle

    if ranking is TripRanking.TOTAL_PRICE:
        return sorted(estimates, key=lambda e: (price_key(e), e.arrival_time, id_key(e)))
    return sorted(estimates, key=lambda e: (e.arrival_time, price_key(e), id_key(e)))


def local_currency(estimates: Sequence[TripEstimate]) -> str | None:
    """The currency most priced options use (the alphabetically first of a tie), if any."""
    counts = Counter(e.price.currency for e in estimates if e.price is not None)
    return min(counts, key=lambda c: (-counts[c], c)) if counts else None


def choose_trip_estimates(
    estimates: Sequence[TripEstimate], ranking: TripRanking, limit: int
) -> list[TripEstimate]:
    """At most ``limit`` of the non-dominated estimates, diverse, in ``ranking`` order.

    A dense city has dozens of near-identical bikes on the front; the first ``limit`` by
    ranking alone would be one operator's. So, going down the ranking, an option is taken
    first only if it brings a form factor (walking counts as one) or a provider not taken yet:
    every mode and operator on the front is represented before a second option of the same
    (provider, form factor). The places left are filled in rounds: each (provider, form
    factor)'s next best option, rounds in ranking order. The answer is in ranking order."""
    # The local currency of every candidate, as the caller prices walking in.
    ranked = rank_trip_estimates(non_dominated(estimates), ranking, local_currency(estimates))
    if len(ranked) <= limit:
        return ranked
    taken: list[bool] = [False] * len(ranked)
    providers: set[str] = set()
    form_factors: set[str | None] = set()
    count = 0
    for i, e in enumerate(ranked):
        if count == limit:
            break
        new_provider = e.provider_id is not None and e.provider_id not in providers
        if new_provider or e.form_factor not in form_factors:
            taken[i] = True
            count += 1
            form_factors.add(e.form_factor)
            if e.provider_id is not None:
                providers.add(e.provider_id)
    # The places left, in rounds: each (provider, form factor)'s next best option per round,
    # rounds in ranking order, so the answer does not fill up with one station's docked bikes.
    picked = Counter(_group(e) for i, e in enumerate(ranked) if taken[i])
    rounds: list[tuple[int, int]] = []
    for i, e in enumerate(ranked):
        if not taken[i]:
            group = _group(e)
            rounds.append((picked[group], i))
            picked[group] += 1
    for _, i in sorted(rounds)[: limit - count]:
        taken[i] = True
    return [e for i, e in enumerate(ranked) if taken[i]]


def _group(e: TripEstimate) -> tuple[str | None, str | None]:
    return (e.provider_id, e.form_factor)
