"""The circuit breaker in front of each operator: when it opens and how long it stays open.

Read by providers/breaker.py (which also reads ``sync_deadline_seconds``,
app/platform/settings/sync.py).
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class BreakerSettings(MobilityBaseSettings):
    # Circuit breaker per provider, its state in Redis so every worker shares it: after this
    # many consecutive failures no call goes to the operator until a cool-down has passed
    # (doubling on each failed trial, capped at the max), then one trial call is let through.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = 60.0
    breaker_max_cooldown_seconds: float = 3600.0
