"""Provider administration: admin-only mutations, staff tokens, credentials kept secret."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.db import transaction
from app.runtime import Runtime
from app.staff_auth import create_token, new_token, revoke_token, well_formed
from providers.scheduler import Scheduler
from providers.simulators.feed_server import FeedServer
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
    async with transaction(runtime.sessions) as session:
        await revoke_token(session, token_id)
    inputs = {"input": {"id": "x", "config": {"feeds": _feeds(server, base_url, "x")}}}
    forged = new_token()  # well formed, never issued
    for credential in ["", "not-a-token", token, forged, token[:-1] + "0"]:
        for query, variables in [
            (ADD, inputs),
            (UPDATE, {"id": "x", "input": {"name": "y"}}),
            (ENABLE, {"id": "x", "enabled": False}),
            (DELETE, {"id": "x"}),
            (SYNC, {"id": "x"}),
            (CREDENTIALS, {"id": "x", "credentials": {"bearerToken": "t"}}),
        ]:
            body = await gql(api, query, variables, credential)
            assert _codes(body) == ["FORBIDDEN"], (credential, query, body)
            assert body["data"] is None
    assert await _provider_count(runtime) == 0


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
    cases = [
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

    # Stored, for the adapter: exactly what was given.
    async with runtime.sessions() as session:
        stored = (
            await session.execute(text("SELECT secret FROM provider_credentials"))
        ).scalar_one()
    assert set(_leaves(stored)) >= set(secrets)

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
    tampered = token[:-7] + ("A" if token[-7] != "A" else "B") + token[-6:]
    assert not well_formed(tampered)
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
