"""Prometheus metrics (``GET /metrics``): whether they are served and who may read them.

Metrics name providers (private fleets' included) and say how busy the service is, so they
are not for everyone: with ``MOBILITY_METRICS_TOKEN`` set, a scrape must send it as a bearer
token (Prometheus: ``authorization: {credentials: ...}``); without it, only a scraper on the
same host (a loopback peer address) is answered. Read by app/rest/metrics.py;
docs/operations.md says how to scrape.
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class MetricsSettings(MobilityBaseSettings):
    metrics_enabled: bool = True
    # The bearer token a scrape must send; unset: loopback scrapers only.
    metrics_token: str | None = Field(default=None, min_length=16, repr=False)
    # Seconds the scrape-time reads (providers, breakers, queue, backlogs) may take in all
    # before the scrape answers without them (and says so in mobility_state_up).
    metrics_state_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
