"""``GET /metrics``: Prometheus's text format. What every process counted
(app/platform/metrics.py), then the system's state read at scrape time (app/system_state.py).

Not for everyone (app/platform/settings/metrics.py): a bearer token when
``MOBILITY_METRICS_TOKEN`` is set; without one, nobody in production and loopback scrapers
only elsewhere. A refusal is the usual JSON error (``METRICS_TOKEN_REQUIRED`` 401,
``METRICS_FORBIDDEN`` 403).

The text is rendered off the event loop: under multiprocess mode it reads every process's
files, which must not hold up the requests this process serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.health import HealthStatus
from app.platform import metrics
from app.rest.responses import refusal
from app.runtime import Runtime
from app.system_state import (
    Backlogs,
    ProviderState,
    QueueState,
    read_backlogs,
    read_providers,
    read_queue,
    with_breakers,
)
from app.task_queue import CONSUMER_GROUP
from app.transit.realtime_poll import RealtimeFeedState, realtime_states
from providers.breaker import BreakerState

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    if not settings.metrics_enabled:
        return refusal(404, "NOT_FOUND", "metrics are not served here")
    denied = _denied(request, settings.metrics_token, settings.environment == "production")
    if denied is not None:
        return denied
    state = await _read_state(runtime, settings.metrics_state_timeout_seconds)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(state)
    body = await asyncio.to_thread(_render, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _render(state: CollectorRegistry) -> bytes:
    return generate_latest(metrics.process_registry()) + generate_latest(state)


def _denied(request: Request, token: str | None, production: bool) -> Response | None:
    if token is not None:
        if metrics.bearer_matches(request.headers.get("authorization"), token):
            return None
        return refusal(401, "METRICS_TOKEN_REQUIRED", "send the metrics token as a bearer token")
    if production:
        return refusal(
            403,
            "METRICS_FORBIDDEN",
            "metrics are served with a token only: set MOBILITY_METRICS_TOKEN",
        )
    # Development: a peer on this host (uvicorn may have taken the address from a local
    # proxy's X-Forwarded-For; acceptable where nothing private is at stake).
    if metrics.is_loopback_host(request.client.host if request.client else None):
        return None
    return refusal(
        403,
        "METRICS_FORBIDDEN",
        "metrics are served to this host only; set MOBILITY_METRICS_TOKEN to scrape from elsewhere",
    )


class _State(Collector):
    """The state read for one scrape, as gauges."""

    def __init__(self) -> None:
        self.providers: list[ProviderState] | None = None
        self.transit_realtime: list[RealtimeFeedState] | None = None
        self.queue: QueueState | None = None
        self.backlogs: Backlogs | None = None
        self.database_up = False
        self.redis_up = False

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "mobility_state_up",
            "Whether this scrape could read the system's state from the store (1) or not (0)",
            labels=["store"],
        )
        up.add_metric(["database"], 1.0 if self.database_up else 0.0)
        up.add_metric(["redis"], 1.0 if self.redis_up else 0.0)
        yield up
        if self.providers is not None:
            yield from _provider_metrics(self.providers)
        if self.transit_realtime is not None:
            yield from _transit_realtime_metrics(self.transit_realtime)
        if self.queue is not None:
            depth = GaugeMetricFamily(
                "mobility_task_queue_depth",
                "Tasks on the queue: waiting for a worker, or running (taken, not yet done)",
                labels=["state"],
            )
            if self.queue.waiting is not None:
                depth.add_metric(["waiting"], self.queue.waiting)
            depth.add_metric(["running"], self.queue.running)
            yield depth
        if self.backlogs is not None:
            yield from _backlog_metrics(self.backlogs)

    def describe(self) -> Iterable[Metric]:
        return ()


def _provider_metrics(providers: list[ProviderState]) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        "mobility_provider_status",
        "Each provider's health (app/health.py), 1 for the status it is in",
        labels=["provider", "status"],
    )
    age = GaugeMetricFamily(
        "mobility_provider_data_age_seconds",
        "Seconds since each provider's last successful sync (absent: never synced)",
        labels=["provider"],
    )
    failures = GaugeMetricFamily(
        "mobility_provider_consecutive_failures",
        "Failed syncs in a row, per provider",
        labels=["provider"],
    )
    breaker = GaugeMetricFamily(
        "mobility_provider_breaker_state",
        "Each provider's circuit breaker, 1 for the state it is in",
        labels=["provider", "state"],
    )
    for p in providers:
        for s in HealthStatus:
            status.add_metric([p.id, s.value], 1.0 if s is p.status else 0.0)
        if p.data_age_seconds is not None:
            age.add_metric([p.id], p.data_age_seconds)
        failures.add_metric([p.id], p.consecutive_failures)
        if p.breaker is not None:
            for b in BreakerState:
                breaker.add_metric([p.id, b.value.lower()], 1.0 if b is p.breaker else 0.0)
    yield from (status, age, failures, breaker)


def _transit_realtime_metrics(feeds: list[RealtimeFeedState]) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        "mobility_transit_realtime_status",
        "Each transit feed's live data health (app/health.py's rules), 1 for its status",
        labels=["feed", "status"],
    )
    age = GaugeMetricFamily(
        "mobility_transit_realtime_data_age_seconds",
        "Seconds since each transit feed's last good GTFS-Realtime poll (absent: never)",
        labels=["feed"],
    )
    failures = GaugeMetricFamily(
        "mobility_transit_realtime_consecutive_failures",
        "Failed GTFS-Realtime polls in a row, per transit feed",
        labels=["feed"],
    )
    unknown = GaugeMetricFamily(
        "mobility_transit_realtime_unknown_trips",
        "Trip ids in the last good poll's trip updates that the active timetable does not have",
        labels=["feed"],
    )
    for f in feeds:
        for s in HealthStatus:
            status.add_metric([f.feed, s.value], 1.0 if s is f.status else 0.0)
        if f.data_age_seconds is not None:
            age.add_metric([f.feed], f.data_age_seconds)
        failures.add_metric([f.feed], f.consecutive_failures)
        unknown.add_metric([f.feed], f.unknown_trips)
    yield from (status, age, failures, unknown)


def _backlog_metrics(b: Backlogs) -> Iterator[Metric]:
    yield _backlog(
        "mobility_bookings_pending",
        "Bookings waiting on an operator (PENDING), and the age of the oldest in seconds",
        b.bookings_pending,
        b.oldest_pending_booking_seconds,
    )
    yield _backlog(
        "mobility_webhook_backlog",
        "Webhook deliveries not yet made (PENDING), and the age of the oldest in seconds",
        b.webhooks_pending,
        b.oldest_pending_webhook_seconds,
    )


def _backlog(name: str, documentation: str, count: int, oldest_seconds: float) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=["measure"])
    family.add_metric(["count"], count)
    family.add_metric(["oldest_seconds"], oldest_seconds)
    return family


async def _read_state(runtime: Runtime, limit_seconds: float) -> _State:
    state = _State()

    async def database() -> None:
        state.providers = await read_providers(runtime.sessions, runtime.settings)
        state.transit_realtime = await realtime_states(runtime.sessions, runtime.settings)
        state.backlogs = await read_backlogs(runtime.sessions)
        state.database_up = True

    async def redis() -> None:
        state.queue = await read_queue(runtime.redis, runtime.keys, CONSUMER_GROUP)
        state.redis_up = True

    async def guarded(read: Coroutine[Any, Any, None], store: str) -> None:
        try:
            async with asyncio.timeout(limit_seconds):
                await read
        except Exception as exc:  # a store down or slow: the scrape says so, and goes on
            log.warning("metrics: could not read the %s state: %s", store, type(exc).__name__)

    # One budget for all the reads: the breakers get what the stores left of it.
    deadline = asyncio.get_running_loop().time() + limit_seconds
    await asyncio.gather(guarded(database(), "database"), guarded(redis(), "redis"))
    if state.providers is not None and state.redis_up:
        try:
            async with asyncio.timeout_at(deadline):
                state.providers = await with_breakers(state.providers, runtime.breaker)
        except Exception as exc:
            log.warning("metrics: could not read the breakers: %s", type(exc).__name__)
    return state
