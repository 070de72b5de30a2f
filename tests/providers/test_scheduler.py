"""The in-process scheduler: cadence from ttl, bounded, with backoff; and it really syncs."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from app.runtime import Runtime
from providers.scheduler import Scheduler, next_interval
from providers.simulators.feed_server import FeedServer
from tests.conftest import make_settings
from tests.helpers import add_conformance_provider


def test_cadence_is_the_feed_ttl_bounded_by_settings() -> None:
    settings = make_settings(sync_min_interval_seconds=10, sync_max_interval_seconds=300)
    assert next_interval(settings, ttl=60, consecutive_failures=0) == 60
    assert next_interval(settings, ttl=0, consecutive_failures=0) == 10
    assert next_interval(settings, ttl=3600, consecutive_failures=0) == 300
    assert next_interval(settings, ttl=None, consecutive_failures=0) == 10


def test_failing_provider_backs_off_exponentially_up_to_the_backoff_cap() -> None:
    settings = make_settings(
        sync_min_interval_seconds=10, sync_max_interval_seconds=300, sync_max_backoff_seconds=3600
    )
    seen_above_cadence_cap = False
    for failures in range(1, 30):
        for _ in range(20):
            interval = next_interval(settings, ttl=10, consecutive_failures=failures)
            assert 10 <= interval <= min(3600, 10 * 2**failures)
            seen_above_cadence_cap |= interval > 300
    # Backoff is not bounded by the healthy cadence's maximum, only by its own cap.
    assert seen_above_cadence_cap


async def test_scheduler_syncs_due_providers_and_schedules_the_next_run(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "lillestrom-bysykkel")
    scheduler = Scheduler(runtime.sync, runtime.settings)
    scheduler.start()
    try:
        for _ in range(300):
            async with runtime.sessions() as session:
                row = (
                    await session.execute(
                        text("SELECT last_success_at, next_sync_at FROM providers WHERE id = :p"),
                        {"p": slug},
                    )
                ).one()
            # Not next_sync_at alone: the claim sets it (a lease ahead) before the sync runs.
            if row.last_success_at is not None and row.next_sync_at is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        await scheduler.stop()
    assert row.last_success_at is not None
    assert row.next_sync_at > row.last_success_at
