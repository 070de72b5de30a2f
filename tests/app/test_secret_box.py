"""Secrets sealed at rest: the box itself, the columns that use it, and key rotation (reseal)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.credentials import BearerToken
from app.platform import secret_box
from app.platform.db import transaction
from app.platform.secret_box import SecretBox, SecretsMisconfigured, SecretUnreadable
from app.rest import ingest as ingest_api
from app.runtime import Runtime
from providers import admin
from providers.service import register_provider
from tests.app.test_cli import mobility
from tests.conftest import make_settings
from tests.webhook_support import organisation

P = "tests.secret"  # the column a value is sealed for
KEY_A = secret_box.new_key()
KEY_B = secret_box.new_key()


def box(*keys: str) -> SecretBox:
    return SecretBox.from_settings(make_settings(secrets_keys=",".join(keys)))


def test_sealed_values_open_and_reveal_nothing() -> None:
    sealer = box(KEY_A)
    first, second = sealer.seal("whsec_abc", P), sealer.seal("whsec_abc", P)
    assert first != second, "each seal has its own nonce"
    for sealed in (first, second):
        assert sealed.startswith(f"sb1:{sealer.sealing_key_id}:")
        assert "whsec_abc" not in sealed
        assert sealer.open(sealed, P) == "whsec_abc"
    assert sealer.open("stored before sealing", P) == "stored before sealing"


def test_a_tampered_or_foreign_value_is_unreadable_not_garbage() -> None:
    sealer = box(KEY_A)
    sealed = sealer.seal("client-secret", P)
    head, body = sealed.rsplit(":", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(SecretUnreadable, match="damaged"):
        sealer.open(f"{head}:{flipped}", P)
    with pytest.raises(SecretUnreadable, match="does not list"):
        box(KEY_B).open(sealed, P)


def test_a_value_opens_only_in_the_column_it_was_sealed_for() -> None:
    sealer = box(KEY_A)
    sealed = sealer.seal("whsec_one_providers_secret", "providers.ingest_secret")
    with pytest.raises(SecretUnreadable, match="copied from another column"):
        sealer.open(sealed, "webhook_endpoints.secret")


async def test_once_sealed_only_is_on_a_plain_value_is_refused_and_reseal_still_works(
    runtime: Runtime,
) -> None:
    strict = SecretBox.from_settings(make_settings(secrets_keys=KEY_A, secrets_require_sealed=True))
    with pytest.raises(SecretUnreadable, match="not sealed"):
        strict.open("whsec_written_behind_our_back", P)
    assert strict.open(strict.seal("whsec_ok", P), P) == "whsec_ok"
    # Plain values left from before sealing are what reseal is for: it still seals them.
    async with transaction(runtime.sessions) as session:
        await _opco(session)
        await session.execute(
            text("UPDATE providers SET ingest_secret = 'whsec_plain' WHERE id = 'opco'")
        )
    async with transaction(runtime.sessions) as session:
        assert (await secret_box.reseal_all(session, strict))["providers"] == 1
    stored = await _raw(runtime, "SELECT ingest_secret FROM providers WHERE id = 'opco'")
    assert strict.open(stored, secret_box.INGEST_SECRET_PURPOSE) == "whsec_plain"


def test_the_same_key_listed_twice_is_refused() -> None:
    with pytest.raises(SecretsMisconfigured, match="twice"):
        box(KEY_A, KEY_A)


def test_rotation_new_key_first_old_ones_still_open() -> None:
    old = box(KEY_A).seal("operator-token", P)
    rotated = box(KEY_B, KEY_A)
    assert rotated.open(old, P) == "operator-token"
    assert not rotated.is_current(old)
    assert rotated.is_current(rotated.seal("operator-token", P))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"environment": "production", "secrets_keys": None}, "required in production"),
        ({"secrets_keys": "not-base64-at-all!"}, "not base64url"),
        ({"secrets_keys": "c2hvcnQ"}, "32 bytes"),
        ({"secrets_keys": f"{KEY_A},c2hvcnQ"}, "entry 2"),
    ],
)
def test_missing_or_malformed_keys_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SecretsMisconfigured, match=message):
        SecretBox.from_settings(make_settings(**overrides))


def test_development_without_keys_uses_a_fixed_key_production_never() -> None:
    development = SecretBox.from_settings(make_settings(secrets_keys=None))
    again = SecretBox.from_settings(make_settings(secrets_keys=None))
    # Restarting keeps a development database readable.
    assert again.open(development.seal("x", P), P) == "x"
    with pytest.raises(SecretsMisconfigured):
        SecretBox.from_settings(make_settings(environment="production", secrets_keys=None))


async def _opco(session: AsyncSession) -> None:
    """The provider these tests store secrets of (nothing is ever fetched from it)."""
    await register_provider(
        session,
        slug="opco",
        name="Op Co",
        adapter="gbfs",
        config={"discovery_url": "http://127.0.0.1:9/gbfs.json"},
    )


async def _raw(runtime: Runtime, sql: str, **params: Any) -> Any:
    async with runtime.sessions() as session:
        return (await session.execute(text(sql), params)).scalar_one()


async def test_stored_secrets_are_sealed_in_the_database_and_plain_to_the_application(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    from app.fleet import webhooks
    from app.fleet.outbox import EventType
    from tests.app.test_webhooks import admin_of

    org = await organisation(runtime)
    async with transaction(runtime.sessions) as session:
        endpoint, webhook_secret = await webhooks.register_endpoint(
            session,
            admin_of(org),
            "https://hooks.example.org/in",
            [EventType.BOOKING_CONFIRMED],
            settings=runtime.settings,
        )
        await _opco(session)
        await admin.set_credentials(
            session, "opco", "bearer_token", {"token": "tok-very-secret-123"}
        )
        provider = await admin._get(session, "opco")
        provider.ingest_secret = "whsec_push_secret_1"

    stored_hook = await _raw(
        runtime, "SELECT secret FROM webhook_endpoints WHERE id = :i", i=endpoint.id
    )
    stored_push = await _raw(runtime, "SELECT ingest_secret FROM providers WHERE id = 'opco'")
    stored_creds = await _raw(
        runtime, "SELECT secret FROM provider_credentials WHERE provider_id = 'opco'"
    )
    for stored, plain in (
        (stored_hook, webhook_secret),
        (stored_push, "whsec_push_secret_1"),
        (orjson.dumps(stored_creds).decode(), "tok-very-secret-123"),
    ):
        assert "sb1:" in stored and plain not in stored

    async with runtime.sessions() as session:
        credentials = await admin.credentials_for(session, "opco")
    assert credentials == BearerToken("tok-very-secret-123")
    assert await runtime.push.credentials("opco") == ("whsec_push_secret_1", True)


async def test_reseal_seals_plain_values_then_rotates_to_a_new_key(runtime: Runtime) -> None:
    org = await organisation(runtime)
    endpoint_id = uuid.uuid4()
    plain_creds = {"token": "legacy-plain-token"}
    async with transaction(runtime.sessions) as session:
        await _opco(session)
        # Stored before sealing existed: plain text, written with SQL.
        await session.execute(
            text("UPDATE providers SET ingest_secret = 'whsec_legacy' WHERE id = 'opco'")
        )
        await session.execute(
            text(
                "INSERT INTO provider_credentials (provider_id, kind, secret) "
                "VALUES ('opco', 'bearer_token', CAST(:s AS jsonb))"
            ),
            {"s": orjson.dumps(plain_creds).decode()},
        )
        await session.execute(
            text(
                "INSERT INTO webhook_endpoints (id, organisation_id, url, secret, events, enabled)"
                " VALUES (:i, :o, 'https://hooks.example.org/x', 'whsec_legacy_hook', "
                "ARRAY['booking.confirmed'], true)"
            ),
            {"i": endpoint_id, "o": org},
        )

    async def stored() -> list[str]:
        return [
            await _raw(runtime, "SELECT ingest_secret FROM providers WHERE id = 'opco'"),
            orjson.dumps(await _raw(runtime, "SELECT secret FROM provider_credentials")).decode(),
            await _raw(
                runtime, "SELECT secret FROM webhook_endpoints WHERE id = :i", i=endpoint_id
            ),
        ]

    first = box(KEY_A)
    async with transaction(runtime.sessions) as session:
        counts = await secret_box.reseal_all(session, first)
    assert sum(counts.values()) == 3
    after_first = await stored()
    assert all(f"sb1:{first.sealing_key_id}:" in value for value in after_first)
    assert not any("legacy" in value for value in after_first)

    # Nothing left to do with the same key.
    async with transaction(runtime.sessions) as session:
        assert sum((await secret_box.reseal_all(session, first)).values()) == 0

    # Rotation: the new key first, the old one after it; reseal; then the old key can go.
    rotated = box(KEY_B, KEY_A)
    async with transaction(runtime.sessions) as session:
        assert sum((await secret_box.reseal_all(session, rotated)).values()) == 3
    only_new = box(KEY_B)
    values = await stored()
    assert only_new.open(values[0], "providers.ingest_secret") == "whsec_legacy"
    sealed_creds = orjson.loads(values[1])["sealed"]
    assert orjson.loads(only_new.open(sealed_creds, "provider_credentials.secret")) == plain_creds
    assert only_new.open(values[2], "webhook_endpoints.secret") == "whsec_legacy_hook"


async def test_reseal_from_the_command_line_and_a_missing_key_is_a_clear_error(
    runtime: Runtime,
) -> None:
    async with transaction(runtime.sessions) as session:
        await _opco(session)
        await session.execute(
            text("UPDATE providers SET ingest_secret = 'whsec_cli' WHERE id = 'opco'")
        )
    code, out, err = await mobility(runtime, "secrets", "new-key")
    assert code == 0, err
    key = out.strip()
    assert SecretBox.from_settings(make_settings(secrets_keys=key)).sealing_key_id

    code, out, err = await mobility(
        runtime, "secrets", "reseal", env={"MOBILITY_SECRETS_KEYS": key}
    )
    assert code == 0, err
    assert "providers.ingest_secret: 1 of 1 re-sealed" in out
    value = await _raw(runtime, "SELECT ingest_secret FROM providers WHERE id = 'opco'")
    assert box(key).open(value, "providers.ingest_secret") == "whsec_cli"

    # Sealed with a key the deployment no longer lists: said so, and nothing is changed.
    code, _, err = await mobility(
        runtime, "secrets", "reseal", env={"MOBILITY_SECRETS_KEYS": KEY_B}
    )
    assert code != 0
    assert "does not list" in err
    assert await _raw(runtime, "SELECT ingest_secret FROM providers WHERE id = 'opco'") == value


async def test_an_unreadable_push_secret_breaks_neither_listing_nor_search(
    runtime: Runtime, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Sealed with a key this deployment lost: pushes for that provider are refused with a
    503 naming the problem; everything else about the provider keeps working."""
    async with transaction(runtime.sessions) as session:
        await _opco(session)
        lost = box(KEY_B).seal("whsec_lost", secret_box.INGEST_SECRET_PURPOSE)
        await session.execute(
            text("UPDATE providers SET ingest_secret = :s WHERE id = 'opco'"), {"s": lost}
        )
    runtime.reference.invalidate()
    answer = (await api.post("/graphql", json={"query": "{ providers { id name } }"})).json()
    assert answer["data"]["providers"] == [{"id": "opco", "name": "Op Co"}], answer
    ingest_api._unreadable_logged.clear()  # this process may have told it for "opco" already
    with caplog.at_level(logging.ERROR, logger="app.rest.ingest"):
        for _ in range(5):  # unauthenticated callers: each refused, the log told once
            response = await api.post(
                "/ingest/opco/vehicles",
                content=b"{}",
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "SECRET_UNREADABLE"
    told = [r for r in caplog.records if "push for opco refused" in r.getMessage()]
    assert len(told) == 1, [r.getMessage() for r in caplog.records]


async def test_strict_mode_refuses_plain_operator_credentials_and_new_ones_replace_them(
    runtime: Runtime,
) -> None:
    """REQUIRE_SEALED covers the JSON column too; and credentials that cannot be opened
    (written behind our back, or sealed with a key no longer listed) can be replaced without
    being opened first."""
    async with transaction(runtime.sessions) as session:
        await _opco(session)
        await session.execute(
            text(
                "INSERT INTO provider_credentials (provider_id, kind, secret) "
                "VALUES ('opco', 'bearer_token', CAST(:s AS jsonb))"
            ),
            {"s": orjson.dumps({"token": "attacker-chosen"}).decode()},
        )
    secret_box.configure(make_settings(secrets_keys=KEY_A, secrets_require_sealed=True))
    try:
        async with runtime.sessions() as session:
            with pytest.raises(SecretUnreadable, match="not sealed"):
                await admin.credentials_for(session, "opco")
        async with transaction(runtime.sessions) as session:
            await admin.set_credentials(session, "opco", "bearer_token", {"token": "tok-new-1"})
        async with runtime.sessions() as session:
            assert await admin.credentials_for(session, "opco") == BearerToken("tok-new-1")
        # Sealed with a key that is then dropped: unreadable, and still replaceable.
        secret_box.configure(make_settings(secrets_keys=KEY_B))
        async with runtime.sessions() as session:
            with pytest.raises(SecretUnreadable, match="does not list"):
                await admin.credentials_for(session, "opco")
        async with transaction(runtime.sessions) as session:
            await admin.set_credentials(session, "opco", "bearer_token", {"token": "tok-new-2"})
        async with runtime.sessions() as session:
            assert await admin.credentials_for(session, "opco") == BearerToken("tok-new-2")
    finally:
        secret_box.configure(runtime.settings)
