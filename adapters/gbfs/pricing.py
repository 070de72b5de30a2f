"""Trip price estimates from GBFS pricing plans: one pure module, no I/O.

GBFS (``system_pricing_plans``, v2.2+) prices a trip as the plan's ``price`` (charged once: the
unlock fee, or the whole fare when there are no rates) plus every segment of ``per_min_pricing``
and ``per_km_pricing``. A segment charges its ``rate`` for each ``interval`` it covers from
``start`` (inclusive) until ``end`` (exclusive) or the end of the trip; an ``interval`` of 0
charges the rate once. Segments add up, even when they overlap (the spec's example 1 charges
two segments from km 25 on).

The reading of "for each interval" used here: a charge falls at the *beginning* of each
interval, at ``start``, ``start + interval``, ..., and is due once the trip has gone past that
point. So a 0.5-minute ride pays a per-minute rate once, a ride of exactly 10 km does not pay an
overage that starts at km 10, and 10.1 km pays one kilometre of it. That is how operators
publishing these plans bill (a started minute counts) and how the spec's "includes 10 km" reads.

Amounts are integers in the currency's minor units (the plan's segments are stored that way,
``adapters.money``). Rates may be negative (a discount); the total never goes below zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from adapters.dto import PricingSegment

__all__ = ["PriceBreakdown", "PricingError", "estimate_price", "segment_charges"]


class PricingError(ValueError):
    """The trip or the plan cannot be priced (negative duration, a segment that makes no sense)."""


@dataclass(frozen=True, slots=True)
class PriceBreakdown:
    currency: str
    base_minor: int  # the plan's price: unlock fee, or the whole fare
    time_minor: int  # every per-minute segment
    distance_minor: int  # every per-km segment
    total_minor: int  # base + time + distance, floored at zero

    @property
    def is_flat(self) -> bool:
        return self.time_minor == 0 and self.distance_minor == 0


def segment_charges(segment: PricingSegment, amount: float) -> int:
    """How many times ``segment`` charges its rate over a trip of ``amount`` minutes or km."""
    if amount < 0 or not math.isfinite(amount):
        raise PricingError(f"trip length must be a finite non-negative number, not {amount!r}")
    if segment.start < 0 or segment.interval < 0:
        raise PricingError("a pricing segment's start and interval cannot be negative")
    if segment.end is not None and segment.end <= segment.start:
        return 0  # an empty segment never charges
    covered = amount if segment.end is None else min(amount, float(segment.end))
    if covered <= segment.start:
        return 0
    if segment.interval == 0:
        return 1
    # Charges at start, start + interval, ... strictly before `covered`.
    return math.ceil((covered - segment.start) / segment.interval)


def _segments_total(segments: Sequence[PricingSegment], amount: float) -> int:
    return sum(s.rate_minor * segment_charges(s, amount) for s in segments)


def estimate_price(
    *,
    currency: str,
    price_minor: int,
    per_min_pricing: Sequence[PricingSegment] = (),
    per_km_pricing: Sequence[PricingSegment] = (),
    minutes: float,
    kilometers: float = 0.0,
) -> PriceBreakdown:
    """The price of a trip of ``minutes`` and ``kilometers`` under one plan."""
    if price_minor < 0:
        raise PricingError("a plan's price cannot be negative")
    for what, amount in (("minutes", minutes), ("kilometers", kilometers)):
        if amount < 0 or not math.isfinite(amount):
            raise PricingError(f"{what} must be a finite non-negative number, not {amount!r}")
    time_minor = _segments_total(per_min_pricing, minutes)
    distance_minor = _segments_total(per_km_pricing, kilometers)
    total = max(0, price_minor + time_minor + distance_minor)
    return PriceBreakdown(currency, price_minor, time_minor, distance_minor, total)
