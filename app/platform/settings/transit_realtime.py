"""Polling GTFS-Realtime feeds: how often, and how old live data may be before it is ignored.

Read by app/transit/realtime_poll.py (the poller and the store). Everything else a poll needs is
the GBFS syncs' own: the HTTP timeout, the deadline, the body size cap, the backoff and its cap
(app/platform/settings/sync.py), the circuit breaker (breaker.py) and the health rules
(freshness.py).
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class TransitRealtimeSettings(MobilityBaseSettings):
    # A healthy feed is polled this often (GTFS-Realtime has no ttl; producers refresh every
    # 15-30 s). Failures back off from here as GBFS syncs do.
    transit_realtime_interval_seconds: float = Field(default=30.0, ge=1.0)
    # Live data fetched longer ago than this is ignored: departures fall back to the timetable
    # rather than show delays that may no longer hold. The Redis copy expires then too.
    transit_realtime_max_age_seconds: float = Field(default=300.0, ge=10.0)
