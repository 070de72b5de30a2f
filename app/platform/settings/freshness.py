"""When a provider's data counts as stale, whether search then hides its vehicles, and when a
stale provider is reported DOWN.

Read by app/health.py (the health status), app/search/service.py (which providers search
serves) and graphql_schema/provider_types.py (a provider's ``stale``).
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class FreshnessSettings(MobilityBaseSettings):
    # A provider whose last good sync is older than this is reported stale even if no sync
    # failed (the scheduler may be stopped, or the provider disabled).
    stale_after_seconds: float = 900.0
    # Search leaves out the vehicles of a provider whose data is stale (above), instead of
    # showing positions that may be long gone as if they were current (app/health.py).
    hide_stale_vehicles: bool = True
    # A stale provider whose last this many syncs failed in a row is reported DOWN.
    provider_down_after_failures: int = Field(default=3, ge=1)
