"""A planned journey (`app/transit/journeys.py` plans them) and the choice among journeys.

A journey is its parts: walking, a shared vehicle, a transit trip. The answer is the Pareto
set over (arrival, price, boardings): a journey is dropped when another one arrives no later,
costs no more and boards no more vehicles, and is better in one. Boardings rather than
transfers, so walking (no boarding, free) is never dropped. Prices are the shared vehicles'
only: transit fares are not modelled (GTFS fares are optional and rarely complete), so a
transit leg counts as free; the answer says so. Prices in different currencies do not compare.
From the front, at most ``first`` are chosen, diverse: each combination of modes (walk, each
form factor, transit) and each operator first, then by arrival.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from adapters.gbfs.pricing import PriceBreakdown
from app.booking.estimates import Leg
from app.booking.offers import Offer
from app.reference import ReferenceData
from app.search.schemas import VehicleHit
from app.transit.timetable import TransitRoute, TransitStop, TransitTrip

__all__ = [
    "JourneyPlan",
    "Part",
    "PlannedJourney",
    "TransitPart",
    "VehiclePart",
    "WalkPart",
    "choose",
    "dominates",
    "pareto",
]


@dataclass(frozen=True, slots=True)
class Place:
    lat: float
    lon: float
    name: str | None = None
    stop: TransitStop | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """Where and when a part of a journey starts and ends: what every part has."""

    start: Place
    end: Place
    departure: datetime
    arrival: datetime


@dataclass(frozen=True, slots=True)
class WalkPart(Span):
    meters: float


@dataclass(frozen=True, slots=True)
class VehiclePart(Span):
    hit: VehicleHit
    ride: Leg
    price: PriceBreakdown | None
    offer: Offer


@dataclass(frozen=True, slots=True)
class TransitPart(Span):
    route: TransitRoute
    trip: TransitTrip
    service_date: date
    headsign: str | None
    realtime: bool
    feed: str


Part = WalkPart | VehiclePart | TransitPart


@dataclass(frozen=True, slots=True)
class PlannedJourney:
    parts: tuple[Part, ...]
    departure: datetime
    arrival: datetime
    # The shared vehicles' prices, summed per currency (one entry in practice); transit fares
    # are not included.
    prices: tuple[PriceBreakdown, ...]
    unpriced_vehicles: bool  # a vehicle leg has no price (no plan): the total is not known

    @property
    def boardings(self) -> int:
        return sum(1 for p in self.parts if not isinstance(p, WalkPart))

    @property
    def transfers(self) -> int:
        return max(0, self.boardings - 1)

    @property
    def modes(self) -> frozenset[str]:
        out = set()
        for p in self.parts:
            if isinstance(p, WalkPart):
                continue
            if isinstance(p, VehiclePart):
                out.add(p.hit.vehicle.form_factor)
            else:
                out.add("transit")
        return frozenset(out) or frozenset({"walk"})

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(
            p.hit.vehicle.provider_id for p in self.parts if isinstance(p, VehiclePart)
        )


@dataclass(frozen=True, slots=True)
class JourneyPlan:
    journeys: list[PlannedJourney]
    reference: ReferenceData
    vehicles_considered: bool  # False: the departure is not soon, so vehicles were left out


def _costs_no_more(a: PlannedJourney, b: PlannedJourney) -> bool:
    """Known to cost no more: free beats everything; otherwise one currency, both priced."""
    if not a.prices and not a.unpriced_vehicles:
        return True
    if a.unpriced_vehicles or b.unpriced_vehicles or len(a.prices) != 1 or len(b.prices) > 1:
        return False
    if not b.prices:
        return a.prices[0].total_minor == 0
    return (
        a.prices[0].currency == b.prices[0].currency
        and a.prices[0].total_minor <= b.prices[0].total_minor
    )


def _when(j: PlannedJourney, arrive_by: bool) -> float:
    """The time criterion, lower is better: the arrival, or for an arrive-by question the
    departure (later is better: less time spent)."""
    return -j.departure.timestamp() if arrive_by else j.arrival.timestamp()


def dominates(a: PlannedJourney, b: PlannedJourney, *, arrive_by: bool = False) -> bool:
    at, bt = _when(a, arrive_by), _when(b, arrive_by)
    if not (at <= bt and a.boardings <= b.boardings and _costs_no_more(a, b)):
        return False
    return at < bt or a.boardings < b.boardings or not _costs_no_more(b, a)


def pareto(journeys: Sequence[PlannedJourney], *, arrive_by: bool = False) -> list[PlannedJourney]:
    """The journeys no other one dominates; of identical ones (same time criterion, price,
    boardings, modes and operators), the one departing latest (least waiting), then the
    first."""
    front = [
        j
        for j in journeys
        if not any(dominates(o, j, arrive_by=arrive_by) for o in journeys if o is not j)
    ]
    seen: dict[tuple[object, ...], PlannedJourney] = {}
    for j in front:
        kept = seen.get(_key(j, arrive_by))
        if kept is None or j.departure > kept.departure:
            seen[_key(j, arrive_by)] = j
    return [j for j in front if seen.get(_key(j, arrive_by)) is j]


def _key(j: PlannedJourney, arrive_by: bool) -> tuple[object, ...]:
    prices = tuple(p.total_minor for p in j.prices)
    return (_when(j, arrive_by), j.boardings, prices, j.modes, j.providers)


def choose(
    journeys: Sequence[PlannedJourney], limit: int, *, arrive_by: bool = False
) -> list[PlannedJourney]:
    """At most `limit` of the front, earliest arrival first (an arrive-by question: latest
    departure first): each combination of modes and each operator is represented before a
    second journey of the same kind."""

    def rank(j: PlannedJourney) -> tuple[float, int, int]:
        return (_when(j, arrive_by), sum(p.total_minor for p in j.prices), j.boardings)

    ranked = sorted(pareto(journeys, arrive_by=arrive_by), key=rank)
    if len(ranked) <= limit:
        return ranked
    taken: list[PlannedJourney] = []
    kinds: set[frozenset[str]] = set()
    providers: set[str] = set()
    for j in ranked:
        if len(taken) == limit:
            break
        if j.modes not in kinds or not j.providers <= providers:
            taken.append(j)
            kinds.add(j.modes)
            providers |= j.providers
    for j in ranked:
        if len(taken) == limit:
            break
        if all(j is not t for t in taken):
            taken.append(j)
    return sorted(taken, key=rank)


def leave_late(j: PlannedJourney) -> PlannedJourney:
    """The journey left as late as it can be: a first walk to the first transit trip starts
    when it must to catch it (the search let the rider set off at the query's instant and
    wait at the stop). Walking the whole way, or a vehicle first, is left as it is."""
    if len(j.parts) < 2 or not isinstance(j.parts[0], WalkPart):
        return j
    walk, first = j.parts[0], j.parts[1]
    if not isinstance(first, TransitPart):
        return j
    start = first.departure - (walk.arrival - walk.departure)
    if start <= walk.departure:
        return j
    moved = replace(walk, departure=start, arrival=first.departure)
    return replace(j, parts=(moved, *j.parts[1:]), departure=start)


def planned_journey(parts: Sequence[Part]) -> PlannedJourney:
    # A walk of nothing (the destination is the stop itself) is no leg to show.
    kept = [p for p in parts if not (isinstance(p, WalkPart) and p.meters < 1.0)]
    parts = kept or list(parts[:1])
    totals: dict[str, list[PriceBreakdown]] = {}
    unpriced = False
    for p in parts:
        if isinstance(p, VehiclePart):
            if p.price is None:
                unpriced = True
            else:
                totals.setdefault(p.price.currency, []).append(p.price)
    prices = tuple(_sum(currency, items) for currency, items in sorted(totals.items()))
    return PlannedJourney(tuple(parts), parts[0].departure, parts[-1].arrival, prices, unpriced)


def _sum(currency: str, items: Sequence[PriceBreakdown]) -> PriceBreakdown:
    return PriceBreakdown(
        currency,
        sum(p.base_minor for p in items),
        sum(p.time_minor for p in items),
        sum(p.distance_minor for p in items),
        sum(p.total_minor for p in items),
    )
