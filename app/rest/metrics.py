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


class _HealthGauges:
    """The gauges of anything whose health app/health.py's rules decide (a provider, a transit
    feed's live data), one label naming it: its status (1 for the one it is in), its data's
    age and its failures in a row, named ``<prefix>_status``, ``<prefix>_data_age_seconds``
    and ``<prefix>_consecutive_failures``."""

    def __init__(
        self, prefix: str, label: str, *, status: str, data_age: str, failures: str
    ) -> None:
        self.status = GaugeMetricFamily(f"{prefix}_status", status, labels=[label, "status"])
        self.age = GaugeMetricFamily(f"{prefix}_data_age_seconds", data_age, labels=[label])
        self.failures = GaugeMetricFamily(
            f"{prefix}_consecutive_failures", failures, labels=[label]
        )

    def add(
        self,
        key: str,
        status: HealthStatus,
        data_age_seconds: float | None,
        consecutive_failures: int,
    ) -> None:
        for s in HealthStatus:
            self.status.add_metric([key, s.value], 1.0 if s is status else 0.0)
        if data_age_seconds is not None:  # absent: never a good read
            self.age.add_metric([key], data_age_seconds)
        self.failures.add_metric([key], consecutive_failures)

    def families(self) -> tuple[Metric, ...]:
        return (self.status, self.age, self.failures)


def _provider_metrics(providers: list[ProviderState]) -> Iterator[Metric]:
    health = _HealthGauges(
        "mobility_provider",
        "provider",
        status="Each provider's health (app/health.py), 1 for the status it is in",
        data_age="Seconds since each provider's last successful sync (absent: never synced)",
        failures="Failed syncs in a row, per provider",
    )
    breaker = GaugeMetricFamily(
        "mobility_provider_breaker_state",
        "Each provider's circuit breaker, 1 for the state it is in",
        labels=["provider", "state"],
    )
    for p in providers:
        health.add(p.id, p.status, p.data_age_seconds, p.consecutive_failures)
        if p.breaker is not None:
            for b in BreakerState:
                breaker.add_metric([p.id, b.value.lower()], 1.0 if b is p.breaker else 0.0)
    yield from (*health.families(), breaker)


def _transit_realtime_metrics(feeds: list[RealtimeFeedState]) -> Iterator[Metric]:
    health = _HealthGauges(
        "mobility_transit_realtime",
        "feed",
        status="Each transit feed's live data health (app/health.py's rules), 1 for its status",
        data_age="Seconds since each transit feed's last good GTFS-Realtime poll (absent: never)",
        failures="Failed GTFS-Realtime polls in a row, per transit feed",
    )
    unknown = GaugeMetricFamily(
        "mobility_transit_realtime_unknown_trips",
        "Trip ids in the last good poll's trip updates that the active timetable does not have",
        labels=["feed"],
    )
    for f in feeds:
        health.add(f.feed, f.status, f.data_age_seconds, f.consecutive_failures)
        unknown.add_metric([f.feed], f.unknown_trips)
    yield from (*health.families(), unknown)


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
