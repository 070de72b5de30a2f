"""A reference for trip options' choice, written apart from app/booking/estimates.py: Pareto
dominance by comparing every pair of candidates, for the pure tests and the API tests alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

FREE: Final = "free"  # walking: costs nothing, in any currency


@dataclass(frozen=True)
class Candidate:
    key: str  # a vehicle id, or "walk"
    arrival: float  # any unit, e.g. minutes from now
    transfers: int  # vehicle legs
    price: tuple[str, int] | Literal["free"] | None  # (currency, minor units); None: unpriced


def costs_no_more(a: Candidate, b: Candidate) -> bool:
    """Known to cost no more: nothing costs less than walking (rental prices are never
    negative); an unpriced option's price is unknown; amounts in two currencies do not
    compare."""
    if a.price == FREE:
        return True
    if a.price is None or b.price is None:
        return False
    if b.price == FREE:
        return a.price[1] == 0
    return a.price[0] == b.price[0] and a.price[1] <= b.price[1]


def beats(a: Candidate, b: Candidate) -> bool:
    no_worse = a.arrival <= b.arrival and a.transfers <= b.transfers and costs_no_more(a, b)
    better = a.arrival < b.arrival or a.transfers < b.transfers or not costs_no_more(b, a)
    return no_worse and better


def pareto_front(candidates: Sequence[Candidate]) -> set[str]:
    """Every candidate no other one beats, by trying every pair."""
    return {b.key for b in candidates if not any(beats(a, b) for a in candidates if a is not b)}
