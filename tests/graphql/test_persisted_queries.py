"""Automatic persisted queries store only what is worth storing: documents that parsed and
validated, of bounded size, at a bounded rate per client address. (The protocol itself is in
tests/graphql/test_search_api.py; the Apollo client's side in web/test/apollo.test.mjs.)"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app import persisted_queries
from app.main import create_app
from app.rate_limit import Limit
from app.runtime import Runtime


def _persisted(query: str) -> dict[str, Any]:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def _stored(runtime: Runtime, query: str) -> bool:
    digest = hashlib.sha256(query.encode()).hexdigest()
    return await runtime.redis.exists(f"{runtime.settings.redis_prefix}:apq:{digest}") == 1


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def _client(
    runtime: Runtime, address: str, fast_path: bool
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings, fast_path=fast_path)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


@pytest.fixture(params=[True, False], ids=["fast-path", "strawberry-view"])
async def apq_api(
    runtime: Runtime, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(runtime, "192.0.2.10", request.param):
        yield client


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("x" * 30_000, "GRAPHQL_PARSE_FAILED"),  # not GraphQL at all
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),  # GraphQL, not of this schema
        ("{ " + "__typename " * 2100 + "}", "TOO_MANY_TOKENS"),
    ],
    ids=["text", "invalid", "too-many-tokens"],
)
async def test_a_document_that_does_not_validate_is_never_stored(
    runtime: Runtime, apq_api: httpx.AsyncClient, document: str, code: str
) -> None:
    body = (
        await apq_api.post("/graphql", json={"query": document, "extensions": _persisted(document)})
    ).json()
    assert _codes(body) == [code]
    assert not await _stored(runtime, document)
    again = (await apq_api.post("/graphql", json={"extensions": _persisted(document)})).json()
    assert _codes(again) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_a_valid_document_is_stored_even_if_its_variables_are_wrong(
    runtime: Runtime, apq_api: httpx.AsyncClient
) -> None:
    document = (
        "query($n: Int!) { vehicles(near: {lat: 1, lon: 1, radiusMeters: 10}, first: $n) { id } }"
    )
    body = (
        await apq_api.post(
            "/graphql",
            json={
                "query": document,
                "variables": {"n": "many"},
                "extensions": _persisted(document),
            },
        )
    ).json()
    assert _codes(body) == ["BAD_USER_INPUT"]
    assert await _stored(runtime, document)


async def test_documents_over_the_size_cap_are_refused(
    runtime: Runtime, apq_api: httpx.AsyncClient
) -> None:
    document = "{ __typename }" + " " * persisted_queries.MAX_DOCUMENT_BYTES
    body = (
        await apq_api.post("/graphql", json={"query": document, "extensions": _persisted(document)})
    ).json()
    assert _codes(body) == ["PERSISTED_QUERY_TOO_LARGE"]
    assert not await _stored(runtime, document)


async def test_registrations_are_limited_per_client_address(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persisted_queries, "REGISTRATIONS", Limit(burst=3, per_second=0.001))
    documents = [f"query Q{i} {{ __typename }}" for i in range(5)]
    async for one in _client(runtime, "192.0.2.20", fast_path=True):
        for document in documents:
            body = (
                await one.post(
                    "/graphql", json={"query": document, "extensions": _persisted(document)}
                )
            ).json()
            # Over the limit the request is still answered; only storing is skipped.
            assert body == {"data": {"__typename": "Query"}}
    stored = [await _stored(runtime, d) for d in documents]
    assert stored == [True, True, True, False, False]
    # Another client has its own allowance.
    async for other in _client(runtime, "192.0.2.21", fast_path=True):
        await other.post(
            "/graphql", json={"query": documents[4], "extensions": _persisted(documents[4])}
        )
    assert await _stored(runtime, documents[4])
