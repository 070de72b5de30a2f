"""One error policy for every transport: a request that cannot run gets a GraphQL error with a
stable ``extensions.code`` over HTTP (whatever Strawberry would have said in plain text) and
over WebSocket (an ``error`` message, never a bare ``complete`` or a closed socket), and HTTP
answers follow the GraphQL-over-HTTP spec's media types."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.runtime import Runtime
from tests.graphql.test_subscriptions import connect, served

# Depth 11 against the default limit of 10 (introspection fields do not count, so a real path).
DEEP = """{ tripOptions(from: {lat: 0, lon: 0}, to: {lat: 0, lon: 0.01}) { offer { vehicle {
  station { vehicleTypesAvailable { vehicleType { defaultPricingPlan { provider { health {
  validation { sample { code } } } } } } } } } } } }"""

CANNOT_RUN = [
    pytest.param({"query": "{ vehicles("}, "GRAPHQL_PARSE_FAILED", id="syntax-error"),
    pytest.param({"query": "{ " + "__typename " * 2100 + "}"}, "TOO_MANY_TOKENS", id="tokens"),
    pytest.param({"query": DEEP}, "QUERY_TOO_DEEP", id="too-deep"),
    pytest.param(
        {"query": "query A { __typename }", "operationName": "B"},
        "OPERATION_NOT_FOUND",
        id="unknown-operation",
    ),
    pytest.param({"query": "{ noSuchField }"}, "GRAPHQL_VALIDATION_FAILED", id="unknown-field"),
]


def _codes(errors: list[dict[str, Any]]) -> list[str]:
    return [e["extensions"]["code"] for e in errors]


@pytest.mark.parametrize(("payload", "code"), CANNOT_RUN)
async def test_over_websocket_an_error_message_with_the_code_and_the_socket_stays(
    runtime: Runtime, payload: dict[str, Any], code: str
) -> None:
    async with served(runtime) as base_url, connect(base_url) as client:
        await client.ws.send(json.dumps({"id": "x", "type": "subscribe", "payload": payload}))
        message = await client.receive()
        assert message["type"] == "error", message
        assert message["id"] == "x"
        assert _codes(message["payload"]) == [code]
        # The socket is still open and serves the next operation.
        await client.ws.send(
            json.dumps({"id": "y", "type": "subscribe", "payload": {"query": "{ __typename }"}})
        )
        assert (await client.receive())["payload"] == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(("payload", "code"), CANNOT_RUN)
@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_over_http_the_same_code(
    api: httpx.AsyncClient, payload: dict[str, Any], code: str, accept: str
) -> None:
    response = await api.post("/graphql", json=payload, headers={"Accept": accept})
    body = response.json()
    assert _codes(body["errors"]) == [code]
    assert response.headers["content-type"] == f"{accept}; charset=utf-8"
    if accept == "application/json":
        assert response.status_code in (200, 400)  # 400 where the request is not GraphQL at all
    else:
        # Nothing ran: a 4xx and no data entry (GraphQL over HTTP, graphql-response+json).
        assert response.status_code == 400
        assert "data" not in body


async def test_graphql_response_json_keeps_200_for_executed_results(
    api: httpx.AsyncClient,
) -> None:
    accept = {"Accept": "application/graphql-response+json, application/json;q=0.9"}
    ok = await api.post("/graphql", json={"query": "{ __typename }"}, headers=accept)
    assert (ok.status_code, ok.json()) == (200, {"data": {"__typename": "Query"}})
    # An error while executing a field is still an executed request: 200 with data.
    field_error = await api.post(
        "/graphql", json={"query": '{ vehicle(id: "nobody:here") { id } }'}, headers=accept
    )
    assert field_error.status_code == 200
    assert "data" in field_error.json()


@pytest.mark.parametrize(
    ("accept", "graphql_response"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("application/graphql-response+json", True),
        ("application/graphql-response+json, application/json;q=0.9", True),
        ("application/json, application/graphql-response+json;q=0.5", False),
        ("application/graphql-response+json;q=0, application/json", False),
    ],
)
async def test_the_response_media_type_follows_accept(
    api: httpx.AsyncClient, accept: str | None, graphql_response: bool
) -> None:
    headers = {"Accept": accept} if accept else {}
    response = await api.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    expected = "application/graphql-response+json" if graphql_response else "application/json"
    assert response.headers["content-type"] == f"{expected}; charset=utf-8"


@pytest.mark.parametrize(
    ("method", "kwargs", "status", "code"),
    [
        pytest.param(
            "POST",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "INVALID_REQUEST_BODY",
            id="body-not-json",
        ),
        pytest.param("POST", {"json": {"variables": {}}}, 400, "MISSING_QUERY", id="no-query"),
        pytest.param(
            "GET",
            {"params": {"query": 'mutation { logOut(refreshToken: "x") }'}},
            405,
            "MUTATION_OVER_GET",
            id="mutation-over-get",
        ),
        pytest.param(
            "POST",
            {"json": {"query": "subscription { vehicleUpdates { kind } }"}},
            400,
            "SUBSCRIPTION_OVER_HTTP",
            id="subscription-over-post",
        ),
        pytest.param(
            "GET",
            {"params": {"query": "subscription { vehicleUpdates { kind } }"}},
            400,
            "SUBSCRIPTION_OVER_HTTP",
            id="subscription-over-get",
        ),
        pytest.param(
            "POST",
            {
                "json": {"query": "subscription { vehicleUpdates { kind } }"},
                "headers": {"Accept": "multipart/mixed;subscriptionSpec=1.0, application/json"},
            },
            400,
            "SUBSCRIPTION_OVER_HTTP",
            id="multipart-subscription",
        ),
        pytest.param(
            "POST",
            {"content": b"query=x", "headers": {"Content-Type": "text/plain"}},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            id="unsupported-media-type",
        ),
    ],
)
async def test_requests_strawberry_refuses_get_our_codes(
    api: httpx.AsyncClient, method: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = await api.request(method, "/graphql", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert _codes(response.json()["errors"]) == [code]
    if code == "MUTATION_OVER_GET":
        assert response.headers["allow"] == "POST"


LEAKY = "SELECT secret FROM internal_table WHERE host = 'db.internal:5432'"


async def test_unexpected_errors_are_masked_on_every_transport(
    runtime: Runtime, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(LEAKY)

    monkeypatch.setattr(runtime.search, "vehicle", broken)
    query = '{ vehicle(id: "any:one") { id } }'
    over_http = await api.post("/graphql", json={"query": query})
    async with served(runtime) as base_url, connect(base_url) as client:
        await client.ws.send(
            json.dumps({"id": "q", "type": "subscribe", "payload": {"query": query}})
        )
        over_ws = await client.receive()
    for answer in (over_http.text, json.dumps(over_ws)):
        assert "secret" not in answer and "internal" not in answer, answer
    assert _codes(over_http.json()["errors"]) == ["INTERNAL_SERVER_ERROR"]
    assert over_ws["type"] == "next"
    assert _codes(over_ws["payload"]["errors"]) == ["INTERNAL_SERVER_ERROR"]
    assert over_ws["payload"]["errors"][0]["message"] == "Unexpected error."


async def test_a_string_argument_saying_more_than_is_not_too_many_tokens(
    api: httpx.AsyncClient,
) -> None:
    body = await api.post("/graphql", json={"query": '{ vehicles(first: "more than") { id } }'})
    assert _codes(body.json()["errors"]) == ["GRAPHQL_VALIDATION_FAILED"]
