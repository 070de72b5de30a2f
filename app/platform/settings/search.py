"""Search: the bounds of every search request, and how long reference data is cached.

The limits are read by app/search/validation.py (``max_first`` also by app/booking/quotes.py
and graphql_schema/cost.py); ``reference_ttl_seconds`` by app/runtime.py and
app/commands/providers.py (for app/reference.py).
"""

from __future__ import annotations

from app.platform.settings.base import MobilityBaseSettings


class SearchSettings(MobilityBaseSettings):
    # Search limits: every request is bounded.
    max_radius_meters: float = 5_000.0
    max_first: int = 200
    default_first: int = 50
    max_bbox_span_degrees: float = 2.0
    # Providers, vehicle types and pricing plans are cached per process this long (see
    # app/reference.py); a sync in the same process invalidates at once.
    reference_ttl_seconds: float = 5.0
