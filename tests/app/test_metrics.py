"""Prometheus metrics (app/platform/metrics.py, app/rest/metrics.py): each counted event equals
the events the test caused, labels stay bounded whatever a client sends, the state read at
scrape time matches the database, and ``/metrics`` is served only to whom it should be.

Counted metrics live in the test process (no multiprocess directory here), so each test reads
the change of a sample across what it did. tests/system/test_prometheus.py scrapes a real
multi-process server with a real Prometheus.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncConnection
from taskiq import InMemoryBroker

from app.booking.service import counted
from app.main import create_app
from app.platform import metrics, secret_box
from app.platform.db import create_engine, plain_url
from app.platform.pool_metrics import pool_use
from app.runtime import Runtime
from app.system_state import QueueState, read_queue
from app.task_queue import TaskMetrics
from graphql_schema.observe import MAX_SCANNED_CHARS, describe
from providers.simulators.feed_server import FeedServer
from tests.booking_support import CANCEL, RESERVE, bookable_operator, gql, key, sign_up
from tests.conftest import make_settings
from tests.helpers import age_last_success, synced_conformance_provider

NEAR = """
query Near($lat: Float!, $lon: Float!) {
  vehicles(near: {lat: $lat, lon: $lon, radiusMeters: 3000}, first: 5) { id }
}"""


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def scrape(api: httpx.AsyncClient, **headers: str) -> dict[str, Any]:
    response = await api.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def test_every_metric_is_labelled() -> None:
    """An unlabelled metric would create its value at import, before a command chose the
    multiprocess directory, and count in its own process only (app/platform/metrics.py)."""
    defined = [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]
    assert len(defined) >= 15
    assert [m._name for m in defined if not m._labelnames] == []


def test_operation_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the names the operator listed are labels; a client's other names, and values
    that are not names at all, are "other" (a WebSocket's operationName may be anything)."""
    monkeypatch.setattr(metrics, "_allowed_operations", frozenset())
    metrics.allow_operation_names(["NearbyVehicles"])
    assert metrics.operation_label(None) == "anonymous"
    assert metrics.operation_label("") == "anonymous"
    assert metrics.operation_label("NearbyVehicles") == "NearbyVehicles"
    for chosen in ("Flood1", "bad name\n", "x" * 65, ["a"], 5, {"a": 1}):
        assert metrics.operation_label(chosen) == "other"
    assert metrics.error_code_label("VEHICLE_NOT_FOUND") == "VEHICLE_NOT_FOUND"
    assert metrics.error_code_label("<script>") == "UNKNOWN"
    assert metrics.error_code_label(None) == "UNKNOWN"


def test_operation_type_and_root_field_come_from_the_document() -> None:
    cases = [
        ("{ vehicles { id } }", None, ("query", None, "vehicles")),
        (
            'query Q($s: String = "{") { v: vehicles(first: 1) { id } }',
            None,
            ("query", "Q", "vehicles"),
        ),
        (
            "query A { stations { id } } mutation B { reserveVehicle { id } }",
            "B",
            ("mutation", "B", "reserveVehicle"),
        ),
        (
            "fragment F on V { id } subscription S { vehicleUpdates { ...F } }",
            None,
            ("subscription", "S", "vehicleUpdates"),
        ),
        ('# mutation {\n{ a(s: "mutation {") }', None, ("query", None, "a")),
        ('"""mutation"""\nmutation { ...F }', None, ("mutation", None, None)),
    ]
    for document, name, expected in cases:
        assert describe(document, name) == expected, document
    # A document past the scanner's limit is not read: a client cannot make counting costly.
    assert describe(" " * (MAX_SCANNED_CHARS + 1) + "mutation { x }", None)[0] == "unknown"


async def test_searches_count_by_source_and_operation(
    runtime: Runtime,
    api: httpx.AsyncClient,
    feed_server: tuple[FeedServer, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await synced_conformance_provider(runtime, feed_server, "getaround-stavanger")
    name = f"Near{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(metrics, "_allowed_operations", frozenset({name}))
    where = {"lat": 58.97, "lon": 5.73}
    before_redis = sample("mobility_searches_total", source="redis")
    before_postgis = sample("mobility_searches_total", source="postgis")
    searches = 3
    for _ in range(searches):
        body = (
            await api.post(
                "/graphql",
                json={"query": NEAR.replace("Near", name), "variables": where},
            )
        ).json()
        assert "errors" not in body, body
    assert sample("mobility_searches_total", source="redis") - before_redis == searches
    assert sample("mobility_searches_total", source="postgis") == before_postgis
    count = sample(
        "mobility_graphql_operation_duration_seconds_count",
        operation=name,
        field="vehicles",
        type="query",
        outcome="ok",
    )
    assert count == searches

    # Redis gone from under the index: PostGIS answers, and the Redis error is counted.
    errors_before = sample("mobility_redis_errors_total", component="search")
    await runtime.redis.delete(runtime.keys.index_ready)
    body = (
        await api.post("/graphql", json={"query": NEAR.replace("Near", name), "variables": where})
    ).json()
    assert "errors" not in body, body
    assert sample("mobility_searches_total", source="postgis") - before_postgis == 1
    # The index was not ready (no Redis failure): nothing counted as a Redis error.
    assert sample("mobility_redis_errors_total", component="search") == errors_before


async def test_errors_count_by_code_and_operation_type(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"Bad{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(metrics, "_allowed_operations", frozenset({name}))
    before = sample("mobility_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED")
    mutation_before = sample(
        "mobility_graphql_operation_duration_seconds_count",
        operation=name,
        field="other",
        type="mutation",
        outcome="error",
    )
    body = (await api.post("/graphql", json={"query": f"mutation {name} {{ noSuchField }}"})).json()
    codes = [e["extensions"]["code"] for e in body["errors"]]
    assert codes == ["GRAPHQL_VALIDATION_FAILED"]
    assert sample("mobility_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED") == before + 1
    assert (
        sample(
            "mobility_graphql_operation_duration_seconds_count",
            operation=name,
            field="other",  # not a field of the schema's root
            type="mutation",
            outcome="error",
        )
        == mutation_before + 1
    )
    # Refusals made before execution count by their code too.
    refused_before = sample("mobility_graphql_errors_total", code="PERSISTED_QUERY_NOT_FOUND")
    body = (
        await api.post(
            "/graphql",
            json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
        )
    ).json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["PERSISTED_QUERY_NOT_FOUND"]
    assert (
        sample("mobility_graphql_errors_total", code="PERSISTED_QUERY_NOT_FOUND")
        == refused_before + 1
    )


async def test_http_requests_are_labelled_by_route_template(api: httpx.AsyncClient) -> None:
    def count(route: str, method: str, status: str) -> float:
        return sample(
            "mobility_http_request_duration_seconds_count",
            route=route,
            method=method,
            status=status,
        )

    tile_route = "/tiles/{layer}/{z}/{x}/{y}.mvt"
    before = {
        "tile": count(tile_route, "GET", "2xx"),
        "unmatched": count("unmatched", "GET", "4xx"),
        "other": count("unmatched", "other", "4xx"),
        "graphql": count("/graphql", "POST", "2xx"),
    }
    assert (await api.get("/tiles/vehicles/15/17000/9500.mvt")).status_code in (200, 204)
    assert (await api.get("/tiles/vehicles/15/17001/9500.mvt")).status_code in (200, 204)
    assert (await api.get(f"/no/such/{uuid.uuid4()}")).status_code == 404
    assert (await api.request("BREW", f"/{uuid.uuid4()}")).status_code in (404, 405)
    assert (await api.post("/graphql", json={"query": "{ __typename }"})).status_code == 200
    assert count(tile_route, "GET", "2xx") - before["tile"] == 2
    assert count("unmatched", "GET", "4xx") - before["unmatched"] == 1
    assert count("unmatched", "other", "4xx") - before["other"] == 1
    assert count("/graphql", "POST", "2xx") - before["graphql"] == 1
    # No label holds a path a client chose.
    scraped = await scrape(api)
    routes = {
        labels["route"] for labels, _ in scraped["mobility_http_request_duration_seconds_count"]
    }
    assert not any("no/such" in route for route in routes)


async def test_booking_calls_and_outcomes_are_counted(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "metscoot") as (sim, _):
        rider, _ = await sign_up(api)
        other, _ = await sign_up(api)
        vehicle_id = f"metscoot:{sim.vehicles[0].vehicle_id}"

        def calls(action: str, outcome: str = "ok") -> float:
            return sample(
                "mobility_operator_call_duration_seconds_count",
                provider="metscoot",
                action=action,
                outcome=outcome,
            )

        def bookings(action: str, outcome: str) -> float:
            return sample("mobility_bookings_total", action=action, outcome=outcome)

        before = {
            "reserve_call": calls("reserve"),
            "cancel_call": calls("cancel"),
            "reserved": bookings("reserve", "ok"),
            "taken": bookings("reserve", "vehicle_unavailable"),
            "cancelled": bookings("cancel", "ok"),
        }
        first = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, rider)
        booking = first["data"]["reserveVehicle"]["booking"]
        # The second rider asks for the same vehicle: refused here, the operator never asked.
        second = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, other)
        assert second["data"]["reserveVehicle"]["__typename"] == "VehicleUnavailable"
        cancelled = await gql(api, CANCEL, {"bookingId": booking["id"], "key": key()}, rider)
        assert cancelled["data"]["cancelBooking"]["__typename"] == "BookingSuccess"

        assert calls("reserve") - before["reserve_call"] == 1
        assert calls("cancel") - before["cancel_call"] == 1
        assert bookings("reserve", "ok") - before["reserved"] == 1
        assert bookings("reserve", "vehicle_unavailable") - before["taken"] == 1
        assert bookings("cancel", "ok") - before["cancelled"] == 1
        # The operator's own record of reserve calls agrees with ours.
        assert len(sim.requests_to("POST /bookings")) == 1


async def test_scrape_reports_the_state_of_providers_and_backlogs(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    fresh = await synced_conformance_provider(runtime, feed_server, "getaround-stavanger")
    stale = await synced_conformance_provider(runtime, feed_server, "tier-wolfsburg")
    age = runtime.settings.stale_after_seconds + 120
    await age_last_success(runtime, stale, age)
    scraped = await scrape(api)

    def of(name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(labels.items())): value for labels, value in scraped[name]}

    status = of("mobility_provider_status")
    assert status[(("provider", fresh), ("status", "ok"))] == 1
    assert status[(("provider", fresh), ("status", "stale"))] == 0
    assert status[(("provider", stale), ("status", "stale"))] == 1
    ages = of("mobility_provider_data_age_seconds")
    assert 0 <= ages[(("provider", fresh),)] < 60
    # Its age as the database has it, give or take the seconds the test took.
    assert age <= ages[(("provider", stale),)] < age + 60
    breaker = of("mobility_provider_breaker_state")
    assert breaker[(("provider", fresh), ("state", "closed"))] == 1
    up = of("mobility_state_up")
    assert up == {(("store", "database"),): 1.0, (("store", "redis"),): 1.0}
    pending = of("mobility_bookings_pending")
    assert pending[(("measure", "count"),)] == 0
    queue = of("mobility_task_queue_depth")
    assert queue[(("state", "waiting"),)] == 0


async def test_pool_use_counts_checked_out_and_waiting(runtime: Runtime) -> None:
    """The waiters are read from the libraries' queues (app/platform/pool_metrics.py): a full
    pool with one request waiting must say so, for asyncpg and for SQLAlchemy's pool."""
    pool = await asyncpg.create_pool(
        plain_url(runtime.settings.database_url), min_size=1, max_size=1
    )
    try:

        async def acquire() -> asyncpg.Connection:
            return await pool.acquire()

        held = await acquire()
        waiter = asyncio.create_task(acquire())
        await asyncio.sleep(0.05)
        assert pool_use(pool) == (1, 1)
        await pool.release(held)
        await pool.release(await waiter)
        assert pool_use(pool) == (0, 0)
    finally:
        pool.terminate()  # nothing held is left to wait for, whatever failed

    engine = create_engine(runtime.settings.database_url)
    queue_pool: Any = engine.sync_engine.pool
    size = queue_pool.size() + queue_pool._max_overflow

    async def connect() -> AsyncConnection:
        return await engine.connect()

    connections = [await connect() for _ in range(size)]
    try:
        waiting = asyncio.create_task(connect())
        await asyncio.sleep(0.05)
        assert pool_use(engine) == (size, 1)
        await connections.pop().close()
        await (await waiting).close()
        assert pool_use(engine) == (size - 1, 0)
    finally:
        for conn in connections:
            await conn.close()
        await engine.dispose()


async def test_tasks_count_their_wait_and_run() -> None:
    broker = InMemoryBroker()
    broker.add_middlewares(TaskMetrics())

    @broker.task(task_name="metrics_probe_ok")
    async def ok() -> int:
        return 1

    @broker.task(task_name="metrics_probe_fail")
    async def fail() -> None:
        raise RuntimeError("on purpose")

    await broker.startup()
    try:
        before_ok = sample(
            "mobility_task_duration_seconds_count", task="metrics_probe_ok", outcome="ok"
        )
        before_err = sample(
            "mobility_task_duration_seconds_count", task="metrics_probe_fail", outcome="error"
        )
        before_wait = sample("mobility_task_wait_seconds_count", task="metrics_probe_ok")
        for _ in range(2):
            await (await ok.kiq()).wait_result(timeout=5)
        await (await fail.kiq()).wait_result(timeout=5)
    finally:
        await broker.shutdown()
    assert (
        sample("mobility_task_duration_seconds_count", task="metrics_probe_ok", outcome="ok")
        - before_ok
        == 2
    )
    assert (
        sample("mobility_task_duration_seconds_count", task="metrics_probe_fail", outcome="error")
        - before_err
        == 1
    )
    assert sample("mobility_task_wait_seconds_count", task="metrics_probe_ok") - before_wait == 2


@pytest.mark.parametrize(
    ("token", "client", "headers", "status", "code"),
    [
        (None, ("127.0.0.1", 4000), {}, 200, None),
        (None, ("::1", 4000), {}, 200, None),
        (None, ("203.0.113.9", 4000), {}, 403, "METRICS_FORBIDDEN"),
        # Production without a token: nobody, not even an address that looks local.
        ("production", ("127.0.0.1", 4000), {}, 403, "METRICS_FORBIDDEN"),
        ("s3cret-metrics-token-0123", ("203.0.113.9", 4000), {}, 401, "METRICS_TOKEN_REQUIRED"),
        (
            "s3cret-metrics-token-0123",
            ("127.0.0.1", 4000),
            {"authorization": "Bearer wrong-token-wrong-token"},
            401,
            "METRICS_TOKEN_REQUIRED",
        ),
        (
            "s3cret-metrics-token-0123",
            ("203.0.113.9", 4000),
            {"authorization": "Bearer s3cret-metrics-token-0123"},
            200,
            None,
        ),
    ],
)
async def test_who_may_scrape(
    runtime: Runtime,
    token: str | None,
    client: tuple[str, int],
    headers: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    if token == "production":
        settings = make_settings(environment="production", secrets_keys=secret_box.new_key())
    else:
        settings = make_settings(metrics_token=token)
    app = create_app(settings)
    app.state.runtime = runtime.with_settings(settings)
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        response = await api.get("/metrics", headers=headers)
    assert response.status_code == status, response.text
    if code is None:
        assert "mobility_state_up" in response.text
    else:
        assert response.json()["error"]["code"] == code
        # A refusal says nothing of what the metrics hold.
        assert "mobility_" not in response.text


async def test_queue_depth_when_redis_cannot_give_the_lag(runtime: Runtime) -> None:
    """Entries deleted before the group read them (a full queue's trimming) make Redis answer
    no lag: the depth is then worked out, not reported as an empty queue."""
    stream = runtime.keys.task_stream
    for _ in range(5):
        await runtime.redis.xadd(stream, {"task": "x"})
    await runtime.redis.xgroup_create(stream, "depth-probe", id="0")
    entries = await runtime.redis.xrange(stream)
    assert entries is not None
    ids = [entry_id for entry_id, _ in entries if isinstance(entry_id, bytes)]
    assert len(ids) == 5
    await runtime.redis.xdel(stream, ids[2])
    groups = {g["name"]: g for g in await runtime.redis.xinfo_groups(stream)}
    assert groups[b"depth-probe"]["lag"] is None  # the case itself
    never_read = await read_queue(runtime.redis, runtime.keys, "depth-probe")
    assert never_read == QueueState(4, 0)  # the four entries left, none read yet

    # Two read (and not acknowledged), then one more unread entry deleted.
    await runtime.redis.xreadgroup("depth-probe", "c1", {stream: ">"}, count=2)
    await runtime.redis.xdel(stream, ids[4])
    state = await read_queue(runtime.redis, runtime.keys, "depth-probe")
    # Read: ids[0], ids[1] (ids[2] was deleted); left: ids[3] (ids[4] deleted too).
    assert state == QueueState(1, 2)


async def test_a_booking_request_that_fails_counts_as_an_error() -> None:
    async def broken(*, vehicle_id: str) -> Any:
        raise RuntimeError(f"on purpose: {vehicle_id}")

    before = sample("mobility_bookings_total", action="reserve", outcome="error")
    with pytest.raises(RuntimeError):
        await counted("reserve", broken)(vehicle_id="v1")
    assert sample("mobility_bookings_total", action="reserve", outcome="error") == before + 1
