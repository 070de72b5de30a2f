"""Rate limits (app/rate_limit.py, graphql_schema/rate_limits.py) against the real Redis: the
token bucket under a burst, retry-after, per-plan and per-rider buckets, GraphQL and REST
answers, and requests still served with Redis down."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from app import rate_limit
from app.fleet import api_key_admin as admin
from app.fleet.principal import OrgActor, Role, Scope
from app.main import create_app
from app.models import Organisation
from app.platform.db import transaction
from app.rate_limit import (
    PLAN_LIMITS,
    Limit,
    Subject,
    bucket_key,
    rate_limited,
    take,
)
from app.runtime import Runtime, open_runtime
from tests.booking_support import sign_up
from tests.conftest import make_settings
from tests.graphql.test_booking_updates import connect
from tests.graphql.test_subscriptions import served

VEHICLES = "query { vehicles(near: {lat: 52.42, lon: 10.78, radiusMeters: 300}) { id } }"


def _subject(limit: Limit) -> Subject:
    return Subject(f"test:{uuid.uuid4()}", limit)


async def _key(runtime: Runtime, *, plan: str = "STANDARD") -> str:
    """A new organisation on ``plan`` and an API key of it that may search."""
    async with transaction(runtime.sessions) as session:
        org = Organisation(name="fleet", plan=plan)
        session.add(org)
        await session.flush()
        _, secret = await admin.create_api_key(
            session,
            OrgActor(org.id, role=Role.OWNER),
            name="integration",
            scopes=[Scope.VEHICLES_READ],
            expires_at=None,
            live=False,
        )
    return secret


async def _search(api: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.post("/graphql", json={"query": VEHICLES}, headers=headers)
    assert response.status_code == 200, response.text
    return response


def _limited(response: httpx.Response) -> int | None:
    """The retry-after of a RATE_LIMITED answer (checked against its header); None if served."""
    body: dict[str, Any] = response.json()
    if "errors" not in body:
        assert body == {"data": {"vehicles": []}}
        return None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED", body
    seconds = error["extensions"]["retryAfterSeconds"]
    assert response.headers["retry-after"] == str(seconds)
    return int(seconds)


async def test_a_burst_passes_exactly_the_configured_capacity(runtime: Runtime) -> None:
    burst, per_second = PLAN_LIMITS["STANDARD"]
    subject = _subject(PLAN_LIMITS["STANDARD"])
    requests = burst + 20
    started = time.monotonic()
    decisions = await asyncio.gather(
        *(take(runtime.redis, runtime.keys.prefix, subject) for _ in range(requests))
    )
    elapsed = time.monotonic() - started
    passed = sum(d.allowed for d in decisions)
    # A full bucket, plus whatever refilled while the burst ran (at most rate x duration).
    assert burst <= passed <= burst + math.floor(per_second * elapsed)
    assert all(not d.unchecked for d in decisions)
    refused = [d for d in decisions if not d.allowed]
    assert len(refused) == requests - passed
    # One token comes back every 1/rate seconds: the wait is at most that, rounded up.
    assert all(1 <= d.retry_after_seconds <= math.ceil(1 / per_second) for d in refused)


async def test_retry_after_is_the_time_until_the_next_token(runtime: Runtime) -> None:
    limit = Limit(burst=3, per_second=0.25)  # one token every 4 s
    subject = _subject(limit)
    started = time.monotonic()
    decisions = [await take(runtime.redis, runtime.keys.prefix, subject) for _ in range(5)]
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, "the premise: well under one refill interval"
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    # 4 s minus the elapsed fraction of a second, rounded up: 4.
    assert [d.retry_after_seconds for d in decisions] == [0, 0, 0, 4, 4]
    # The bucket's key lives until the bucket would be full again, then a second more.
    ttl_ms = await runtime.redis.pttl(bucket_key(runtime.keys.prefix, subject))
    assert 0 < ttl_ms <= math.ceil(limit.burst / limit.per_second * 1000) + 1000


async def test_the_bucket_refills_at_its_rate_up_to_its_capacity(runtime: Runtime) -> None:
    limit = Limit(burst=2, per_second=5.0)
    subject = _subject(limit)
    for _ in range(limit.burst):
        assert (await take(runtime.redis, runtime.keys.prefix, subject)).allowed
    assert not (await take(runtime.redis, runtime.keys.prefix, subject)).allowed
    await asyncio.sleep(0.5)  # 2.5 tokens' worth, capped at 2
    started = time.monotonic()
    after = [(await take(runtime.redis, runtime.keys.prefix, subject)).allowed for _ in range(3)]
    assert time.monotonic() - started < 0.2, "the premise: less than one token refilled"
    assert after == [True, True, False]


async def test_an_api_key_is_limited_on_graphql_with_retry_after(
    runtime: Runtime, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PLAN_LIMITS, "STANDARD", Limit(burst=4, per_second=0.1))
    key = await _key(runtime)
    other_key = await _key(runtime)
    started = time.monotonic()
    # The same document throughout: from the second request on it runs as an operation plan.
    answers = [_limited(await _search(api, key)) for _ in range(7)]
    assert time.monotonic() - started < 10, "the premise: no token refilled (one per 10 s)"
    assert answers[:4] == [None] * 4
    assert all(a is not None and 1 <= a <= 10 for a in answers[4:]), answers
    # Each key has its own bucket; anonymous search is not limited.
    assert [_limited(await _search(api, other_key)) for _ in range(4)] == [None] * 4
    assert [_limited(await _search(api, None)) for _ in range(10)] == [None] * 10


async def test_strawberrys_view_limits_too_and_sets_retry_after(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PLAN_LIMITS, "STANDARD", Limit(burst=2, per_second=0.1))
    key = await _key(runtime)
    app = create_app(runtime.settings, fast_path=False)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        answers = [_limited(await _search(client, key)) for _ in range(3)]
    assert answers[:2] == [None, None]
    assert answers[2] is not None and 1 <= answers[2] <= 10


async def test_the_plan_of_the_keys_organisation_sets_its_bucket(
    runtime: Runtime, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PLAN_LIMITS, "STANDARD", Limit(burst=2, per_second=0.1))
    monkeypatch.setitem(PLAN_LIMITS, "ENTERPRISE", Limit(burst=5, per_second=0.1))
    standard, enterprise = await _key(runtime), await _key(runtime, plan="ENTERPRISE")
    served = {}
    for name, key in (("STANDARD", standard), ("ENTERPRISE", enterprise)):
        answers = [_limited(await _search(api, key)) for _ in range(8)]
        served[name] = answers.count(None)
    assert served == {"STANDARD": 2, "ENTERPRISE": 5}


async def test_a_signed_in_rider_is_limited_per_user(
    runtime: Runtime, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _ = await sign_up(api)
    monkeypatch.setattr(rate_limit, "RIDER_LIMIT", Limit(burst=3, per_second=0.1))
    answers = [_limited(await _search(api, token)) for _ in range(5)]
    assert answers[:3] == [None] * 3
    assert all(a is not None for a in answers[3:])
    # Other operations of the rider draw on the same bucket.
    me = await api.post(
        "/graphql", json={"query": "{ me { email } }"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert me.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


@pytest.fixture
async def redis_down_api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a second runtime whose Redis URL points where nothing listens."""
    settings = make_settings(redis_url="redis://127.0.0.1:1/0")
    async with open_runtime(settings) as down:
        app = create_app(settings)
        app.state.runtime = down
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def test_with_redis_down_requests_are_served_and_logged_once(
    runtime: Runtime,
    redis_down_api: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(PLAN_LIMITS, "STANDARD", Limit(burst=2, per_second=0.1))
    monkeypatch.setattr(rate_limit, "_last_warning", -math.inf)
    key = await _key(runtime)
    with caplog.at_level(logging.WARNING, logger="app.rate_limit"):
        answers = [_limited(await _search(redis_down_api, key)) for _ in range(6)]
    assert answers == [None] * 6  # three times the burst, all served
    warnings = [r for r in caplog.records if r.name == "app.rate_limit"]
    assert len(warnings) == 1, warnings


def _rest_app(runtime: Runtime) -> FastAPI:
    app = FastAPI()
    app.state.runtime = runtime

    @app.get("/report", dependencies=[Depends(rate_limited())])
    async def report() -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def test_rest_routes_answer_429_with_retry_after(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PLAN_LIMITS, "STANDARD", Limit(burst=3, per_second=0.1))
    key = await _key(runtime)
    transport = httpx.ASGITransport(app=_rest_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        auth = {"Authorization": f"Bearer {key}"}
        responses = [await client.get("/report", headers=auth) for _ in range(5)]
        anonymous = [await client.get("/report") for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert all(1 <= int(r.headers["retry-after"]) <= 10 for r in responses[3:])
    assert [r.status_code for r in anonymous] == [200] * 5


async def test_rest_routes_are_served_with_redis_down(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PLAN_LIMITS, "STANDARD", Limit(burst=1, per_second=0.1))
    key = await _key(runtime)
    settings = make_settings(redis_url="redis://127.0.0.1:1/0")
    async with open_runtime(settings) as down:
        transport = httpx.ASGITransport(app=_rest_app(down))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            auth = {"Authorization": f"Bearer {key}"}
            statuses = [(await client.get("/report", headers=auth)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]


async def test_each_operation_on_a_websocket_is_charged(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PLAN_LIMITS, "STANDARD", Limit(burst=2, per_second=0.1))
    key = await _key(runtime)
    async with served(runtime) as base_url, connect(base_url, key) as client:
        answers = []
        for n in range(3):
            subscribe = {"id": str(n), "type": "subscribe", "payload": {"query": VEHICLES}}
            await client.ws.send(json.dumps(subscribe))
            answers.append(await client.receive())
            if answers[-1]["type"] == "next":
                assert (await client.receive())["type"] == "complete"
    assert [a["type"] for a in answers] == ["next", "next", "error"], answers
    assert answers[0]["payload"] == {"data": {"vehicles": []}}
    (error,) = answers[2]["payload"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= error["extensions"]["retryAfterSeconds"] <= 10


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "strawberry-view"])
async def test_graphql_response_json_clients_get_429_with_no_data(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, fast_path: bool
) -> None:
    monkeypatch.setitem(PLAN_LIMITS, "STANDARD", Limit(burst=1, per_second=0.1))
    key = await _key(runtime)
    app = create_app(runtime.settings, fast_path=fast_path)
    app.state.runtime = runtime
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/graphql-response+json, application/json;q=0.9",
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        served = await client.post("/graphql", json={"query": VEHICLES}, headers=headers)
        refused = await client.post("/graphql", json={"query": VEHICLES}, headers=headers)
    assert served.status_code == 200
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/graphql-response+json")
    body = refused.json()
    assert "data" not in body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert refused.headers["retry-after"] == str(error["extensions"]["retryAfterSeconds"])
