"""Receipts and price snapshots: the pricing plan a booking keeps from the moment its vehicle
was reserved, and the itemised final price computed over it when the ride ends (with
:func:`adapters.gbfs.pricing.estimate_price`, the one price computation). Pure: the ride's end
time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from adapters.booking import OperatorBooking
from adapters.dto import PricingSegment
from adapters.gbfs.pricing import PriceBreakdown, estimate_price
from app.models import Booking, PricingPlan
from geo.distance import geodesic_meters

__all__ = ["finish_values", "plan_snapshot", "price_for", "pricing_segments", "receipt_for"]


def plan_snapshot(plan: PricingPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "name": plan.name,
        "currency": plan.currency,
        "price_minor": plan.price_minor,
        "per_min_pricing": plan.per_min_pricing,
        "per_km_pricing": plan.per_km_pricing,
    }


def pricing_segments(raw: Sequence[Mapping[str, Any]]) -> tuple[PricingSegment, ...]:
    """A plan's per-minute or per-kilometre segments as stored (a JSON list, written by
    ``providers/rows.py``; snapshots keep the same form), read back."""
    return tuple(
        PricingSegment(
            start=int(s["start"]),
            rate_minor=int(s["rate_minor"]),
            interval=int(s["interval"]),
            end=int(s["end"]) if s.get("end") is not None else None,
        )
        for s in raw
    )


def price_for(plan: Mapping[str, Any], *, minutes: float, kilometers: float) -> PriceBreakdown:
    return estimate_price(
        currency=str(plan["currency"]),
        price_minor=int(plan["price_minor"]),
        per_min_pricing=pricing_segments(plan.get("per_min_pricing") or []),
        per_km_pricing=pricing_segments(plan.get("per_km_pricing") or []),
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


def finish_values(
    booking: Booking,
    answer: OperatorBooking,
    lat: float | None,
    lon: float | None,
    now: datetime,
) -> dict[str, Any]:
    """A finished ride's final figures (the booking's new column values); ``lat``/``lon``
    None: where the ride ended is not known (settled by reconciliation), only the operator's
    own distance counts."""
    started = booking.started_at or now
    if answer.distance_meters is not None:
        # The operator measured the ride (odometer, telemetry): that is what is billed.
        distance = answer.distance_meters
    elif (
        booking.start_lat is not None
        and booking.start_lon is not None
        and lat is not None
        and lon is not None
    ):
        # Otherwise the straight line from where the ride started to where the rider's
        # app says it ended (a lower bound of the real distance).
        distance = geodesic_meters(booking.start_lat, booking.start_lon, lat, lon)
    else:
        distance = 0.0
    values: dict[str, Any] = {
        "ended_at": now,
        "end_lat": lat,
        "end_lon": lon,
        "distance_meters": distance,
    }
    operator_price = (
        {"amount_minor": answer.price.amount_minor, "currency": answer.price.currency}
        if answer.price
        else None
    )
    if booking.pricing_plan:
        receipt = receipt_for(
            booking.pricing_plan,
            started_at=started,
            ended_at=now,
            distance_meters=distance,
            operator_price=operator_price,
        )
        values.update(
            receipt=receipt,
            final_price_minor=receipt["total_minor"],
            currency=receipt["currency"],
        )
    elif answer.price is not None:
        values.update(
            final_price_minor=answer.price.amount_minor,
            currency=answer.price.currency,
            receipt={
                "currency": answer.price.currency,
                "lines": [
                    {
                        "kind": "OPERATOR",
                        "label": "Operator's price",
                        "amount_minor": answer.price.amount_minor,
                    }
                ],
                "total_minor": answer.price.amount_minor,
                "operator_price": operator_price,
            },
        )
    return values
