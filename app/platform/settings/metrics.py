"""Prometheus metrics (``GET /metrics``; the worker's and scheduler's ``--metrics-port``):
whether they are served, who may read them, and which operation names they name.

Metrics name providers (private fleets' included) and say how busy the service is, so they
are not for everyone: with ``MOBILITY_METRICS_TOKEN`` set, a scrape must send it as a bearer
token (Prometheus: ``authorization: {credentials: ...}``). Without it, a production process
(``MOBILITY_ENVIRONMENT=production``) refuses every scrape, and a development one answers
only a loopback peer: the peer address uvicorn reports may come from a proxy's
``X-Forwarded-For``, which is no proof of where a request came from. Read by
app/rest/metrics.py and app/platform/metrics.py; docs/operations.md says how to scrape.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from app.platform.settings.base import MobilityBaseSettings

_GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")


class MetricsSettings(MobilityBaseSettings):
    metrics_enabled: bool = True
    # The bearer token a scrape must send.
    metrics_token: str | None = Field(default=None, min_length=16, repr=False)
    # Seconds the scrape-time reads (providers, breakers, queue, backlogs) may take in all
    # before the scrape answers without them (and says so in mobility_state_up).
    metrics_state_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # The GraphQL operation names counted under their own label, comma-separated (the names
    # your apps send); every other name is counted as "other". At most 200.
    metrics_operation_names: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("metrics_operation_names", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple | set | frozenset):
            names = tuple(value)
            bad = [n for n in names if not (isinstance(n, str) and _GRAPHQL_NAME.fullmatch(n))]
            if bad:
                raise ValueError(f"not GraphQL operation names: {bad[:5]}")
            if len(names) > 200:
                raise ValueError("at most 200 operation names")
            return names
        return value
