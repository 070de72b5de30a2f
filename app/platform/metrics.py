"""Prometheus metrics: what every process counts, in one place (docs/operations.md lists them).

Every process of a host counts into one set of files when ``PROMETHEUS_MULTIPROC_DIR`` is set
(prometheus-client's multiprocess mode): ``mobility serve --workers N`` and ``mobility worker
--processes N`` set it up (:func:`use_multiprocess_dir`), so a scrape of any one process
reports all of them. Without it (tests, one process) the metrics live in the process.

The rules the definitions below keep:

- **Every metric has labels.** A labelled metric creates its value when a label set is first
  used, by which time :func:`use_multiprocess_dir` has chosen where values live; an unlabelled
  one would create it at import and count in the process only. ``tests/app/test_metrics.py``
  checks this.
- **Label sets are bounded**: no ids of vehicles, bookings, riders or organisations, no hosts.
  Labels are our own codes and names (error codes, booking actions, task names, the schema's
  root fields), provider ids (staff register a few dozen), and GraphQL operation names, which
  come from clients and are therefore labelled only when they are among the names the
  operator listed (:func:`operation_label`).
- Values that are a state of the whole system (data age, breaker state, queue depth, webhook
  backlog) are not counted here but read when scraped (``app/rest/metrics.py``), from the
  database and Redis, so every process reports the same truth.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Final, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    values,
)
from prometheus_client import multiprocess as prometheus_multiprocess

__all__ = [
    "BOOKINGS",
    "DB_POOL_IN_USE",
    "DB_POOL_WAITING",
    "GRAPHQL_ERRORS",
    "GRAPHQL_OPERATIONS",
    "HTTP_REQUESTS",
    "OPERATOR_CALLS",
    "PROVIDER_RECORDS_SKIPPED",
    "PROVIDER_SYNCS",
    "REDIS_ERRORS",
    "SEARCHES",
    "SUBSCRIPTIONS",
    "TASKS",
    "TASK_WAIT",
    "WEBHOOK_DELIVERIES",
    "WEBSOCKET_CONNECTIONS",
    "MetricsPortRefused",
    "OperationType",
    "allow_operation_names",
    "bearer_matches",
    "error_code_label",
    "is_loopback_host",
    "multiprocess_dir",
    "operation_label",
    "process_registry",
    "redis_error",
    "release_process",
    "remove_multiprocess_dir",
    "serve_metrics",
    "timed",
    "use_multiprocess_dir",
]

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# Latency buckets, in seconds. A search answers in milliseconds; a booking waits on an
# operator for up to its deadline; a sync of a large feed takes a minute.
_FAST = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_OPERATOR = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SLOW = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# ------------------------------------------------------------------ the API

HTTP_REQUESTS = Histogram(
    "mobility_http_request_duration_seconds",
    "HTTP requests by route (the route's template, never the path a client sent), method "
    "and status class",
    ["route", "method", "status"],
    buckets=_FAST,
)
GRAPHQL_OPERATIONS = Histogram(
    "mobility_graphql_operation_duration_seconds",
    "GraphQL operations over HTTP by operation name (allowed names only), root field, type "
    "and whether errors were returned",
    ["operation", "field", "type", "outcome"],
    buckets=_FAST,
)
GRAPHQL_ERRORS = Counter(
    "mobility_graphql_errors",
    "GraphQL errors returned, by their stable code (extensions.code)",
    ["code"],
)
SEARCHES = Counter(
    "mobility_searches",
    "Vehicle searches by where they were answered from: the Redis index or PostGIS",
    ["source"],
)
WEBSOCKET_CONNECTIONS = Gauge(
    "mobility_websocket_connections",
    "Open GraphQL WebSocket connections",
    ["protocol"],
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS = Gauge(
    "mobility_subscriptions",
    "Operations running on GraphQL WebSockets (subscriptions, mostly) by operation name",
    ["operation"],
    multiprocess_mode="livesum",
)

# ------------------------------------------------------------------ providers and tasks

PROVIDER_SYNCS = Histogram(
    "mobility_provider_sync_duration_seconds",
    "Provider syncs by provider and outcome (ok, failed, skipped: another process held it)",
    ["provider", "outcome"],
    buckets=_SLOW,
)
PROVIDER_RECORDS_SKIPPED = Counter(
    "mobility_provider_records_skipped",
    "Records of a provider's feed left out for errors (each an error finding of a sync)",
    ["provider"],
)
TASKS = Histogram(
    "mobility_task_duration_seconds",
    "Background tasks run by the workers, by task and outcome",
    ["task", "outcome"],
    buckets=_SLOW,
)
TASK_WAIT = Histogram(
    "mobility_task_wait_seconds",
    "Time a task spent queued, from being sent to a worker starting it",
    ["task"],
    buckets=_SLOW,
)

# ------------------------------------------------------------------ booking and B2B

OPERATOR_CALLS = Histogram(
    "mobility_operator_call_duration_seconds",
    "Calls to operators' booking APIs by provider, action and outcome (ok, rejected, "
    "not_found, unavailable, error)",
    ["provider", "action", "outcome"],
    buckets=_OPERATOR,
)
BOOKINGS = Counter(
    "mobility_bookings",
    "Booking requests (reserve and the trip actions) by action and outcome (ok, or the "
    "problem answered: vehicle_unavailable, operator_unavailable, ...)",
    ["action", "outcome"],
)
WEBHOOK_DELIVERIES = Counter(
    "mobility_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, retrying, failed: given up)",
    ["outcome"],
)

# ------------------------------------------------------------------ the stores

DB_POOL_IN_USE = Gauge(
    "mobility_db_pool_connections_in_use",
    "Database connections checked out of a pool, sampled every few seconds",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "mobility_db_pool_waiting",
    "Requests waiting for a database connection of a pool, sampled every few seconds",
    ["pool"],
    multiprocess_mode="livesum",
)
REDIS_ERRORS = Counter(
    "mobility_redis_errors",
    "Redis commands that failed (the caller fell back or failed open), by component",
    ["component"],
)

# ------------------------------------------------------------------ bounded labels

_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# The operation names counted under their own label (MOBILITY_METRICS_OPERATION_NAMES): the
# names an operator's own apps send. Any other name is a client's choice, so it is counted as
# "other": a label value an outsider picks would let them grow every scrape without bound.
_allowed_operations: frozenset[str] = frozenset()

OperationType = Literal["query", "mutation", "subscription", "unknown"]


def allow_operation_names(names: Iterable[str]) -> None:
    global _allowed_operations  # one setting for the process, set at start
    _allowed_operations = frozenset(names)


def operation_label(name: object) -> str:
    """The label for a client's operation name: ``anonymous`` without one, the name itself
    if it is one of the allowed names, ``other`` for anything else (a name, or not even a
    string: the label never fails on what a client sent)."""
    if name is None or name == "":
        return "anonymous"
    if isinstance(name, str) and name in _allowed_operations:
        return name
    return "other"


def error_code_label(code: object) -> str:
    """Our codes are upper-case words; anything else (an error without a code, or a code
    that is not ours) counts as ``UNKNOWN``."""
    return code if isinstance(code, str) and _CODE.fullmatch(code) else "UNKNOWN"


def redis_error(component: str) -> None:
    REDIS_ERRORS.labels(component).inc()


@contextmanager
def timed(observe: Callable[[float], None]) -> Iterator[None]:
    """Observe the seconds the block took (also when it raised)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observe(time.perf_counter() - started)


# ------------------------------------------------------------------ processes


def multiprocess_dir() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def use_multiprocess_dir(directory: Path | None = None) -> Path:
    """Count into ``directory`` (a new temporary one by default), emptied first, from now on
    and in every child process started after this (they inherit the environment). Called by
    the commands that start several processes, before they start them."""
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="mobility-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    # A previous run's files would be added to this run's counts.
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[ENV] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


def remove_multiprocess_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def release_process(pid: int | None = None) -> None:
    """A process (this one by default) is ending or has died: its live gauges (connections,
    subscriptions, pools) stop counting. Its counters stay in the files: a scrape after it
    exited still adds them."""
    if multiprocess_dir() is not None:
        prometheus_multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
            os.getpid() if pid is None else pid
        )


class MetricsPortRefused(ValueError):
    """A metrics port that would serve other hosts without a token."""


def serve_metrics(address: tuple[str, int], token: str | None) -> None:
    """Serve /metrics of this process (and, under multiprocess mode, of its siblings) on its
    own port, from a thread: for the commands that serve no HTTP of their own (``mobility
    worker``, ``mobility scheduler``). With ``token``, a scrape must send it as a bearer
    token; without one, only a loopback address may be listened on (the port would otherwise
    hand provider ids, private fleets' included, to anyone who can reach it)."""
    host, port = address
    if token is None and not is_loopback_host(host):
        raise MetricsPortRefused(
            f"--metrics-host {host} would serve metrics beyond this host: set "
            "MOBILITY_METRICS_TOKEN (scrapes then send it as a bearer token), or listen on "
            "127.0.0.1"
        )
    app = make_wsgi_app(process_registry())

    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if token is not None and not bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")],
            )
            return [_TOKEN_REQUIRED]
        body: Iterable[bytes] = app(environ, start_response)
        return body

    server = make_server(
        host, port, guarded, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    # `mobility worker` forks its worker processes after this: none of them may hold the
    # listening socket (an orphaned child would keep the port, and scrapes would hang).
    os.register_at_fork(after_in_child=server.socket.close)
    threading.Thread(target=server.serve_forever, name="metrics-port", daemon=True).start()


_TOKEN_REQUIRED = (
    b'{"error":{"code":"METRICS_TOKEN_REQUIRED","message":"send the metrics token as a '
    b'bearer token"}}'
)


def bearer_matches(authorization: object, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as a bearer token (compared in
    constant time)."""
    scheme, _, given = str(authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the base's name
        return  # a line per scrape would only be noise


def process_registry() -> CollectorRegistry:
    """What a scrape reports of the counted metrics: every process's under multiprocess
    mode, this process's otherwise."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
