"""Fault injection: a local feed server misbehaves on one provider's feed while another provider
keeps syncing. Every fault fails the sync with a clear error on the provider, writes nothing,
keeps the last good data searchable, and leaves the healthy provider's syncs unaffected."""

from __future__ import annotations

import asyncio
import contextlib
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from adapters.http import FeedCache, FeedFetchError, fetch_json, parse_retry_after
from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from providers.sync import SyncEngine, SyncReport
from tests.conftest import make_settings
from tests.helpers import add_conformance_provider, feed_dir, member_names, raw

FAULTY = "getaround-stavanger"  # its vehicles come from vehicle_status.json
FAULTY_FEED = f"/{FAULTY}/vehicle_status.json"
HEALTHY = "lillestrom-bysykkel"
MB = 1024 * 1024


@dataclass
class Scene:
    runtime: Runtime
    server: FeedServer
    base_url: str
    engine: SyncEngine


@contextlib.asynccontextmanager
async def engine_with(runtime: Runtime, **settings: Any) -> AsyncIterator[SyncEngine]:
    """A sync engine over the test database and index with its own settings and HTTP client,
    built the way the runtime builds its own."""
    configured = make_settings(**settings)
    timeout = httpx.Timeout(configured.sync_http_timeout_seconds)
    async with httpx.AsyncClient(timeout=timeout) as http:
        yield SyncEngine(
            sessions=runtime.sessions, index=runtime.index, http=http, settings=configured
        )


async def prepared(
    runtime: Runtime, feed_server: tuple[FeedServer, str], engine: SyncEngine
) -> Scene:
    """Both providers registered; the faulty one has good data from a first sync."""
    server, base_url = feed_server
    await add_conformance_provider(runtime, server, base_url, FAULTY)
    await add_conformance_provider(runtime, server, base_url, HEALTHY)
    first = await engine.sync(FAULTY)
    assert first.ok, first.error
    return Scene(runtime, server, base_url, engine)


async def stored(runtime: Runtime, provider_id: str) -> dict[str, Any]:
    """Every stored row of the provider with its row version (xmin), and its indexed vehicles:
    equal before and after means nothing was written."""
    out: dict[str, Any] = {}
    async with runtime.sessions() as session:
        for table in ("vehicles", "vehicle_types", "pricing_plans"):
            rows = await session.execute(
                text(f"SELECT id, xmin::text FROM {table} WHERE provider_id = :p ORDER BY id"),
                {"p": provider_id},
            )
            out[table] = [tuple(r) for r in rows]
    members = await runtime.redis.smembers(runtime.keys.provider_members(provider_id))
    out["indexed"] = member_names(members)
    return out


@dataclass
class Outcome:
    faulty: SyncReport
    healthy: list[SyncReport]
    healthy_done_while_faulty_ran: int
    seconds: float


async def sync_with_a_healthy_neighbour(scene: Scene) -> Outcome:
    """Sync the faulty provider while the healthy one is synced over and over alongside."""
    started = time.monotonic()
    faulty = asyncio.create_task(scene.engine.sync(FAULTY))
    healthy: list[SyncReport] = []
    during = 0
    while True:  # at least one healthy sync, then as many as fit while the faulty one runs
        healthy.append(await scene.engine.sync(HEALTHY))
        if faulty.done():
            break
        during += 1
    report = await faulty
    return Outcome(report, healthy, during, time.monotonic() - started)


async def assert_failed_cleanly(scene: Scene, outcome: Outcome, before: dict[str, Any]) -> None:
    report = outcome.faulty
    assert not report.ok
    assert report.error
    async with scene.runtime.sessions() as session:
        provider = (
            await session.execute(
                text("SELECT stale, last_error, consecutive_failures FROM providers WHERE id = :p"),
                {"p": FAULTY},
            )
        ).one()
    assert (provider.stale, provider.last_error, provider.consecutive_failures) == (
        True,
        report.error,
        1,
    )
    assert await stored(scene.runtime, FAULTY) == before
    stations = len(raw(HEALTHY, "station_information")["data"]["stations"])
    assert all(r.ok for r in outcome.healthy), [
        (r.error, r.skipped, r.phases) for r in outcome.healthy if not r.ok
    ]
    async with scene.runtime.sessions() as session:
        stored_stations = (
            await session.execute(
                text("SELECT count(*) FROM stations WHERE provider_id = :p"), {"p": HEALTHY}
            )
        ).scalar_one()
    assert stored_stations == stations


# --- hangs ---------------------------------------------------------------------------------------


async def test_hanging_feed_fails_on_the_http_timeout(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    async with engine_with(
        runtime, sync_http_timeout_seconds=1.0, sync_deadline_seconds=60.0
    ) as engine:
        scene = await prepared(runtime, feed_server, engine)
        before = await stored(runtime, FAULTY)
        scene.server.hang(FAULTY_FEED)

        outcome = await sync_with_a_healthy_neighbour(scene)

    await assert_failed_cleanly(scene, outcome, before)
    assert outcome.faulty.error == f"timed out fetching {scene.base_url}{FAULTY_FEED}"
    assert outcome.seconds < 10
    assert outcome.healthy_done_while_faulty_ran >= 1


async def test_hanging_feed_fails_on_the_sync_deadline(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    async with engine_with(
        runtime, sync_http_timeout_seconds=60.0, sync_deadline_seconds=2.0
    ) as engine:
        scene = await prepared(runtime, feed_server, engine)
        before = await stored(runtime, FAULTY)
        scene.server.hang(FAULTY_FEED)

        outcome = await sync_with_a_healthy_neighbour(scene)

    await assert_failed_cleanly(scene, outcome, before)
    assert outcome.faulty.error == "sync deadline of 2s exceeded"
    assert outcome.seconds < 10
    assert outcome.healthy_done_while_faulty_ran >= 1


async def test_trickling_feed_is_stopped_by_the_deadline_not_the_read_timeout(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    # Each chunk arrives well within the 1 s read timeout; only the overall deadline can end it.
    async with engine_with(
        runtime, sync_http_timeout_seconds=1.0, sync_deadline_seconds=2.0
    ) as engine:
        scene = await prepared(runtime, feed_server, engine)
        before = await stored(runtime, FAULTY)
        scene.server.trickle(FAULTY_FEED, chunk_bytes=64, interval_seconds=0.1)

        outcome = await sync_with_a_healthy_neighbour(scene)

    await assert_failed_cleanly(scene, outcome, before)
    assert outcome.faulty.error == "sync deadline of 2s exceeded"
    assert outcome.seconds < 10
    # Bytes kept arriving: it was a slow body, not a silent connection.
    assert scene.server.streamed_bytes[FAULTY_FEED] > 64


# --- error statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_fails_the_sync(
    runtime: Runtime, feed_server: tuple[FeedServer, str], status: int
) -> None:
    scene = await prepared(runtime, feed_server, runtime.sync)
    before = await stored(runtime, FAULTY)
    scene.server.fail(FAULTY_FEED, status)

    outcome = await sync_with_a_healthy_neighbour(scene)

    await assert_failed_cleanly(scene, outcome, before)
    assert outcome.faulty.error == f"HTTP {status} from {scene.base_url}{FAULTY_FEED}"
    assert outcome.faulty.retry_after_seconds is None


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_in_seconds_is_reported(
    runtime: Runtime, feed_server: tuple[FeedServer, str], status: int
) -> None:
    scene = await prepared(runtime, feed_server, runtime.sync)
    before = await stored(runtime, FAULTY)
    scene.server.fail(FAULTY_FEED, status, headers={"Retry-After": "120"})

    outcome = await sync_with_a_healthy_neighbour(scene)

    await assert_failed_cleanly(scene, outcome, before)
    assert outcome.faulty.retry_after_seconds == 120.0
    assert outcome.faulty.error == (
        f"HTTP {status} from {scene.base_url}{FAULTY_FEED} (the operator asks to retry after 120s)"
    )


async def test_retry_after_as_an_http_date_is_reported_in_seconds(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    scene = await prepared(runtime, feed_server, runtime.sync)
    before = await stored(runtime, FAULTY)
    until = time.time() + 90
    scene.server.fail(FAULTY_FEED, 429, headers={"Retry-After": formatdate(until, usegmt=True)})

    outcome = await sync_with_a_healthy_neighbour(scene)

    await assert_failed_cleanly(scene, outcome, before)
    # HTTP dates have whole seconds, and the sync took a moment: within a few seconds of 90.
    assert outcome.faulty.retry_after_seconds == pytest.approx(90, abs=5)


async def test_retry_after_on_a_plain_server_error_is_not_a_rate_limit(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    scene = await prepared(runtime, feed_server, runtime.sync)
    scene.server.fail(FAULTY_FEED, 500, headers={"Retry-After": "120"})

    outcome = await sync_with_a_healthy_neighbour(scene)

    assert not outcome.faulty.ok
    assert outcome.faulty.retry_after_seconds is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-3", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Thu, 01 Jan 2026 00:02:00 GMT", 120.0),
        ("Wed, 31 Dec 2025 23:00:00 GMT", 0.0),  # already past: retry now
    ],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    new_year_2026 = 1_767_225_600.0
    assert parse_retry_after(value, now=new_year_2026) == expected


# --- bodies --------------------------------------------------------------------------------------


async def test_truncated_json_fails_the_sync(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    scene = await prepared(runtime, feed_server, runtime.sync)
    before = await stored(runtime, FAULTY)
    original = (feed_dir(FAULTY) / "vehicle_status.json").read_bytes()
    scene.server.set_body(FAULTY_FEED, original[: len(original) // 2])

    outcome = await sync_with_a_healthy_neighbour(scene)

    await assert_failed_cleanly(scene, outcome, before)
    assert (outcome.faulty.error or "").startswith(
        f"unparseable JSON from {scene.base_url}{FAULTY_FEED}"
    )


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
async def test_fifty_megabyte_feed_is_refused_past_the_size_cap(
    runtime: Runtime, feed_server: tuple[FeedServer, str], declare_length: bool
) -> None:
    scene = await prepared(runtime, feed_server, runtime.sync)
    before = await stored(runtime, FAULTY)
    size = 50 * MB
    cap = runtime.settings.sync_max_feed_bytes
    scene.server.oversize(FAULTY_FEED, size, declare_length=declare_length)

    outcome = await sync_with_a_healthy_neighbour(scene)

    await assert_failed_cleanly(scene, outcome, before)
    detail = f"declares {size} bytes" if declare_length else "sent more"
    assert outcome.faulty.error == (
        f"feed {scene.base_url}{FAULTY_FEED} is larger than the {cap}-byte limit ({detail}); "
        "refused"
    )
    # The client hung up early: the server never got to produce the whole body.
    assert scene.server.streamed_bytes[FAULTY_FEED] < size


async def test_oversized_feed_is_refused_without_holding_it_in_memory(
    feed_server: tuple[FeedServer, str],
) -> None:
    server, base_url = feed_server
    server.oversize("/big.json", 50 * MB, declare_length=False)
    async with httpx.AsyncClient(timeout=10.0) as client:
        tracemalloc.start()
        try:
            with pytest.raises(FeedFetchError, match="larger than the 1048576-byte limit"):
                await fetch_json(client, f"{base_url}/big.json", FeedCache(), max_bytes=1 * MB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # Reading it all would take 50 MB; a bounded read holds about the cap (and a few buffers).
    assert peak < 10 * MB


async def test_html_error_page_is_refused(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    scene = await prepared(runtime, feed_server, runtime.sync)
    before = await stored(runtime, FAULTY)
    page = b"<!doctype html><html><body><h1>We'll be back soon</h1></body></html>"
    scene.server.set_body(FAULTY_FEED, page, content_type="text/html; charset=utf-8")

    outcome = await sync_with_a_healthy_neighbour(scene)

    await assert_failed_cleanly(scene, outcome, before)
    assert outcome.faulty.error == (
        f"{scene.base_url}{FAULTY_FEED} answered with content type text/html, not JSON "
        "(an error or login page?)"
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "text/json",
        "application/octet-stream",
        "text/plain",
        None,
    ],
)
async def test_json_under_a_generic_or_missing_content_type_is_accepted(
    runtime: Runtime, feed_server: tuple[FeedServer, str], content_type: str | None
) -> None:
    scene = await prepared(runtime, feed_server, runtime.sync)
    original = (feed_dir(FAULTY) / "vehicle_status.json").read_bytes()
    scene.server.set_body(FAULTY_FEED, original, content_type=content_type)
    runtime.sync._caches.clear()  # a real refetch, not a revalidation

    report = await runtime.sync.sync(FAULTY)

    assert report.ok, report.error
    assert scene.server.request_counts[FAULTY_FEED] == 2
    assert scene.server.not_modified_counts[FAULTY_FEED] == 0
