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
WITHIN = {"minLat": 58.93, "minLon": 5.66, "maxLat": 59.0, "maxLon": 5.78}
CONNECTION = (
    "query($b: WithinInput!, $n: Int, $after: String) { vehiclesConnection(within: $b, "
    "first: $n, after: $after) { edges { cursor node { id distanceMeters provider { id } } } "
    "pageInfo { hasNextPage endCursor } } }"
)

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
    "within, nearest the centre first": {
        "query": "query($b: WithinInput!) { vehicles(within: $b, first: 9) { id distanceMeters } }",
        "variables": {"b": WITHIN},
    },
    "a connection's first page": {
        "query": CONNECTION,
        "variables": {"b": WITHIN, "n": 3, "after": None},
    },
    "a cursor that is not ours": {
        "query": CONNECTION,
        "variables": {"b": WITHIN, "n": 3, "after": "bm90IG91cnM"},
    },
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

    expected = await view.post("/graphql", content=body, json=payload, headers=JSON)
    # Three times: the first execution of a text teaches the fast path its plan.
    for _ in range(3):
        answer = await fast.post("/graphql", content=body, json=payload, headers=JSON)
        assert answer.status_code == expected.status_code
        assert answer.headers["content-type"] == expected.headers["content-type"]
        assert answer.content == expected.content or answer.json() == expected.json()


LEARNED = (
    "query($n: Int!, $r: Float!) { vehicles(near: {lat: 58.97, lon: 5.73, radiusMeters: $r}, "
    "first: $n) { id distanceMeters provider { id } pricingPlan { price { amountMinor } } } }"
)


@pytest.mark.parametrize(
    "variables",
    [
        {"n": 0, "r": 500},  # a domain error from the resolver
        {"n": 5, "r": 99_999},  # another one
        {"n": "five", "r": 500},  # a variable that does not coerce
        {"n": 5},  # a missing variable
        {"n": 7, "r": 3000},  # and a good one again
    ],
)
async def test_a_learned_operation_still_answers_every_request_like_the_view(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], variables: dict[str, Any]
) -> None:
    fast, view = clients
    good = {"query": LEARNED, "variables": {"n": 3, "r": 5000}}
    for _ in range(2):
        await fast.post("/graphql", json=good)
    request = {"query": LEARNED, "variables": variables}

    answer = await fast.post("/graphql", json=request)
    expected = await view.post("/graphql", json=request)

    assert (answer.status_code, answer.json()) == (expected.status_code, expected.json())


async def test_a_learned_connection_pages_like_the_view(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    fast, view = clients
    plans = fast._transport.app.state.operation_plans  # type: ignore[attr-defined]
    after, pages = None, 0
    while True:
        request = {"query": CONNECTION, "variables": {"b": WITHIN, "n": 5, "after": after}}
        answer = await fast.post("/graphql", json=request)
        expected = await view.post("/graphql", json=request)
        assert answer.status_code == expected.status_code == 200
        assert answer.json() == expected.json()
        assert plans.get(CONNECTION, None) is not None  # learned on the first page
        page = answer.json()["data"]["vehiclesConnection"]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages > 2
    # The plan meets a refused cursor and a cursor of another query: the view's answers.
    other_box = {**WITHIN, "maxLat": 59.01}
    for variables in (
        {"b": WITHIN, "n": 5, "after": "bm90IG91cnM"},
        {"b": other_box, "n": 5, "after": after},
        {"b": WITHIN, "n": 500, "after": None},
    ):
        request = {"query": CONNECTION, "variables": variables}
        answer = await fast.post("/graphql", json=request)
        expected = await view.post("/graphql", json=request)
        assert (answer.status_code, answer.json()) == (expected.status_code, expected.json())
        assert answer.json()["errors"][0]["extensions"]["code"] in {
            "INVALID_CURSOR",
            "INVALID_FIRST",
        }


async def test_the_fast_path_learns_plans_for_successful_queries_only(
    runtime: Runtime, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    fast, _ = clients
    plans = fast._transport.app.state.operation_plans  # type: ignore[attr-defined]
    await fast.post("/graphql", json={"query": LEARNED, "variables": {"n": 0, "r": 500}})
    assert not plans.knows(LEARNED, None)
    await fast.post("/graphql", json={"query": LEARNED, "variables": {"n": 2, "r": 500}})
    assert plans.get(LEARNED, None) is not None
