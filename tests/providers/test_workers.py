"""Queued syncs run by real `mobility worker` processes; a worker killed mid-sync loses nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import text

from app.platform.settings import Settings
from app.runtime import Runtime
from app.task_queue import build_broker
from providers.scheduler import QueueDispatcher, Scheduler
from providers.simulators.feed_server import FeedServer
from providers.tasks import kicker
from tests.conftest import make_settings
from tests.helpers import add_conformance_provider, feed_dir
from tests.processes import kill_group, mobility_process, wait_for

FOLDER = "lillestrom-bysykkel"
LEASE_SECONDS = 4.0


@contextmanager
def worker_process(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with mobility_process(["worker"], settings, log) as proc:
        yield proc


@asynccontextmanager
async def queue_scheduler(runtime: Runtime, settings: Settings) -> AsyncIterator[Scheduler]:
    broker = build_broker(settings)
    await broker.startup()
    scheduler = Scheduler(
        runtime.sync, settings, QueueDispatcher(kicker(broker), runtime.sync), tick_seconds=0.2
    )
    scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.stop()
        await broker.shutdown()


async def _runs(runtime: Runtime, slug: str) -> list[tuple[str, bool]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT status, finished_at IS NOT NULL AS finished FROM sync_runs"
                " WHERE provider_id = :p ORDER BY id"
            ),
            {"p": slug},
        )
        return [(r.status, r.finished) for r in rows]


async def test_a_worker_killed_mid_sync_loses_nothing_and_syncs_once(
    runtime: Runtime, feed_server: tuple[FeedServer, str], tmp_path: Path
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    # The healthy cadence is long: any second successful run here would be a duplicate.
    settings = make_settings(
        sync_dispatch="queue", sync_claim_lease_seconds=LEASE_SECONDS, sync_min_interval_seconds=600
    )
    slow = f"/{slug}/station_status.json"
    server.delay(slow, 60)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]

    async with queue_scheduler(runtime, settings):
        with worker_process(settings, logs[0]) as first:

            async def first_is_mid_sync() -> bool:
                return server.request_counts[slow] >= 1

            await wait_for(first_is_mid_sync, 60, "worker A to start the sync", logs)
            kill_group(first)  # dies holding the claim, its task unacknowledged
        server.reset(slow)
        # The killed attempt left only its unfinished run record.
        assert [finished for _, finished in await _runs(runtime, slug)] == [False]

        with worker_process(settings, logs[1]):

            async def synced() -> bool:
                return any(status == "succeeded" for status, _ in await _runs(runtime, slug))

            await wait_for(synced, LEASE_SECONDS + 40, "worker B to sync after the lease", logs)
            # Long enough for a duplicate to show: two more leases and scheduler rounds.
            await asyncio.sleep(2 * LEASE_SECONDS)

    runs = await _runs(runtime, slug)
    assert [r for r in runs if r[0] == "succeeded"] == [("succeeded", True)], runs
    # Nothing of the killed attempt was half-applied, and the good sync wrote every station.
    feed = json.loads((feed_dir(FOLDER) / "station_information.json").read_text())
    expected_stations = {s["station_id"] for s in feed["data"]["stations"]}
    async with runtime.sessions() as session:
        stations = (
            await session.execute(
                text("SELECT count(*) FROM stations WHERE provider_id = :p"), {"p": slug}
            )
        ).scalar_one()
        token = (
            await session.execute(
                text("SELECT sync_token FROM providers WHERE id = :p"), {"p": slug}
            )
        ).scalar_one()
    assert stations == len(expected_stations)
    assert token is None
