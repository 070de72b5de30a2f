"""Operator credentials set by staff reach the operator: API key, bearer token, OAuth2."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from app.platform.db import transaction
from app.runtime import Runtime
from providers import admin
from providers.simulators.feed_server import FeedServer, serve_in_background
from tests.helpers import add_conformance_provider, feed_dir

FOLDER = "lillestrom-bysykkel"


async def _set(
    runtime: Runtime, slug: str, kind: str | None, values: dict[str, Any] | None
) -> None:
    async with transaction(runtime.sessions) as session:
        await admin.set_credentials(session, slug, kind, values)


async def _last_error(runtime: Runtime, slug: str) -> str | None:
    async with runtime.sessions() as session:
        last_error: str | None = (
            await session.execute(
                text("SELECT last_error FROM providers WHERE id = :p"), {"p": slug}
            )
        ).scalar_one()
        return last_error


async def test_an_api_key_header_opens_a_protected_feed(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    server.require_headers(f"/{slug}/", {"X-Api-Key": "k-123"})

    report = await runtime.sync.sync(slug)
    assert not report.ok and report.error is not None and "HTTP 401" in report.error

    await _set(runtime, slug, "api_key", {"header": "X-Api-Key", "value": "k-123"})
    refused = sum(server.refused_requests.values())
    report = await runtime.sync.sync(slug)
    assert report.ok, report.error
    assert sum(server.refused_requests.values()) == refused  # every file was let in

    # Staff change the key: the next sync sends the new one, not a cached copy of the old.
    server.require_headers(f"/{slug}/", {"X-Api-Key": "k-456"})
    await _set(runtime, slug, "api_key", {"header": "X-Api-Key", "value": "k-456"})
    runtime.sync._caches.clear()  # no conditional GETs: every file is requested again
    report = await runtime.sync.sync(slug)
    assert report.ok, report.error


async def test_a_bearer_token_and_its_removal(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    server.require_headers(f"/{slug}/", {"Authorization": "Bearer tok-1"})
    await _set(runtime, slug, "bearer_token", {"token": "tok-1"})
    assert (await runtime.sync.sync(slug)).ok

    await _set(runtime, slug, None, None)
    runtime.sync._caches.clear()
    report = await runtime.sync.sync(slug)
    assert not report.ok and report.error is not None and "HTTP 401" in report.error


async def test_oauth2_client_credentials_fetch_one_token_and_renew_it_when_refused(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    server.add_oauth2_token_endpoint("/oauth/token", client_id="agg", client_secret="shh")
    server.require_oauth2(f"/{slug}/")
    await _set(
        runtime,
        slug,
        "oauth2_client_credentials",
        {"token_url": f"{base_url}/oauth/token", "client_id": "agg", "client_secret": "shh"},
    )

    assert (await runtime.sync.sync(slug)).ok
    # One token for every file of the sync, and for the next sync too (it has not expired).
    assert len(server.issued_tokens) == 1
    runtime.sync._caches.clear()
    assert (await runtime.sync.sync(slug)).ok
    assert len(server.issued_tokens) == 1

    # The operator revokes it early: the 401 leads to one fresh token, and the sync succeeds.
    server.revoke_tokens()
    runtime.sync._caches.clear()
    report = await runtime.sync.sync(slug)
    assert report.ok, report.error
    assert len(server.issued_tokens) == 1


async def test_wrong_oauth2_client_secret_fails_without_showing_it(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    server.add_oauth2_token_endpoint("/oauth/token", client_id="agg", client_secret="right")
    server.require_oauth2(f"/{slug}/")
    await _set(
        runtime,
        slug,
        "oauth2_client_credentials",
        {
            "token_url": f"{base_url}/oauth/token",
            "client_id": "agg",
            "client_secret": "wr0ng-s3cret",
        },
    )
    report = await runtime.sync.sync(slug)
    assert not report.ok
    error = await _last_error(runtime, slug)
    assert error is not None and "OAuth2 token endpoint answered HTTP 401" in error
    assert "wr0ng-s3cret" not in error and "wr0ng-s3cret" not in repr(runtime.sync._auths)


async def test_credentials_follow_a_redirect_only_within_the_operator_s_origin(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    await _set(runtime, slug, "api_key", {"header": "X-Api-Key", "value": "k-789"})
    status = f"/{slug}/station_status.json"
    moved = f"/{slug}/moved/station_status.json"
    body = (feed_dir(FOLDER) / "station_status.json").read_bytes()

    # Same origin: the key goes along.
    server.add_static(moved, body)
    server.redirect(status, moved)
    assert (await runtime.sync.sync(slug)).ok
    assert server.last_headers[moved].get("x-api-key") == "k-789"

    # Another host (a CDN): the file is fetched, the key stays home.
    cdn = FeedServer()
    async with serve_in_background(cdn.app) as cdn_url:
        cdn.add_static("/cdn/station_status.json", body)
        server.redirect(status, f"{cdn_url}/cdn/station_status.json")
        runtime.sync._caches.clear()
        report = await runtime.sync.sync(slug)
        assert report.ok, report.error
        assert cdn.request_counts["/cdn/station_status.json"] == 1
        assert "x-api-key" not in cdn.last_headers["/cdn/station_status.json"]
