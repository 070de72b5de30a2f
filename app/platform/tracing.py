"""OpenTelemetry traces: the process's tracer provider and the instrumentations, installed once
per process and only when an OTLP endpoint is configured (app/platform/settings/tracing.py).

Off means not installed at all: no tracer provider, no wrapped asyncpg method, no wrapped httpx
transport, no traced Redis client, and FastAPI's own request telemetry switched off for the app.
The hot path then runs exactly the code it runs without this module (docs/performance.md), which
is why the instrumentations (which import what they patch) and the OTLP exporter are imported
only when tracing is switched on.

What is traced when on (docs/operations-otel-traces.md):

- every HTTP request and websocket, by FastAPI's native telemetry (``FastAPI(telemetry=...)``,
  :meth:`Tracing.fastapi_telemetry`). It wraps the application outside its whole middleware
  stack, so requests answered by the GraphQL fast path (graphql_schema/fast_http.py, a pure-ASGI
  middleware that never reaches FastAPI's routing) get their server span too. It reads a
  caller's ``traceparent``;
- every statement on every asyncpg connection (asyncpg's instrumentation, which patches the
  ``asyncpg`` classes for the process): the SQLAlchemy engine's connections, the search pool and
  the push-ingest pool alike. The SQLAlchemy instrumentation is not used: every ORM statement
  runs through asyncpg and would be traced twice;
- the runtime's Redis client and its outbound httpx clients, per client
  (:meth:`Tracing.instrument_clients`): the sync's feed fetches and the booking calls to
  operators, which carry a W3C ``traceparent`` so the operator's side can join the trace;
- taskiq tasks, queued by one process and run by a worker (:class:`TaskTracing`), in the
  trace of what queued them.

What is kept out of spans: statement parameters (asyncpg's ``capture_parameters`` stays off, and
our SQL binds every value, so ``db.statement`` holds ``$1`` placeholders, never a value), Redis
command arguments (the instrumentation records ``SET ? ?``), request and response bodies (no
instrumentation records them), headers (none captured unless the OTEL_INSTRUMENTATION_HTTP_
CAPTURE_HEADERS_* variables ask, and then every header but a few harmless ones is redacted
here), and the values of URL query parameters (a feed URL may carry its key there): see
:class:`RedactingSpanExporter`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.resources import SERVICE_VERSION as VERSION_KEY
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from redis.asyncio import Redis, RedisCluster
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from app.platform.settings.tracing import TracingSettings

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig

__all__ = [
    "SERVICE_VERSION",
    "ProcessRole",
    "RedactingSpanExporter",
    "TaskTracing",
    "Tracing",
    "active_tracing",
    "configure_tracing",
    "redact_query",
    "redact_url",
    "redacted_attributes",
]

log = logging.getLogger(__name__)

ProcessRole = Literal["api", "worker", "scheduler"]
SERVICE_VERSION = "0.1.0"
# The resource attribute naming which of our processes a span comes from (the OpenTelemetry
# conventions have none for a process's role in a deployment).
ROLE_ATTRIBUTE = "mobility.process.role"
REDACTED = "REDACTED"
# Captured headers (only when an operator asks for them by the OTEL_INSTRUMENTATION_HTTP_
# CAPTURE_HEADERS_* variables) keep their value only if named here: an operator's API key may
# ride in a header of any name (adapters/credentials.py: ApiKeyHeader), so there is no list of
# the dangerous ones to strike out.
HARMLESS_HEADERS = frozenset(
    {"accept", "content_type", "content_length", "user_agent", "retry_after", "etag"}
)
_HEADER_ATTRIBUTE_PREFIXES = ("http.request.header.", "http.response.header.")
_URL_ATTRIBUTES = ("url.full", "http.url", "http.target")
_QUERY_ATTRIBUTES = ("url.query",)

_lock = threading.Lock()
_active: Tracing | None = None


def redact_query(query: str) -> str:
    """``key=secret&page=2`` -> ``key=REDACTED&page=REDACTED``: names kept, values never."""
    if not query:
        return query
    return urlencode([(name, REDACTED) for name, _ in parse_qsl(query, keep_blank_values=True)])


def redact_url(url: str) -> str:
    """The URL without its query values, user name or password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, parts.path, redact_query(parts.query), ""))


def redacted_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of ``attributes`` that must change before a span leaves the process, and
    what they become (empty: none)."""
    changes: dict[str, Any] = {}
    for key, value in attributes.items():
        if key.startswith(_HEADER_ATTRIBUTE_PREFIXES):
            if key.rpartition(".")[2] not in HARMLESS_HEADERS:
                changes[key] = (REDACTED,)
        elif not isinstance(value, str):
            continue
        elif key in _URL_ATTRIBUTES and ("?" in value or "@" in value):
            changes[key] = redact_url(value) if "://" in value else _redact_target(value)
        elif key in _QUERY_ATTRIBUTES:
            changes[key] = redact_query(value)
    return changes


class RedactingSpanExporter(SpanExporter):
    """Every exporter is behind this one: a span leaves the process only with its URL query
    values, URL credentials and captured headers redacted. At export, not at a span's start:
    the instrumentations set some attributes (a response's captured headers) later. It runs in
    the export thread (or, in tests, as each span ends), never on a request's path."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([_redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _redacted(span: ReadableSpan) -> ReadableSpan:
    attributes = span.attributes or {}
    changes = redacted_attributes(attributes)
    if not changes:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes={**attributes, **changes},
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _redact_target(target: str) -> str:
    path, _, query = target.partition("?")
    return f"{path}?{redact_query(query)}" if query else path


@dataclass
class Tracing:
    """The process's tracing, once switched on: its provider, and how to undo what it patched."""

    provider: TracerProvider
    role: ProcessRole
    _uninstrument: list[Callable[[], None]] = field(default_factory=list)

    def fastapi_telemetry(self) -> TelemetryConfig:
        """``FastAPI(telemetry=...)``: request spans on this provider. Not FastAPI's automatic
        exporter set-up, which would add a second exporter for the same endpoint; no metrics or
        logs (this module configures traces only)."""
        return {
            "tracer_provider": self.provider,
            "auto_configure": False,
            "metrics": False,
            "logs": False,
        }

    def instrument_clients(
        self, *, redis: Iterable[Redis | RedisCluster] = (), http: Iterable[httpx.AsyncClient] = ()
    ) -> Callable[[], None]:
        """Trace these clients (the runtime's); the returned function undoes it."""
        # Loaded only when tracing is on (the module docstring says why).
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        redis_clients, http_clients = list(redis), list(http)
        for client in redis_clients:
            RedisInstrumentor.instrument_client(client, tracer_provider=self.provider)
        for http_client in http_clients:
            HTTPXClientInstrumentor.instrument_client(http_client, tracer_provider=self.provider)

        def undo() -> None:
            for client in redis_clients:
                RedisInstrumentor.uninstrument_client(client)
            for http_client in http_clients:
                HTTPXClientInstrumentor.uninstrument_client(http_client)

        return undo

    def shutdown(self) -> None:
        """Undo the process-wide instrumentation, export what is pending, and let a later
        :func:`configure_tracing` start anew (tests; a process ends with this too)."""
        global _active
        with _lock:
            for undo in reversed(self._uninstrument):
                undo()
            self._uninstrument.clear()
            self.provider.shutdown()
            if _active is self:
                _active = None


# The task span a worker is running, with the token that made it current: set by
# TaskTracing.pre_execute and read by post_execute, which taskiq runs in the same asyncio task
# (its receiver's callback), so each task running concurrently sees its own.
_task_span: contextvars.ContextVar[tuple[Any, object] | None] = contextvars.ContextVar(
    "mobility_task_span", default=None
)
# The W3C headers carried in a task's labels, from the process that queued it to the worker.
_TRACE_LABELS = ("traceparent", "tracestate")


class TaskTracing(TaskiqMiddleware):
    """A span per taskiq task in the worker, in the trace of whatever queued it: the kicking
    side puts the W3C ``traceparent`` of its current span in the message's labels, the worker
    continues that trace (a CONSUMER span named after the task). Neither the task's arguments
    (a sync's claim token is one) nor an error's message are recorded: the span says which task,
    how long, and the error's type."""

    def __init__(self, tracing: Tracing) -> None:
        super().__init__()
        self._tracer = tracing.provider.get_tracer("mobility.tasks", SERVICE_VERSION)

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        for label in _TRACE_LABELS:
            if label in carrier:
                message.labels[label] = carrier[label]
        return message

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        carrier = {k: str(message.labels[k]) for k in _TRACE_LABELS if k in message.labels}
        parent = propagate.extract(carrier)
        span = self._tracer.start_span(
            f"task {message.task_name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "taskiq",
                "messaging.operation.type": "process",
                "messaging.message.id": message.task_id,
                "mobility.task.name": message.task_name,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        _task_span.set((span, token))
        return message

    def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        current = _task_span.get()
        if current is not None:
            span = current[0]
            span.set_attribute("error.type", type(exception).__qualname__)
            span.set_status(Status(StatusCode.ERROR))

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        current = _task_span.get()
        if current is None:
            return
        _task_span.set(None)
        span, token = current
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]


def active_tracing() -> Tracing | None:
    """This process's tracing, or None: off."""
    return _active


def configure_tracing(
    settings: TracingSettings,
    *,
    role: ProcessRole,
    exporter: SpanExporter | None = None,
    install_global: bool = True,
) -> Tracing | None:
    """Switch tracing on for this process if an OTLP endpoint is configured, or if ``exporter``
    is given (tests pass an in-memory one, exported to synchronously); None: tracing is off and
    nothing was installed. A second call returns the first one's tracing.

    ``install_global`` also makes the provider OpenTelemetry's global one (which the API allows
    once per process), so a library tracing through ``opentelemetry.trace.get_tracer`` joins
    in. Everything here is given the provider explicitly, so a test can trace without it and
    leave no global state behind for the tests after it."""
    global _active
    with _lock:
        if _active is not None:
            return _active
        url = settings.otlp_traces_url()
        if exporter is None and url is None:
            return None
        # Loaded only when tracing is on (the module docstring says why).
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        resource = Resource.create(
            {
                SERVICE_NAME: settings.otel_service_name,
                VERSION_KEY: SERVICE_VERSION,
                ROLE_ATTRIBUTE: role,
            }
        )
        provider = TracerProvider(
            resource=resource,
            sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
            # A process exporting to a collector flushes its last batch as it exits; a test's
            # provider is shut down by the test (Tracing.shutdown), once.
            shutdown_on_exit=exporter is None,
        )
        if exporter is not None:
            # A test reads its spans right after the request: exported as each span ends.
            provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(exporter)))
        else:
            # Loaded only when tracing is on (the module docstring says why).
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # Batched, in a thread of its own: a request never waits for the collector. The
            # exporter reads OTEL_EXPORTER_OTLP_HEADERS / _TIMEOUT / _COMPRESSION itself.
            otlp = OTLPSpanExporter(endpoint=url)
            provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(otlp)))
        tracing = Tracing(provider=provider, role=role)
        instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]  # untyped package
        # capture_parameters stays False: statement parameters are the riders' data.
        instrumentor.instrument(tracer_provider=provider)
        tracing._uninstrument.append(instrumentor.uninstrument)
        if install_global:
            trace.set_tracer_provider(provider)
        _active = tracing
        log.info(
            "tracing on: %s spans of %s (%s) to %s, sample ratio %s",
            role,
            settings.otel_service_name,
            SERVICE_VERSION,
            "a test exporter" if exporter is not None else url,
            settings.trace_sample_ratio,
        )
        return tracing
