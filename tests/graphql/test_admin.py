"""Provider administration: admin-only mutations, staff tokens, credentials kept secret."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text

from app.main import create_app
from app.platform import secret_box
from app.platform.db import transaction
from app.runtime import Runtime
from app.staff_auth import create_token, new_token, revoke_token, well_formed
from providers.scheduler import Scheduler
from providers.simulators.feed_server import FeedServer, serve_in_background
from tests.app.test_cli import mobility
from tests.helpers import feed_dir, raw

FOLDER = "lillestrom-bysykkel"

ADD = """
mutation Add($input: ProviderInput!) {
  addProvider(input: $input) { id name enabled credentialsKind health { status } }
}"""
UPDATE = """
mutation Update($id: ID!, $input: ProviderUpdateInput!) {
  updateProvider(id: $id, input: $input) { id name }
}"""
ENABLE = """
mutation Enable($id: ID!, $enabled: Boolean!) {
  setProviderEnabled(id: $id, enabled: $enabled) { id enabled health { status } }
}"""
DELETE = "mutation Delete($id: ID!) { deleteProvider(id: $id) }"
SYNC = "mutation Sync($id: ID!) { syncProvider(id: $id) { id health { nextSyncAt } } }"
CREDENTIALS = """
mutation Creds($id: ID!, $credentials: OperatorCredentialsInput) {
  setProviderCredentials(id: $id, credentials: $credentials) { id credentialsKind }
}"""
PROVIDERS = "{ providers { id name enabled credentialsKind } }"


async def _token(runtime: Runtime, name: str = "ops") -> tuple[int, str]:
    async with transaction(runtime.sessions) as session:
        row, token = await create_token(session, name)
    return row.id, token


async def gql(
    api: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, token: str = ""
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def _feeds(server: FeedServer, base_url: str, system: str) -> dict[str, str]:
    paths = server.add_directory(system, feed_dir(FOLDER))
    return {Path(p).stem: base_url + p for p in paths if Path(p).stem != "gbfs"}


async def _provider_count(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int((await session.execute(text("SELECT count(*) FROM providers"))).scalar_one())


async def test_anyone_but_an_admin_is_forbidden_and_nothing_changes(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    token_id, token = await _token(runtime)
    _, admin_token = await _token(runtime, "real admin")
    feeds = _feeds(server, base_url, "x")
    await gql(api, ADD, {"input": {"id": "x", "config": {"feeds": feeds}}}, admin_token)
    async with transaction(runtime.sessions) as session:
        await revoke_token(session, token_id)

    async def state() -> list[Any]:
        async with runtime.sessions() as session:
            rows = await session.execute(
                text(
                    "SELECT p.id, p.name, p.enabled, p.config, p.next_sync_at, c.kind"
                    " FROM providers p LEFT JOIN provider_credentials c ON c.provider_id = p.id"
                    " ORDER BY p.id"
                )
            )
            return [tuple(r) for r in rows]

    before = await state()
    inputs = {"input": {"id": "y", "config": {"feeds": feeds}}}
    forged = new_token()  # well formed, never issued
    requests: list[tuple[str, dict[str, Any]]] = [
        (ADD, inputs),
        (UPDATE, {"id": "x", "input": {"name": "y"}}),
        (ENABLE, {"id": "x", "enabled": False}),
        (DELETE, {"id": "x"}),
        (SYNC, {"id": "x"}),
        (CREDENTIALS, {"id": "x", "credentials": {"bearerToken": "t"}}),
    ]
    for credential in ["", "not-a-token", token, forged, token[:-1] + "0"]:
        for query, variables in requests:
            body = await gql(api, query, variables, credential)
            assert _codes(body) == ["FORBIDDEN"], (credential, query, body)
            assert body["data"] is None
    assert await state() == before


async def test_an_admin_adds_syncs_updates_disables_and_deletes_a_provider(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    _, token = await _token(runtime)
    feeds = _feeds(server, base_url, "lille")
    body = await gql(api, ADD, {"input": {"id": "lille", "config": {"feeds": feeds}}}, token)
    assert body["data"]["addProvider"] == {
        "id": "lille",
        "name": "lille",
        "enabled": True,
        "credentialsKind": None,
        "health": {"status": "STALE"},  # no data yet
    }

    body = await gql(api, SYNC, {"id": "lille"}, token)
    assert body["data"]["syncProvider"]["health"]["nextSyncAt"] is not None
    claims = await Scheduler(runtime.sync, runtime.settings).run_once()
    assert [c.provider_id for c in claims] == ["lille"]
    stations = len(raw(FOLDER, "station_information")["data"]["stations"])

    async def synced() -> bool:
        async with runtime.sessions() as session:
            n = await session.execute(
                text("SELECT count(*) FROM stations WHERE provider_id = 'lille'")
            )
            return int(n.scalar_one()) == stations

    for _ in range(100):
        if await synced():
            break
        await asyncio.sleep(0.1)
    assert await synced()

    body = await gql(api, UPDATE, {"id": "lille", "input": {"name": "Lillestrøm"}}, token)
    assert body["data"]["updateProvider"] == {"id": "lille", "name": "Lillestrøm"}

    body = await gql(api, ENABLE, {"id": "lille", "enabled": False}, token)
    assert body["data"]["setProviderEnabled"] == {
        "id": "lille",
        "enabled": False,
        "health": {"status": "DISABLED"},
    }
    body = await gql(api, ENABLE, {"id": "lille", "enabled": True}, token)
    assert body["data"]["setProviderEnabled"]["enabled"] is True

    body = await gql(api, DELETE, {"id": "lille"}, token)
    assert body["data"] == {"deleteProvider": "lille"}
    assert await _provider_count(runtime) == 0
    async with runtime.sessions() as session:
        left = await session.execute(text("SELECT count(*) FROM stations"))
        assert left.scalar_one() == 0


async def test_invalid_admin_input_gets_a_coded_error(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    _, token = await _token(runtime)
    feeds = _feeds(server, base_url, "ok")
    cases: list[tuple[str, dict[str, Any], str]] = [
        (ADD, {"input": {"id": "Bad Slug!", "config": {"feeds": feeds}}}, "INVALID_PROVIDER_ID"),
        (ADD, {"input": {"id": "a", "adapter": "nope", "config": {}}}, "INVALID_PROVIDER_CONFIG"),
        (ADD, {"input": {"id": "a", "config": ["not", "an", "object"]}}, "INVALID_PROVIDER_CONFIG"),
        (UPDATE, {"id": "ghost", "input": {"name": "x"}}, "PROVIDER_NOT_FOUND"),
        (ENABLE, {"id": "ghost", "enabled": True}, "PROVIDER_NOT_FOUND"),
        (DELETE, {"id": "ghost"}, "PROVIDER_NOT_FOUND"),
        (SYNC, {"id": "ghost"}, "PROVIDER_NOT_FOUND"),
    ]
    for query, variables, code in cases:
        body = await gql(api, query, variables, token)
        assert _codes(body) == [code], (variables, body)
    assert await _provider_count(runtime) == 0

    await gql(api, ADD, {"input": {"id": "ok", "config": {"feeds": feeds}}}, token)
    body = await gql(api, ADD, {"input": {"id": "ok", "config": {"feeds": feeds}}}, token)
    assert _codes(body) == ["PROVIDER_EXISTS"]
    body = await gql(api, UPDATE, {"id": "ok", "input": {"config": {"feeds": {}}}}, token)
    assert _codes(body) == ["INVALID_PROVIDER_CONFIG"]


@pytest.mark.parametrize(
    ("credentials", "kind"),
    [
        ({"bearerToken": "s3cr3t-bearer-value"}, "BEARER_TOKEN"),
        ({"apiKey": {"header": "X-Api-Key", "value": "s3cr3t-api-key"}}, "API_KEY"),
        (
            {
                "oauth2ClientCredentials": {
                    "tokenUrl": "https://auth.example.com/token",
                    "clientId": "client",
                    "clientSecret": "s3cr3t-client-secret",
                }
            },
            "OAUTH2_CLIENT_CREDENTIALS",
        ),
    ],
)
async def test_credentials_go_in_and_never_come_out(
    runtime: Runtime,
    api: httpx.AsyncClient,
    feed_server: tuple[FeedServer, str],
    caplog: pytest.LogCaptureFixture,
    credentials: dict[str, Any],
    kind: str,
) -> None:
    server, base_url = feed_server
    _, token = await _token(runtime)
    await gql(
        api, ADD, {"input": {"id": "p", "config": {"feeds": _feeds(server, base_url, "p")}}}, token
    )
    secrets = [v for v in _leaves(credentials) if "s3cr3t" in v]
    assert secrets
    with caplog.at_level(logging.DEBUG):
        body = await gql(api, CREDENTIALS, {"id": "p", "credentials": credentials}, token)
        assert body["data"]["setProviderCredentials"] == {"id": "p", "credentialsKind": kind}
        as_admin = await gql(api, PROVIDERS, token=token)
        as_anyone = await gql(api, PROVIDERS)
    assert as_admin["data"]["providers"][0]["credentialsKind"] == kind
    assert as_anyone["data"]["providers"][0]["credentialsKind"] is None
    for secret in secrets:
        for answer in (body, as_admin, as_anyone):
            assert secret not in str(answer)
        assert all(secret not in r.getMessage() for r in caplog.records)

    # Stored sealed (app/platform/secret_box.py), and for the adapter, once opened, exactly what was
    # given.
    async with runtime.sessions() as session:
        stored = (
            await session.execute(text("SELECT secret FROM provider_credentials"))
        ).scalar_one()
    assert all(secret not in json.dumps(stored) for secret in secrets)
    opened = json.loads(secret_box.current().open(stored["sealed"], "provider_credentials.secret"))
    assert set(_leaves(opened)) >= set(secrets)

    body = await gql(api, CREDENTIALS, {"id": "p", "credentials": None}, token)
    assert body["data"]["setProviderCredentials"]["credentialsKind"] is None


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value] if isinstance(value, str) else []


async def test_bad_credentials_are_refused_with_a_code(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    _, token = await _token(runtime)
    await gql(
        api, ADD, {"input": {"id": "p", "config": {"feeds": _feeds(server, base_url, "p")}}}, token
    )
    for credentials in [
        {},
        {"bearerToken": "a", "apiKey": {"header": "X-Key", "value": "b"}},
        {"bearerToken": "   "},
        {"bearerToken": "line\nbreak"},
        {"bearerToken": "ünïcode"},
        {"apiKey": {"header": "Bad Header", "value": "v"}},
        {"apiKey": {"header": "Host", "value": "v"}},
        {"oauth2ClientCredentials": {"tokenUrl": "ftp://x", "clientId": "c", "clientSecret": "s"}},
    ]:
        body = await gql(api, CREDENTIALS, {"id": "p", "credentials": credentials}, token)
        assert _codes(body) == ["INVALID_CREDENTIALS"], (credentials, body)
    async with runtime.sessions() as session:
        count = await session.execute(text("SELECT count(*) FROM provider_credentials"))
        assert count.scalar_one() == 0


def test_staff_tokens_are_recognisable_and_checksummed() -> None:
    token = new_token()
    assert token.startswith("mob_staff_") and well_formed(token)
    body, check = token.rsplit("_", 1)
    # One character of the random part changed, the checksum kept: refused without a lookup.
    i = len("mob_staff_") + 5
    tampered = body[:i] + ("A" if body[i] != "A" else "B") + body[i + 1 :] + "_" + check
    assert len(tampered) == len(token) and not well_formed(tampered)
    assert len({new_token() for _ in range(100)}) == 100


async def test_staff_tokens_and_provider_admin_from_the_command_line(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str], tmp_path: Path
) -> None:
    server, base_url = feed_server
    code, out, err = await mobility(runtime, "staff-token", "create", "night shift")
    assert code == 0, err
    token = next(w for w in out.split() if w.startswith("mob_staff_"))
    feeds = _feeds(server, base_url, "cli")
    body = await gql(api, ADD, {"input": {"id": "cli", "config": {"feeds": feeds}}}, token)
    assert body["data"]["addProvider"]["id"] == "cli"

    code, out, err = await mobility(runtime, "staff-token", "list")
    assert code == 0 and "night shift" in out and token not in out
    (line,) = [ln for ln in out.splitlines() if "night shift" in ln]
    token_id = line.split()[0]

    secret_file = tmp_path / "token"
    secret_file.write_text("cli-s3cr3t\n")
    code, out, err = await mobility(
        runtime, "providers", "credentials", "cli", "--bearer-token-file", str(secret_file)
    )
    assert code == 0, err
    assert "cli-s3cr3t" not in out + err
    code, out, err = await mobility(runtime, "providers", "disable", "cli")
    assert code == 0, err
    body = await gql(api, PROVIDERS, token=token)
    assert body["data"]["providers"] == [
        {"id": "cli", "name": "cli", "enabled": False, "credentialsKind": "BEARER_TOKEN"}
    ]
    code, _, err = await mobility(runtime, "providers", "enable", "ghost")
    assert code != 0 and "PROVIDER_NOT_FOUND" in err

    code, out, err = await mobility(runtime, "staff-token", "revoke", token_id)
    assert code == 0, err
    body = await gql(api, ENABLE, {"id": "cli", "enabled": True}, token)
    assert _codes(body) == ["FORBIDDEN"]


async def test_a_token_revoked_while_a_websocket_is_open_stops_working_at_once(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    token_id, token = await _token(runtime)
    app = create_app(runtime.settings)
    app.state.runtime = runtime
    async with serve_in_background(app) as api_url:
        async with httpx.AsyncClient(base_url=api_url) as http:
            feeds = _feeds(server, base_url, "ws")
            await gql(http, ADD, {"input": {"id": "ws", "config": {"feeds": feeds}}}, token)
        url = api_url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(
            url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"

            async def disable(op_id: str) -> dict[str, Any]:
                payload = {"query": ENABLE, "variables": {"id": "ws", "enabled": False}}
                await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if message["type"] in {"next", "error"}:
                        return message  # type: ignore[no-any-return]

            first = await disable("1")
            assert first["payload"]["data"]["setProviderEnabled"]["enabled"] is False
            async with transaction(runtime.sessions) as session:
                await revoke_token(session, token_id)
            second = await disable("2")
            errors = second["payload"]["errors"] if second["type"] == "next" else second["payload"]
            assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]


async def test_database_errors_do_not_carry_secrets(runtime: Runtime) -> None:
    secret = "s3cr3t-in-a-failing-statement"
    with pytest.raises(Exception) as failure:
        async with transaction(runtime.sessions) as session:
            # A foreign-key violation: the provider does not exist.
            await session.execute(
                text(
                    "INSERT INTO provider_credentials (provider_id, kind, secret)"
                    " VALUES ('ghost', 'bearer_token', jsonb_build_object('token', :s::text))"
                ),
                {"s": secret},
            )
    assert "provider_credentials" in str(failure.value)
    assert secret not in str(failure.value)
