"""The deployment shape on one machine: two API processes, two workers and one scheduler, all
real `mobility` processes against the same PostgreSQL and Redis.

Across a window of syncs each provider is synced once per interval, never twice at a time; a
worker killed mid-sync loses nothing (the others carry on, the lost sync is redone); a
subscriber on API process 1 receives the deltas of a push received by API process 2.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import text

from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.conftest import make_settings
from tests.graphql.test_subscriptions import CENTER, RADIUS, _offset, connect, push
from tests.helpers import add_conformance_provider
from tests.processes import free_port, kill_group, mobility_process, wait_for
from tests.providers.test_push_ingest import SLUG, _push_provider, _vehicle

POLLED = ["lillestrom-bysykkel", "getaround-stavanger", "check-almere"]
INTERVAL = 2.0
LEASE = 6.0


async def _runs(runtime: Runtime) -> dict[str, list[tuple[str, datetime, datetime | None]]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT provider_id, status, started_at, finished_at FROM sync_runs"
                " WHERE provider_id = ANY(:p) ORDER BY provider_id, started_at"
            ),
            {"p": POLLED},
        )
        runs: dict[str, list[tuple[str, datetime, datetime | None]]] = {p: [] for p in POLLED}
        for r in rows:
            runs[r.provider_id].append((r.status, r.started_at, r.finished_at))
        return runs


def _assert_one_at_a_time_once_per_interval(
    runs: dict[str, list[tuple[str, datetime, datetime | None]]],
) -> None:
    for provider, provider_runs in runs.items():
        finished = [r for r in provider_runs if r[2] is not None]
        for (_, _, previous_end), (_, start, _) in itertools.pairwise(finished):
            assert previous_end is not None
            # Never concurrent, and the next one waits its interval after the last finished
            # (a few ms of clock and rounding slack).
            gap = (start - previous_end).total_seconds()
            assert gap >= INTERVAL - 0.05, (provider, gap, provider_runs)


async def test_two_apis_two_workers_one_scheduler(
    runtime: Runtime, feed_server: tuple[FeedServer, str], tmp_path: Path
) -> None:
    server, base_url = feed_server
    for folder in POLLED:
        await add_conformance_provider(runtime, server, base_url, folder)
    secret = await _push_provider(runtime)
    assert secret is not None
    settings = make_settings(
        sync_min_interval_seconds=INTERVAL,
        sync_max_interval_seconds=INTERVAL,
        sync_claim_lease_seconds=LEASE,
        sync_deadline_seconds=4.0,
    )
    # One provider is slow to answer, so at any moment some sync is likely in flight.
    server.delay(f"/{POLLED[0]}/station_status.json", 0.8)
    ports = [free_port(), free_port()]
    logs = {
        name: tmp_path / f"{name}.log"
        for name in ("api-1", "api-2", "worker-1", "worker-2", "scheduler")
    }
    log_list = list(logs.values())

    with (
        mobility_process(["serve", "--port", str(ports[0]), "--no-sync"], settings, logs["api-1"]),
        mobility_process(["serve", "--port", str(ports[1]), "--no-sync"], settings, logs["api-2"]),
        mobility_process(["worker"], settings, logs["worker-1"]) as worker_1,
        mobility_process(["worker"], settings, logs["worker-2"]),
        mobility_process(["scheduler"], settings, logs["scheduler"]) as scheduler,
    ):
        apis = [f"http://127.0.0.1:{p}" for p in ports]

        async def apis_up() -> bool:
            async with httpx.AsyncClient() as http:
                try:
                    statuses = [(await http.get(f"{api}/health")).status_code for api in apis]
                except httpx.TransportError:
                    return False
                return statuses == [200, 200]

        await wait_for(apis_up, 60, "both API processes", log_list)

        # A subscriber on API 1 sees what a push to API 2 changes.
        async with connect(apis[0]) as client:
            near = {"lat": CENTER[0], "lon": CENTER[1], "radiusMeters": RADIUS}
            await client.subscribe({"near": near})
            assert (await client.next_update())["kind"] == "SNAPSHOT"
            spot = _offset(*CENTER, 40, -30)
            await push(apis[1], secret, [_vehicle("via-api-2", *spot)])
            delta = await client.next_update(within_seconds=10)
            assert delta["kind"] == "DELTA"
            assert [v["id"] for v in delta["created"]] == [f"{SLUG}:via-api-2"]

        async def every_provider_synced_twice() -> bool:
            runs = await _runs(runtime)
            return all(sum(r[0] == "succeeded" for r in runs[p]) >= 2 for p in POLLED)

        await wait_for(every_provider_synced_twice, 60, "two syncs of every provider", log_list)

        # A worker dies the way a host does, probably mid-sync.
        killed_at = time.time()
        kill_group(worker_1)

        async def every_provider_synced_after_the_kill() -> bool:
            runs = await _runs(runtime)
            return all(
                any(r[0] == "succeeded" and r[1].timestamp() > killed_at for r in runs[p])
                for p in POLLED
            )

        # Within a lease (a lost claim is redone) plus a few intervals.
        await wait_for(
            every_provider_synced_after_the_kill,
            LEASE + 6 * INTERVAL + 10,
            "every provider to sync again after a worker died",
            log_list,
        )
        await asyncio.sleep(2 * INTERVAL)

        # Stop scheduling, let the syncs in flight finish, then judge the whole window.
        kill_group(scheduler)

        async def nothing_in_flight() -> bool:
            runs = await _runs(runtime)
            return not any(
                r[2] is None and r[1].timestamp() > killed_at for p in POLLED for r in runs[p]
            )

        await wait_for(nothing_in_flight, 30, "the last syncs to finish", log_list)

    runs = await _runs(runtime)
    _assert_one_at_a_time_once_per_interval(runs)
    # Every attempt that finished succeeded; what the kill interrupted left at most one
    # unfinished record per provider, and it was redone.
    for provider, provider_runs in runs.items():
        assert all(r[0] == "succeeded" for r in provider_runs if r[2] is not None), provider_runs
        assert sum(r[2] is None for r in provider_runs) <= 1, (provider, provider_runs)
