"""Quotes and trip options: how walking and riding are estimated, how far trip options look,
the longest ride quoted, and how long an offer stands.

Read by app/booking/quotes.py (docs/quotes.md, "The estimate model").
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class QuoteSettings(MobilityBaseSettings):
    # --- Quotes and trip options (app/booking/quotes) ---
    quote_ttl_seconds: int = Field(default=120, ge=5)
    walking_speed_kmh: float = Field(default=4.8, gt=0)
    # How far from the start point trip options look for vehicles.
    trip_options_radius_meters: float = Field(default=1_000.0, gt=0)
    # Straight-line distance times this is the ride distance estimate (streets are not straight).
    detour_factor: float = Field(default=1.3, ge=1)
    # Average ride speeds per form factor, km/h, for ride-time estimates.
    ride_speed_kmh: dict[str, float] = Field(
        default_factory=lambda: {
            "bicycle": 15.0,
            "cargo_bicycle": 12.0,
            "scooter_standing": 15.0,
            "scooter_seated": 18.0,
            "scooter": 15.0,
            "moped": 25.0,
            "car": 30.0,
            "other": 12.0,
        }
    )
    # Quotes and trip options cover rides up to this straight-line distance (TRIP_TOO_LONG).
    max_trip_distance_meters: float = Field(default=100_000.0, gt=0)
