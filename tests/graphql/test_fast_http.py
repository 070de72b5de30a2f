"""The fast path answers every request exactly as Strawberry's view would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.helpers import add_conformance_provider

NEAR = "near: {lat: 58.97, lon: 5.73, radiusMeters: 5000}"
JSON = {"content-type": "application/json"}

REQUESTS: dict[str, bytes | dict[str, Any] | list[Any]] = {
    "query with variables": {
        "query": "query($n: Int!) { vehicles(" + NEAR + ", first: $n) { id formFactor } }",
        "variables": {"n": 3},
    },
    "named operation": {
        "query": "query A { providers { id } } query B { providers { name } }",
        "operationName": "B",
    },
    "validation error": {"query": "{ nope }"},
    "domain error": {"query": "{ vehicles { id } }"},
    "bad variable": {
        "query": "query($n: Int!) { vehicles(" + NEAR + ", first: $n) { id } }",
        "variables": {"n": "three"},
    },
    "syntax error": {"query": "{ vehicles("},
    "missing query": {"variables": {}},
    "unknown persisted query": {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
    },
    "batch": [{"query": "{ providers { id } }"}],
    "malformed json": b'{"query": ',
    "variables not an object": {"query": "{ providers { id } }", "variables": [1]},
    "mutation type absent": {"query": "mutation { x }"},
}


@pytest.fixture
async def clients(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    assert (await runtime.sync.sync(slug)).ok
    apps = [create_app(runtime.settings, fast_path=flag) for flag in (True, False)]
    for app in apps:
        app.state.runtime = runtime
    fast, view = (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        for app in apps
    )
    async with fast, view:
        yield fast, view


@pytest.mark.parametrize("name", list(REQUESTS))
async def test_fast_path_and_strawberry_view_answer_alike(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], name: str
) -> None:
    fast, view = clients
    request = REQUESTS[name]
    body = request if isinstance(request, bytes) else None
    payload = None if isinstance(request, bytes) else request

    answers = [
        await client.post("/graphql", content=body, json=payload, headers=JSON)
        for client in (fast, view)
    ]

    assert answers[0].status_code == answers[1].status_code
    assert answers[0].headers["content-type"] == answers[1].headers["content-type"]
    assert answers[0].content == answers[1].content or answers[0].json() == answers[1].json()
