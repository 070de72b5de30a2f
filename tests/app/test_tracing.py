"""OpenTelemetry traces (app/platform/tracing.py): one trace from a rider's ``reserveVehicle``
through the database to the TOMP operator, nothing secret in any span, and nothing installed
at all when tracing is off.

The traced runs use their own runtime, opened after tracing was switched on (as a process
does), with an in-memory exporter and without the global tracer provider; each test undoes the
process-wide instrumentation it installed, and checks that it did, so the tests after it run
on plain clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import wrapt
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from taskiq.receiver import Receiver

from app.main import create_app
from app.platform.db import transaction
from app.platform.settings import Settings
from app.platform.tracing import Tracing, active_tracing, configure_tracing
from app.runtime import Runtime, open_runtime
from app.task_queue import build_broker
from providers.admin import set_credentials
from providers.simulators.feed_server import FeedServer
from tests.booking_support import NEARBY, RESERVE, bookable_operator, gql, key, sign_up
from tests.conftest import make_settings

OPERATOR_TOKEN = "operator-secret-token-7f3a9c"
PROBE_ARGUMENT = "claim-token-3e8d1f"
PASSWORD = "correct horse battery"  # tests/booking_support.sign_up's


def wrapped(method: object) -> bool:
    """The instrumentations patch with wrapt, whose wrappers keep the original here."""
    return isinstance(method, wrapt.BaseObjectProxy) or hasattr(method, "__wrapped__")


def installed(runtime: Runtime) -> list[str]:
    """What of OpenTelemetry is installed in this process and on these clients, looked at on
    the objects themselves (wrapt proxies where the methods were), not on our module's word."""
    found = []
    if wrapped(asyncpg.Connection.execute):
        found.append("asyncpg")
    for name, client in (("http", runtime.http), ("booking http", runtime.bookings.operators.http)):
        if wrapped(client._transport.handle_async_request):
            found.append(name)
    if wrapped(runtime.redis.execute_command):
        found.append("redis")
    if type(trace.get_tracer_provider()).__name__ != "ProxyTracerProvider":
        found.append("global tracer provider")
    return found


@dataclass
class Traced:
    exporter: InMemorySpanExporter
    tracing: Tracing
    runtime: Runtime
    api: httpx.AsyncClient


@pytest.fixture
async def traced(runtime: Runtime) -> AsyncIterator[Traced]:
    """Tracing on (in memory), a runtime opened under it, and the real app over ASGI."""
    assert active_tracing() is None
    exporter = InMemorySpanExporter()
    tracing = configure_tracing(
        runtime.settings, role="api", exporter=exporter, install_global=False
    )
    assert tracing is not None
    try:
        async with open_runtime(runtime.settings) as traced_runtime:
            app = create_app(traced_runtime.settings)
            app.state.runtime = traced_runtime
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
                yield Traced(exporter, tracing, traced_runtime, api)
        # The runtime's clients were untraced on closing it; asyncpg is the process's.
        assert installed(traced_runtime) == ["asyncpg"]
    finally:
        tracing.shutdown()
    assert active_tracing() is None
    assert installed(runtime) == []


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def traceparent(header: str) -> tuple[int, int, int]:
    """(trace id, parent span id, flags) of a W3C ``traceparent`` header of version 00."""
    version, trace_id, parent_id, flags = header.split("-")
    assert version == "00"
    return int(trace_id, 16), int(parent_id, 16), int(flags, 16)


def outbound_url(span: ReadableSpan) -> str:
    """An HTTP client span's URL, under the conventions' old name (httpx's instrumentation's
    default) or the new one (OTEL_SEMCONV_STABILITY_OPT_IN=http)."""
    attributes = span.attributes or {}
    return str(attributes.get("url.full") or attributes.get("http.url") or "")


def attribute_text(spans: Sequence[ReadableSpan]) -> str:
    """Every attribute and event of every span, as text (what an exporter would send)."""
    parts: list[str] = []
    for span in spans:
        parts += [f"{k}={v!s}" for k, v in (span.attributes or {}).items()]
        parts += [span.name]
        for event in span.events:
            parts += [f"{k}={v!s}" for k, v in (event.attributes or {}).items()]
    return "\n".join(parts)


async def test_a_reservation_is_one_trace_from_the_request_through_the_database_to_the_operator(
    traced: Traced,
) -> None:
    runtime, api, exporter = traced.runtime, traced.api, traced.exporter
    assert sorted(installed(runtime)) == ["asyncpg", "booking http", "http", "redis"]
    async with bookable_operator(runtime, "simscoot") as (sim, base_url):
        async with transaction(runtime.sessions) as session:
            await set_credentials(session, "simscoot", "bearer_token", {"token": OPERATOR_TOKEN})
        token, _ = await sign_up(api)
        vehicle_id = f"simscoot:{sim.vehicles[0].vehicle_id}"
        exporter.clear()
        sim.journal.clear()
        idempotency_key = key()
        body = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": idempotency_key}, token)
        assert body["data"]["reserveVehicle"]["__typename"] == "BookingSuccess", body
        operator_calls = list(sim.journal)

    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(servers) == 1, [(s.name, s.attributes) for s in servers]
    server = servers[0]
    assert server.parent is None
    assert server.attributes is not None
    assert server.attributes["url.path"] == "/graphql"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.response.status_code"] == 200
    trace_id = server.context.trace_id
    # One trace: every span the request caused is in it, under the server span.
    assert {s.context.trace_id for s in spans} == {trace_id}
    assert all(server in ancestors(s, by_id) for s in spans if s is not server)

    database = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    assert database, [s.name for s in spans]
    statements = [str((s.attributes or {}).get("db.statement")) for s in database]
    # The booking's insert ran, bound: the statement has placeholders, the values stay out.
    assert any("INSERT INTO bookings" in st for st in statements), statements
    assert any("$1" in st for st in statements), statements

    # Redis commands are in it too, their arguments left out.
    redis_statements = [
        str((s.attributes or {}).get("db.statement"))
        for s in spans
        if (s.attributes or {}).get("db.system") == "redis"
    ]
    assert redis_statements
    assert all(set(st.split()[1:]) <= {"?"} for st in redis_statements), redis_statements

    operator_spans = [
        s for s in spans if s.kind is SpanKind.CLIENT and outbound_url(s).startswith(base_url)
    ]
    assert operator_spans, [(s.name, s.attributes) for s in spans]
    # What the operator received: a traceparent naming this trace and, as its parent, the
    # client span of that very call (W3C Trace Context: version 00, the sampled flag set).
    assert operator_calls
    received = [
        traceparent(entry.request_headers.get("traceparent", "")) for entry in operator_calls
    ]
    assert {(trace, parent) for trace, parent, _ in received} == {
        (trace_id, s.context.span_id) for s in operator_spans
    }
    assert all(flags & 0x01 for _, _, flags in received)
    # The operator's credentials were on the wire, and are in no span.
    assert {entry.request_headers.get("authorization") for entry in operator_calls} == {
        f"Bearer {OPERATOR_TOKEN}"
    }
    text = attribute_text(spans)
    for secret in (OPERATOR_TOKEN, token, idempotency_key, PASSWORD):
        assert secret not in text


async def test_the_fast_path_answers_with_a_server_span_too(traced: Traced) -> None:
    # A map search: answered by graphql_schema/fast_http.py before FastAPI's routing.
    traced.exporter.clear()
    body = await gql(traced.api, NEARBY, {"lat": 52.52, "lon": 13.405})
    assert body == {"data": {"vehicles": []}}
    spans = traced.exporter.get_finished_spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(servers) == 1
    assert (servers[0].attributes or {})["url.path"] == "/graphql"
    # No route matched: FastAPI's router never saw the request.
    assert "http.route" not in (servers[0].attributes or {})
    assert {s.context.trace_id for s in spans} == {servers[0].context.trace_id}


async def test_an_outbound_url_keeps_no_query_value_or_password(
    traced: Traced, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    server.add_static("/feed/gbfs.json", b"{}")
    traced.exporter.clear()
    host = base_url.removeprefix("http://")
    response = await traced.runtime.http.get(
        f"http://user:pw-9d2e@{host}/feed/gbfs.json?key=feed-key-51b7&lang=en"
    )
    assert response.status_code == 200
    assert server.request_counts["/feed/gbfs.json"] == 1
    (span,) = traced.exporter.get_finished_spans()
    assert outbound_url(span) == (
        f"http://REDACTED@{host}/feed/gbfs.json?key=REDACTED&lang=REDACTED"
    )
    assert "feed-key-51b7" not in attribute_text([span])
    assert "pw-9d2e" not in attribute_text([span])


async def test_captured_headers_keep_no_credential(
    traced: Traced, feed_server: tuple[FeedServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator may ask the httpx instrumentation to record every header: credentials,
    whatever the header's name, still leave the process redacted."""
    server, base_url = feed_server
    server.add_static("/feed/gbfs.json", b"{}")
    server.require_headers("/feed", {"X-Feed-Key": "feed-key-c41d"})
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", ".*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE", ".*")
    async with httpx.AsyncClient(headers={"User-Agent": "probe/1"}) as client:
        untrace = traced.tracing.instrument_clients(http=[client])
        try:
            traced.exporter.clear()
            response = await client.get(
                f"{base_url}/feed/gbfs.json",
                headers={"X-Feed-Key": "feed-key-c41d", "Authorization": "Bearer bt-0e7a"},
            )
        finally:
            untrace()
    assert response.status_code == 200
    # The operator's side saw the credentials.
    assert server.last_headers["/feed/gbfs.json"]["x-feed-key"] == "feed-key-c41d"
    (span,) = traced.exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert attributes["http.request.header.x_feed_key"] == ("REDACTED",)
    assert attributes["http.request.header.authorization"] == ("REDACTED",)
    assert attributes["http.request.header.user_agent"] == ("probe/1",)
    # Set after the span started, when the answer came: redacted too, but for harmless ones.
    assert attributes["http.response.header.content_type"] == ("application/json",)
    assert any(
        key.startswith("http.response.header.") and value == ("REDACTED",)
        for key, value in attributes.items()
    )
    text = attribute_text([span])
    assert "feed-key-c41d" not in text
    assert "bt-0e7a" not in text


async def test_with_no_endpoint_nothing_is_installed(runtime: Runtime) -> None:
    settings: Settings = make_settings()
    assert settings.otlp_traces_url() is None
    assert configure_tracing(settings, role="api") is None
    async with open_runtime(settings) as plain:
        app = create_app(settings)
        app.state.runtime = plain
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as api:
            response = await api.get("/health")
            assert response.status_code == 200
        assert installed(plain) == []
    assert active_tracing() is None


def test_the_endpoint_is_read_under_the_specification_s_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert Settings().otlp_traces_url() == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999/in")
    assert Settings().otlp_traces_url() == "http://traces:9999/in"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert Settings().otlp_traces_url() is None


def _resource(tracing: Tracing) -> dict[str, Any]:
    return dict(tracing.provider.resource.attributes)


def test_spans_name_the_service_and_the_process_role() -> None:
    exporter = InMemorySpanExporter()
    tracing = configure_tracing(
        make_settings(), role="worker", exporter=exporter, install_global=False
    )
    assert tracing is not None
    try:
        resource = _resource(tracing)
        assert resource["service.name"] == "mobility-aggregator"
        assert resource["mobility.process.role"] == "worker"
    finally:
        tracing.shutdown()


async def test_a_queued_task_runs_in_the_trace_of_what_queued_it(runtime: Runtime) -> None:
    """The app's own broker (Redis stream), a task kicked under a span, run by taskiq's
    receiver as a worker runs it."""
    exporter = InMemorySpanExporter()
    tracing = configure_tracing(
        runtime.settings, role="worker", exporter=exporter, install_global=False
    )
    assert tracing is not None
    seen: list[tuple[int, int]] = []

    async def probe(claim_token: str) -> str:
        current = trace.get_current_span().get_span_context()
        seen.append((current.trace_id, current.span_id))
        return claim_token

    try:
        broker = build_broker(runtime.settings)
        task = broker.register_task(probe, task_name="mobility.test_trace_probe")
        await broker.startup()
        try:
            tracer = tracing.provider.get_tracer("tests")
            with tracer.start_as_current_span("kicking request") as kicking:
                await task.kiq(PROBE_ARGUMENT)
            receiver = Receiver(broker, run_startup=False)
            async with asyncio.timeout(20):
                async for message in broker.listen():
                    await receiver.callback(message, raise_err=True)
                    break
        finally:
            await broker.shutdown()
    finally:
        tracing.shutdown()
    (task_span,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert task_span.name == "task mobility.test_trace_probe"
    assert task_span.parent is not None
    assert task_span.parent.span_id == kicking.get_span_context().span_id
    assert task_span.context.trace_id == kicking.get_span_context().trace_id
    # The task's own code ran with the task's span current.
    assert seen == [(task_span.context.trace_id, task_span.context.span_id)]
    # Its arguments are not (a sync's claim token is one).
    assert PROBE_ARGUMENT not in attribute_text([task_span])


async def test_the_sample_ratio_drops_new_traces_but_never_cuts_a_caller_s(
    runtime: Runtime,
) -> None:
    settings = runtime.settings.model_copy(update={"trace_sample_ratio": 0.0})
    exporter = InMemorySpanExporter()
    tracing = configure_tracing(settings, role="api", exporter=exporter, install_global=False)
    assert tracing is not None
    try:
        app = create_app(settings)
        app.state.runtime = runtime
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as api:
            assert (await api.get("/health")).status_code == 200
            assert exporter.get_finished_spans() == ()
            caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            response = await api.get("/health", headers={"traceparent": caller})
            assert response.status_code == 200
    finally:
        tracing.shutdown()
    spans = exporter.get_finished_spans()
    assert spans
    assert {f"{s.context.trace_id:032x}" for s in spans} == {"0af7651916cd43dd8448eb211c80319c"}
