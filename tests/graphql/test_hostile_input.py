"""What an attacker's first hour tried, each answered as the client's mistake with a stable code
(never a 500, an internal error, or a forged log line): bodies over the cap in any content type
or transport, bodies that are JSON but not an object, NUL characters in any string argument or
variable, control characters in paths, links with script schemes from operators."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from app.platform.logs import EscapingFormatter
from app.runtime import Runtime
from tests.graphql.test_subscriptions import connect, served
from tests.providers.test_push_ingest import _post, _push_provider, _vehicle

MIB = 1024 * 1024


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


# --- the body cap, at the edge ------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json-seq",
        "application/jsonx",
        "text/plain",
        "multipart/form-data; boundary=x",
    ],
)
async def test_a_body_over_the_cap_is_refused_whatever_its_type(
    api: httpx.AsyncClient, content_type: str
) -> None:
    body = b'{"query": "{ __typename }", "variables": {"x": "' + b"a" * (2 * MIB) + b'"}}'
    response = await api.post("/graphql", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 413
    assert _codes(response.json()) == ["BODY_TOO_LARGE"]


async def test_a_streamed_body_without_length_is_cut_at_the_cap(api: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 4 MiB if all of it were read
            sent += 1
            yield b" " * (64 * 1024)

    response = await api.post(
        "/graphql", content=chunks(), headers={"Content-Type": "application/json-seq"}
    )
    assert response.status_code == 413
    assert _codes(response.json()) == ["BODY_TOO_LARGE"]
    assert sent < 64, "the rest of the body was not read"


async def test_rest_routes_answer_in_their_own_shape(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/ingest/anyone/vehicles",
        content=b" " * (6 * MIB),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "BODY_TOO_LARGE"


async def test_a_websocket_message_over_the_cap_closes_the_socket_with_1009(
    runtime: Runtime,
) -> None:
    async with served(runtime) as base_url, connect(base_url) as client:
        await client.ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "x" * (2 * MIB)}})
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


# --- bodies that are JSON but no GraphQL request --------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"null", b'"x"', b"5", b"true", b"\xff\xfe{}", b'{"query": "\xc3"}']
)
async def test_a_body_that_is_no_json_object_is_a_400(api: httpx.AsyncClient, body: bytes) -> None:
    response = await api.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert _codes(response.json()) == ["INVALID_REQUEST_BODY"]


# --- NUL characters -------------------------------------------------------------------------

NUL = "a\u0000b"
# Every kind of field that once answered INTERNAL_SERVER_ERROR for a NUL (issue 16).
LITERALS = [
    '{ vehicle(id: "a\\u0000b") { id } }',
    '{ quote(vehicleId: "a\\u0000b", minutes: 5) { id } }',
    '{ rideEndCheck(lat: 52.5, lon: 13.4, vehicleId: "a\\u0000b") { allowed } }',
    'mutation { logIn(email: "a\\u0000b@example.org", password: "x") { accessToken } }',
    'mutation { signUp(input: {email: "n@example.org", password: "correct horse battery", '
    'displayName: "a\\u0000b"}) { accessToken } }',
    'mutation { reserveVehicle(vehicleId: "a\\u0000b", idempotencyKey: "k") { __typename } }',
]


@pytest.mark.parametrize("query", LITERALS)
async def test_a_nul_in_a_string_literal_is_invalid_characters(
    api: httpx.AsyncClient, query: str
) -> None:
    body = (await api.post("/graphql", json={"query": query})).json()
    assert _codes(body) == ["INVALID_CHARACTERS"]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($id: ID!) { vehicle(id: $id) { id } }", {"id": NUL}),
        (
            'mutation($e: String!) { logIn(email: $e, password: "x") { accessToken } }',
            {"e": NUL},
        ),
        (
            "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
            {
                "i": {
                    "email": "n@example.org",
                    "password": "correct horse battery",
                    "displayName": NUL,
                }
            },
        ),
    ],
)
async def test_a_nul_in_a_variable_is_invalid_characters_twice_over(
    api: httpx.AsyncClient, query: str, variables: dict[str, Any]
) -> None:
    # Twice: the second time the fast path may run the document as a learned plan.
    for _ in range(2):
        body = (await api.post("/graphql", json={"query": query, "variables": variables})).json()
        assert _codes(body) == ["INVALID_CHARACTERS"]


async def test_over_websocket_too(runtime: Runtime) -> None:
    async with served(runtime) as base_url, connect(base_url) as client:
        for op_id, payload in [
            ("lit", {"query": LITERALS[0]}),
            (
                "var",
                {"query": "query($id: ID!) { vehicle(id: $id) { id } }", "variables": {"id": NUL}},
            ),
        ]:
            await client.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
            message = await client.receive()
            assert message["type"] == "error", message
            assert _codes({"errors": message["payload"]}) == ["INVALID_CHARACTERS"]


# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/gbfs/v3/a%00b/gbfs.json",
        "/ingest/x%00%0AERROR%20app.staff_auth:%20forged/vehicles",
        "/reports/usage.csv%0A",
    ],
)
async def test_a_path_with_control_characters_is_a_400(api: httpx.AsyncClient, path: str) -> None:
    response = await api.request("POST" if "ingest" in path else "GET", path)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_PATH"


def test_log_lines_escape_control_characters() -> None:
    formatter = EscapingFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord(
        "app.rest.ingest",
        logging.WARNING,
        __file__,
        1,
        "push for %s refused",
        ("x\u0000\nERROR app.staff_auth: forged\r\u2028\x1b[31m",),
        None,
    )
    line = formatter.format(record)
    assert "\n" not in line and "\r" not in line and "\x00" not in line and "\x1b" not in line
    assert line == (
        "WARNING app.rest.ingest: push for x\\x00\\nERROR app.staff_auth: forged\\r\\x2028"
        "\\x1b[31m refused"
    )


# --- links from operators -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>",
        "https://a\u0000b",
        "file:///etc/passwd",
        "no scheme",
        "https://",
    ],
)
async def test_pushed_rental_uris_must_be_links(
    runtime: Runtime, api: httpx.AsyncClient, uri: str
) -> None:
    await _push_provider(runtime)
    response = await _post(
        api, {"vehicles": [_vehicle("car-1", 52.5, 13.4, rental_uris={"web": uri})]}
    )
    # Every record of the batch refused: 422 (docs/push-ingest.md), never a 503 that says retry.
    assert response.status_code == 422, response.text
    (rejected,) = response.json()["rejected"]
    assert (rejected["vehicleId"], rejected["code"]) == ("car-1", "INVALID_FIELD")


async def test_pushed_app_links_are_kept(runtime: Runtime, api: httpx.AsyncClient) -> None:
    await _push_provider(runtime)
    uris = {
        "android": "scoot://vehicle/1",
        "ios": "https://app.example/v/1",
        "web": "https://x.example/",
    }
    response = await _post(api, {"vehicles": [_vehicle("car-1", 52.5, 13.4, rental_uris=uris)]})
    assert response.json()["rejected"] == [], response.text
