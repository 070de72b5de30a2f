"""Queued syncs run by real `mobility worker` processes; a worker killed mid-sync loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sqlalchemy import text

from app.runtime import Runtime
from app.settings import Settings
from providers.scheduler import QueueDispatcher, Scheduler
from providers.simulators.feed_server import FeedServer
from providers.tasks import build_broker, kicker
from tests.conftest import conformance_root, make_settings
from tests.helpers import add_conformance_provider, feed_dir

FOLDER = "lillestrom-bysykkel"
LEASE_SECONDS = 4.0


def _worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MOBILITY_ENVIRONMENT": "test",
            "MOBILITY_DATABASE_URL": settings.database_url,
            "MOBILITY_REDIS_URL": settings.redis_url,
            "MOBILITY_REDIS_PREFIX": settings.redis_prefix,
            "MOBILITY_DEMO_FEEDS": "false",
            "MOBILITY_SYNC_CLAIM_LEASE_SECONDS": str(settings.sync_claim_lease_seconds),
            "MOBILITY_SYNC_MIN_INTERVAL_SECONDS": str(settings.sync_min_interval_seconds),
            "MOBILITY_SYNC_HTTP_TIMEOUT_SECONDS": "20",
            "MOBILITY_SYNC_DEADLINE_SECONDS": "30",
            "MOBILITY_CONFORMANCE_DIR": str(conformance_root()),
        }
    )
    return env


@contextmanager
def worker_process(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`mobility worker` in its own process group, so the test can kill it like a dead host."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            env=_worker_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


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


async def _wait_for(
    predicate: Callable[[], Awaitable[bool]], within_seconds: float, what: str, logs: list[Path]
) -> None:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    dump = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    raise AssertionError(f"timed out waiting for {what}\n{dump}")


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

            await _wait_for(first_is_mid_sync, 60, "worker A to start the sync", logs)
            kill_group(first)  # dies holding the claim, its task unacknowledged
        server.reset(slow)
        # The killed attempt left only its unfinished run record.
        assert [finished for _, finished in await _runs(runtime, slug)] == [False]

        with worker_process(settings, logs[1]):

            async def synced() -> bool:
                return any(status == "succeeded" for status, _ in await _runs(runtime, slug))

            await _wait_for(synced, LEASE_SECONDS + 40, "worker B to sync after the lease", logs)
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
