"""Rate limits of authenticated callers: on or off, the per-plan limits of organisations, and
the per-rider limit.

Read by app/rate_limit.py (the limits; the built-in tables are there) and
graphql_schema/rate_limits.py (whether a request is charged).
"""

from __future__ import annotations

from app.platform.settings.base import MobilityBaseSettings


class RateLimitSettings(MobilityBaseSettings):
    # Rate limits of authenticated callers (app/rate_limit.py; numbers per plan there). Off
    # only for load tests that play many requests of one rider (bench/booking.py).
    rate_limits_enabled: bool = True
    # Per organisation plan: {"STANDARD": [burst, per_second], …}; unset: the built-in table
    # (app/rate_limit.PLAN_LIMITS). An organisation's plan is set by staff (setOrganisationPlan).
    rate_limit_plans: dict[str, tuple[int, float]] | None = None
    # Per signed-in rider: [burst, per_second]; unset: app/rate_limit.RIDER_LIMIT.
    rate_limit_rider: tuple[int, float] | None = None
