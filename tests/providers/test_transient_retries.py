"""A transient blip on one feed file is retried within the sync; what the operator meant is not."""

from __future__ import annotations

import pytest

from adapters.http import DEFAULT_ATTEMPTS
from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.helpers import add_conformance_provider

FOLDER = "lillestrom-bysykkel"


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_blip_shorter_than_the_attempts_does_not_fail_the_sync(
    runtime: Runtime, feed_server: tuple[FeedServer, str], status: int
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    path = f"/{slug}/station_status.json"
    server.fail(path, status, times=DEFAULT_ATTEMPTS - 1)
    report = await runtime.sync.sync(slug)
    assert report.ok, report.error
    assert server.request_counts[path] == DEFAULT_ATTEMPTS


async def test_a_lasting_failure_fails_after_the_attempts(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    path = f"/{slug}/station_status.json"
    server.fail(path, 503)
    report = await runtime.sync.sync(slug)
    assert not report.ok and report.error is not None and "HTTP 503" in report.error
    assert server.request_counts[path] == DEFAULT_ATTEMPTS


@pytest.mark.parametrize(
    ("status", "headers"),
    [(404, {}), (500, {}), (401, {}), (429, {}), (503, {"Retry-After": "30"})],
)
async def test_what_the_operator_meant_is_not_retried(
    runtime: Runtime,
    feed_server: tuple[FeedServer, str],
    status: int,
    headers: dict[str, str],
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    path = f"/{slug}/station_status.json"
    server.fail(path, status, headers=headers, times=1)
    report = await runtime.sync.sync(slug)
    assert not report.ok
    assert server.request_counts[path] == 1
