"""Provider health: the status rules on their own, then as GraphQL reports them and as search
applies them (stale providers' vehicles hidden, from the Redis index and from PostGIS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.health import HealthStatus, SyncRecord, health_status
from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.conftest import make_settings
from tests.graphql.test_search_api import gql
from tests.helpers import add_conformance_provider, age_last_success

SETTINGS = make_settings(stale_after_seconds=600, provider_down_after_failures=3)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _record(
    *, enabled: bool = True, age: float | None = 10, failures: int = 0, errors: int = 0
) -> SyncRecord:
    at = None if age is None else NOW - timedelta(seconds=age)
    return SyncRecord(
        enabled=enabled, last_success_at=at, consecutive_failures=failures, latest_errors=errors
    )


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (_record(), HealthStatus.OK),
        (_record(age=600), HealthStatus.OK),  # exactly at the limit: still fresh
        (_record(errors=2), HealthStatus.DEGRADED),
        (_record(failures=1), HealthStatus.DEGRADED),
        (_record(failures=5), HealthStatus.DEGRADED),  # failing, but the data is still fresh
        (_record(age=600.5), HealthStatus.STALE),
        (_record(age=None), HealthStatus.STALE),  # never synced successfully
        (_record(age=None, failures=2), HealthStatus.STALE),
        (_record(age=None, failures=3), HealthStatus.DOWN),
        (_record(age=4000, failures=3), HealthStatus.DOWN),
        (_record(enabled=False, age=4000, failures=9), HealthStatus.DISABLED),
    ],
)
def test_health_status_rules(record: SyncRecord, expected: HealthStatus) -> None:
    assert health_status(record, SETTINGS, NOW) is expected


HEALTH = """{ providers { id health { status lastSyncAt lastSuccessAt lastError
  consecutiveFailures nextSyncAt dataAgeSeconds staleAfterSeconds
  validation { errors warnings sample { severity code feed message recordId } } } } }"""
NEAR = "near: {lat: 58.97, lon: 5.73, radiusMeters: 5000}"


async def _health(api: httpx.AsyncClient) -> dict[str, Any]:
    body = await gql(api, HEALTH)
    assert "errors" not in body, body
    (provider,) = body["data"]["providers"]
    health: dict[str, Any] = provider["health"]
    return health


async def _vehicle_ids(api: httpx.AsyncClient, *, include_reserved: bool) -> set[str]:
    flt = "{includeReserved: true}" if include_reserved else "{}"
    body = await gql(api, f"{{ vehicles({NEAR}, first: 200, filter: {flt}) {{ id }} }}")
    assert "errors" not in body, body
    return {v["id"] for v in body["data"]["vehicles"]}


async def test_health_in_graphql_and_stale_vehicles_hidden_from_search(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    report = await runtime.sync.sync(slug)
    assert report.ok

    health = await _health(api)
    async with runtime.engine.connect() as conn:
        run = (
            await conn.execute(
                text(
                    "SELECT error_count, warning_count, findings FROM sync_runs "
                    "WHERE provider_id = :p ORDER BY started_at DESC LIMIT 1"
                ),
                {"p": slug},
            )
        ).one()
    expected_status = "DEGRADED" if run.error_count else "OK"
    assert health["status"] == expected_status
    assert health["consecutiveFailures"] == 0 and health["lastError"] is None
    assert 0 <= health["dataAgeSeconds"] < 60
    assert health["validation"]["errors"] == run.error_count
    assert health["validation"]["warnings"] == run.warning_count
    assert [f["code"] for f in health["validation"]["sample"]] == [
        f["code"] for f in run.findings[:5]
    ]
    from_index = await _vehicle_ids(api, include_reserved=False)
    from_postgis = await _vehicle_ids(api, include_reserved=True)
    assert from_index and from_postgis >= from_index

    # A failed sync with the data still fresh: DEGRADED, and the vehicles stay.
    server.fail(f"/{slug}/vehicle_status.json", 503)
    assert not (await runtime.sync.sync(slug)).ok
    health = await _health(api)
    assert health["status"] == "DEGRADED"
    assert health["consecutiveFailures"] == 1 and "503" in health["lastError"]
    assert await _vehicle_ids(api, include_reserved=False) == from_index

    # The last good data is now older than the limit: STALE, and search shows none of it,
    # whichever store answers (the providers cache lives 2 s: start it afresh, as after 2 s).
    limit = runtime.settings.stale_after_seconds
    await age_last_success(runtime, slug, limit + 5)
    runtime.search._enabled_at = float("-inf")
    health = await _health(api)
    assert health["status"] == "STALE"
    assert health["dataAgeSeconds"] == pytest.approx(limit + 5, abs=30)
    assert await _vehicle_ids(api, include_reserved=False) == set()
    assert await _vehicle_ids(api, include_reserved=True) == set()
    # Nor by id.
    some_id = sorted(from_index)[0]
    lookup = f'{{ vehicle(id: "{some_id}") {{ id }} }}'
    assert (await gql(api, lookup))["data"]["vehicle"] is None

    # Failing for good: DOWN.
    for _ in range(2):
        assert not (await runtime.sync.sync(slug)).ok
    assert (await _health(api))["status"] == "DOWN"

    # The operator answers again: fresh, OK or DEGRADED by its findings, vehicles back.
    server.reset()
    assert (await runtime.sync.sync(slug)).ok
    runtime.search._enabled_at = float("-inf")
    assert (await _health(api))["status"] == expected_status
    assert await _vehicle_ids(api, include_reserved=False) == from_index
    assert (await gql(api, lookup))["data"]["vehicle"] == {"id": some_id}

    async with runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE providers SET enabled = false WHERE id = :p"), {"p": slug})
    assert (await _health(api))["status"] == "DISABLED"


async def test_stale_vehicles_are_served_when_hiding_is_off(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    assert (await runtime.sync.sync(slug)).ok
    await age_last_success(runtime, slug, 86_400)
    runtime.search._enabled_at = float("-inf")
    assert await _vehicle_ids(api, include_reserved=False) == set()
    runtime.settings.hide_stale_vehicles = False
    try:
        runtime.search._enabled_at = float("-inf")
        assert await _vehicle_ids(api, include_reserved=False)
        assert await _vehicle_ids(api, include_reserved=True)
    finally:
        runtime.settings.hide_stale_vehicles = True


async def test_health_of_many_providers_is_read_per_provider(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    ok = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    failing = await add_conformance_provider(runtime, server, base_url, "tier-wolfsburg")
    assert (await runtime.sync.sync(ok)).ok
    assert (await runtime.sync.sync(failing)).ok
    server.fail(f"/{failing}/free_bike_status.json", 500)
    for _ in range(2):
        assert not (await runtime.sync.sync(failing)).ok
    body = await gql(api, "{ providers { id health { consecutiveFailures lastError } } }")
    assert "errors" not in body, body
    health = {p["id"]: p["health"] for p in body["data"]["providers"]}
    assert health[ok] == {"consecutiveFailures": 0, "lastError": None}
    assert health[failing]["consecutiveFailures"] == 2
    assert "500" in health[failing]["lastError"]
