"""Price estimates against a reference that walks the charge points one by one."""

from __future__ import annotations

import math
import random

import pytest

from adapters.dto import PricingSegment
from adapters.gbfs.pricing import PricingError, estimate_price, segment_charges


def _walked(segments: list[PricingSegment], amount: float) -> int:
    """Reference: step through each segment's charge points (start, start + interval, ...) and
    add the rate for every point the trip has gone past; the module under test counts them with
    one division instead."""
    total = 0
    for s in segments:
        stop = amount if s.end is None else min(amount, s.end)
        point = float(s.start)
        while point < stop:
            total += s.rate_minor
            if s.interval == 0:
                break
            point += s.interval
    return total


# GBFS 3.0 spec, system_pricing_plans example 1 ("plan2"): $2.00, includes 10 km, then $1.00
# per km to km 25, and from km 25 both $0.50 per km and $3.00 per 5 km.
PLAN2_KM = [
    PricingSegment(start=10, rate_minor=100, interval=1, end=25),
    PricingSegment(start=25, rate_minor=50, interval=1),
    PricingSegment(start=25, rate_minor=300, interval=5),
]


@pytest.mark.parametrize("km", [0, 5, 10, 10.1, 11, 24.9, 25, 25.01, 30, 30.5, 100])
def test_the_spec_example_with_overlapping_distance_segments(km: float) -> None:
    price = estimate_price(
        currency="USD", price_minor=200, per_km_pricing=PLAN2_KM, minutes=17, kilometers=km
    )
    assert price.base_minor == 200 and price.time_minor == 0
    assert price.distance_minor == _walked(PLAN2_KM, km)
    assert price.total_minor == 200 + _walked(PLAN2_KM, km)


def test_the_spec_example_charging_by_time_and_distance_at_once() -> None:
    per_km = [PricingSegment(start=0, rate_minor=25, interval=1)]
    per_min = [PricingSegment(start=0, rate_minor=50, interval=1)]
    price = estimate_price(
        currency="CAD",
        price_minor=300,
        per_km_pricing=per_km,
        per_min_pricing=per_min,
        minutes=12.0,
        kilometers=3.2,
    )
    assert (price.time_minor, price.distance_minor) == (
        _walked(per_min, 12.0),
        _walked(per_km, 3.2),
    )
    assert price.total_minor == 300 + _walked(per_min, 12.0) + _walked(per_km, 3.2)


def test_random_plans_agree_with_the_walk() -> None:
    rng = random.Random(20261128)
    for _ in range(2000):
        segments = []
        for _ in range(rng.randint(0, 4)):
            start = rng.randint(0, 40)
            end = rng.choice([None, start + rng.randint(0, 30), rng.randint(0, 40)])
            segments.append(
                PricingSegment(
                    start=start,
                    rate_minor=rng.randint(-50, 500),
                    interval=rng.choice([0, 1, 1, 2, 5, 15]),
                    end=end,
                )
            )
        amount = rng.choice([0.0, rng.uniform(0, 90), float(rng.randint(0, 90))])
        base = rng.randint(0, 500)
        price = estimate_price(
            currency="EUR", price_minor=base, per_min_pricing=segments, minutes=amount
        )
        assert price.time_minor == _walked(segments, amount)
        assert price.total_minor == max(0, base + _walked(segments, amount))


def test_a_flat_fare_and_a_discount_that_cannot_go_below_zero() -> None:
    flat = estimate_price(currency="NOK", price_minor=4900, minutes=300, kilometers=80)
    assert flat.is_flat and flat.total_minor == 4900
    discount = [PricingSegment(start=0, rate_minor=-100, interval=0)]
    free = estimate_price(currency="EUR", price_minor=50, per_min_pricing=discount, minutes=1)
    assert free.time_minor == -100 and free.total_minor == 0


def test_charges_start_at_the_beginning_of_each_interval() -> None:
    per_minute = PricingSegment(start=0, rate_minor=30, interval=1)
    assert segment_charges(per_minute, 0.0) == 0
    assert segment_charges(per_minute, 0.5) == 1  # a started minute counts
    assert segment_charges(per_minute, 10.0) == 10
    assert segment_charges(per_minute, 10.01) == 11
    overage = PricingSegment(start=10, rate_minor=100, interval=1, end=25)
    assert segment_charges(overage, 10.0) == 0  # "includes 10 km"
    assert segment_charges(overage, 40.0) == 15  # km 10 to 24
    assert segment_charges(PricingSegment(start=5, rate_minor=1, interval=1, end=5), 50) == 0


@pytest.mark.parametrize(
    ("minutes", "kilometers"), [(-1.0, 0.0), (math.nan, 0.0), (1.0, -0.1), (math.inf, 0.0)]
)
def test_impossible_trips_are_refused(minutes: float, kilometers: float) -> None:
    with pytest.raises(PricingError):
        estimate_price(currency="EUR", price_minor=0, minutes=minutes, kilometers=kilometers)


def test_impossible_plans_are_refused() -> None:
    with pytest.raises(PricingError):
        estimate_price(currency="EUR", price_minor=-1, minutes=1)
    with pytest.raises(PricingError):
        segment_charges(PricingSegment(start=0, rate_minor=1, interval=-1), 3)
