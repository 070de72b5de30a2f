"""A `mobility worker` stopped with SIGTERM mid-sync (app/commands/worker.py): within the grace
it finishes the sync and acknowledges the task; past the grace it leaves the task
unacknowledged in the stream, for another worker to claim. Either way it exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import text

from app.runtime import Runtime
from app.task_queue import CONSUMER_GROUP, running_broker
from providers.dispatch import claim_due
from providers.simulators.feed_server import FeedServer
from providers.tasks import kicker
from tests.helpers import add_conformance_provider
from tests.processes import mobility_process, wait_for

FOLDER = "lillestrom-bysykkel"
SLOW_SECONDS = 4.0
WITHIN_SECONDS = 60.0


async def _run_states(runtime: Runtime, provider_id: str) -> list[str]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text("SELECT status FROM sync_runs WHERE provider_id = :p"), {"p": provider_id}
        )
        return [str(r.status) for r in rows]


async def _unacknowledged(runtime: Runtime) -> int:
    summary = await runtime.redis.xpending(runtime.keys.task_stream, CONSUMER_GROUP)
    return int(summary["pending"])


@pytest.mark.parametrize("finishes", [True, False], ids=["within-the-grace", "past-the-grace"])
async def test_sigterm_mid_sync(
    runtime: Runtime, feed_server: tuple[FeedServer, str], tmp_path: Path, finishes: bool
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    slow_path = f"/{slug}/station_status.json"
    server.delay(slow_path, SLOW_SECONDS)
    log = tmp_path / "worker.log"
    grace = "20" if finishes else "1"
    with mobility_process(
        ["worker"],
        runtime.settings,
        log,
        MOBILITY_SHUTDOWN_GRACE_SECONDS=grace,
        MOBILITY_SYNC_DEADLINE_SECONDS="30",
        MOBILITY_SYNC_HTTP_TIMEOUT_SECONDS="20",
    ) as proc:
        [claim] = await claim_due(runtime.sessions, runtime.settings, limit=1)
        async with running_broker(runtime.settings) as broker:
            await kicker(broker)(claim.provider_id, claim.token)

        async def fetching_the_slow_feed() -> bool:
            return server.request_counts[slow_path] > 0

        await wait_for(fetching_the_slow_feed, WITHIN_SECONDS, "the sync to start", [log])
        os.kill(proc.pid, signal.SIGTERM)
        exit_code = await asyncio.to_thread(proc.wait, WITHIN_SECONDS)

    assert exit_code == 0, log.read_text()[-3000:]
    if finishes:
        assert await _run_states(runtime, slug) == ["succeeded"]
        assert await _unacknowledged(runtime) == 0
    else:
        assert "succeeded" not in await _run_states(runtime, slug)
        # Left in the stream for another worker (it claims it once idle for the lease).
        assert await _unacknowledged(runtime) == 1
