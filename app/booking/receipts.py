"""Receipts and price snapshots: the pricing plan a booking keeps from the moment its vehicle
was reserved, and the itemised final price computed over it when the ride ends (with
:func:`app.booking.pricing.estimate_price`, the one price computation).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from adapters.dto import PricingSegment
from app.booking.pricing import PriceBreakdown, estimate_price
from app.models import PricingPlan

__all__ = ["plan_snapshot", "price_for", "receipt_for"]


def plan_snapshot(plan: PricingPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "name": plan.name,
        "currency": plan.currency,
        "price_minor": plan.price_minor,
        "per_min_pricing": plan.per_min_pricing,
        "per_km_pricing": plan.per_km_pricing,
    }


def _segments(raw: list[dict[str, Any]]) -> tuple[PricingSegment, ...]:
    return tuple(
        PricingSegment(
            start=int(s["start"]),
            rate_minor=int(s["rate_minor"]),
            interval=int(s["interval"]),
            end=s.get("end"),
        )
        for s in raw
    )


def price_for(plan: Mapping[str, Any], *, minutes: float, kilometers: float) -> PriceBreakdown:
    return estimate_price(
        currency=str(plan["currency"]),
        price_minor=int(plan["price_minor"]),
        per_min_pricing=_segments(plan.get("per_min_pricing") or []),
        per_km_pricing=_segments(plan.get("per_km_pricing") or []),
        minutes=minutes,
        kilometers=kilometers,
    )


def receipt_for(
    plan: Mapping[str, Any],
    *,
    started_at: datetime,
    ended_at: datetime,
    distance_meters: float,
    operator_price: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The itemised final price: real duration (pauses included: GBFS plans price the rental
    time) and distance, over the plan as it was when the vehicle was reserved."""
    minutes = max(0.0, (ended_at - started_at).total_seconds() / 60.0)
    kilometers = distance_meters / 1000.0
    price = price_for(plan, minutes=minutes, kilometers=kilometers)
    return {
        "currency": price.currency,
        "plan_id": plan.get("id"),
        "plan_name": plan.get("name"),
        "minutes": minutes,
        "kilometers": kilometers,
        "lines": [
            {"kind": "UNLOCK", "label": "Unlock / base fee", "amount_minor": price.base_minor},
            {
                "kind": "TIME",
                "label": f"Time ({minutes:.1f} min)",
                "amount_minor": price.time_minor,
            },
            {
                "kind": "DISTANCE",
                "label": f"Distance ({kilometers:.2f} km)",
                "amount_minor": price.distance_minor,
            },
        ],
        "total_minor": price.total_minor,
        # What the operator itself reported, when it did: kept for reconciliation with its
        # invoice, never shown as the price (TOMP leaves the final price unclear, NOTES.md §6).
        "operator_price": dict(operator_price) if operator_price else None,
    }
