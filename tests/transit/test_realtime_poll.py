"""Polling GTFS-Realtime end to end: Caltrain's real files served over HTTP by the local feed
server, claimed by the sync scheduler, stored in Redis, read back by the store; failures,
backoff, the operator's Retry-After, the circuit breaker and health."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from google.transit import gtfs_realtime_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.health import HealthStatus
from app.platform.settings import Settings
from app.runtime import Runtime
from app.transit.realtime_poll import RealtimePoller
from app.transit.realtime_store import RealtimeStore
from providers.breaker import BreakerState, CircuitBreaker
from providers.dispatch import Claim
from providers.scheduler import QueueDispatcher, Scheduler
from providers.simulators.feed_server import FeedServer
from tests.conftest import make_settings
from tests.transit.caltrain import caltrain_dir, raw_table

FEED = "caltrain"
UPDATES = "/ct/trip-updates.pb"
POSITIONS = "/ct/vehicle-positions.pb"
PROTOBUF = "application/x-protobuf"
# A trip id the feed names, left out of the loaded timetable below: the one unknown trip.
LEFT_OUT = "124"


@pytest.fixture
async def caltrain_rt(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> AsyncIterator[tuple[FeedServer, str]]:
    server, base = feed_server
    for path, name in ((UPDATES, "ct-trip-updates.pb"), (POSITIONS, "ct-vehicle-positions.pb")):
        server.add_static(path, (caltrain_dir() / name).read_bytes())
        server.set_body(path, (caltrain_dir() / name).read_bytes(), content_type=PROTOBUF)
    async with runtime.engine.begin() as conn:
        await conn.execute(text("TRUNCATE transit_feeds CASCADE"))
        await conn.execute(
            text(
                "INSERT INTO transit_feeds (slug, name, source, realtime)"
                " VALUES (:s, 'Caltrain', 'ct.zip', CAST(:rt AS jsonb))"
            ),
            {
                "s": FEED,
                "rt": orjson.dumps(
                    {"trip_updates": base + UPDATES, "vehicle_positions": base + POSITIONS}
                ).decode(),
            },
        )
        version = (
            await conn.execute(
                text(
                    "INSERT INTO transit_feed_versions (feed, sha256) VALUES (:s, 'x') RETURNING id"
                ),
                {"s": FEED},
            )
        ).scalar_one()
        trips = [r for r in raw_table("trips.txt") if r["trip_id"] != LEFT_OUT]
        await conn.execute(
            text(
                "INSERT INTO transit_trips (version_id, trip_id, route_id, service_id)"
                " VALUES (:v, :t, :r, :s)"
            ),
            [
                {"v": version, "t": r["trip_id"], "r": r["route_id"], "s": r["service_id"]}
                for r in trips
            ],
        )
        await conn.execute(
            text("UPDATE transit_feeds SET active_version = :v WHERE slug = :s"),
            {"v": version, "s": FEED},
        )
    yield server, base
    async with runtime.engine.begin() as conn:
        await conn.execute(text("TRUNCATE transit_feeds CASCADE"))


def _poller(runtime: Runtime, settings: Settings) -> RealtimePoller:
    return RealtimePoller(
        sessions=runtime.sessions,
        store=RealtimeStore(runtime.redis, runtime.keys, settings),
        http=runtime.http,
        settings=settings,
        breaker=CircuitBreaker(runtime.redis, runtime.keys, settings),
    )


async def _row(runtime: Runtime) -> object:
    async with runtime.sessions() as session:
        return (
            await session.execute(
                text(
                    "SELECT *, extract(epoch FROM next_poll_at - now()) AS due_in"
                    " FROM transit_realtime_polls WHERE feed = :f"
                ),
                {"f": FEED},
            )
        ).one()


async def _claim(poller: RealtimePoller) -> Claim:
    (claim,) = await poller.claim_due(10)
    assert claim.provider_id == FEED
    return claim


async def test_the_scheduler_polls_the_feed_and_every_process_reads_it(
    runtime: Runtime, caltrain_rt: tuple[FeedServer, str]
) -> None:
    server, _ = caltrain_rt
    scheduler = Scheduler(runtime.sync, runtime.settings, kinds=runtime.job_kinds)
    claims = await scheduler.run_once()
    assert [(c.kind, c.provider_id) for c in claims] == [("transit_realtime", FEED)]
    assert await scheduler.run_once() == []  # claimed: not twice
    for _ in range(100):
        row = await _row(runtime)
        if row.poll_token is None:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    await scheduler.stop()
    assert server.request_counts[UPDATES] == 1 and server.request_counts[POSITIONS] == 1

    raw_updates, raw_positions = pb.FeedMessage(), pb.FeedMessage()
    raw_updates.ParseFromString((caltrain_dir() / "ct-trip-updates.pb").read_bytes())
    raw_positions.ParseFromString((caltrain_dir() / "ct-vehicle-positions.pb").read_bytes())
    row = await _row(runtime)
    assert row.last_success_at is not None and row.consecutive_failures == 0  # type: ignore[attr-defined]
    assert row.stats["unknown_trips"] == 1  # type: ignore[attr-defined]
    assert row.stats["entities"] == {  # type: ignore[attr-defined]
        "trip_updates": len(raw_updates.entity),
        "vehicle_positions": len(raw_positions.entity),
    }
    interval = runtime.settings.transit_realtime_interval_seconds
    assert interval - 5 < row.due_in <= interval  # type: ignore[attr-defined]

    # Another process, its own store: reads the same data from Redis.
    store = RealtimeStore(runtime.redis, runtime.keys, runtime.settings)
    snapshot = await store.snapshot(FEED)
    assert snapshot is not None
    assert len(snapshot.trip_updates) == len(raw_updates.entity)
    assert len(snapshot.vehicle_positions) == len(raw_positions.entity)
    assert snapshot.timestamp == min(raw_updates.header.timestamp, raw_positions.header.timestamp)
    # Older than the allowed age: ignored, the timetable holds.
    later = time.time() + runtime.settings.transit_realtime_max_age_seconds + 1
    assert await store.snapshot(FEED, now=later) is None
    ttl = await runtime.redis.ttl(runtime.keys.transit_realtime(FEED))
    assert 0 < ttl <= runtime.settings.transit_realtime_max_age_seconds + 1

    (state,) = await runtime.transit_realtime.states()
    assert state.status is HealthStatus.OK and state.unknown_trips == 1
    assert state.breaker is BreakerState.CLOSED


async def test_an_unchanged_feed_is_revalidated_not_refetched(
    runtime: Runtime, caltrain_rt: tuple[FeedServer, str]
) -> None:
    server, _ = caltrain_rt
    poller = runtime.transit_realtime
    assert (await poller.poll(FEED)).ok
    before = await runtime.transit_live.stored_kinds(FEED)
    await asyncio.sleep(0.01)
    report = await poller.poll(FEED)
    assert report.ok and sorted(report.not_modified) == ["trip_updates", "vehicle_positions"]
    assert server.not_modified_counts[UPDATES] == 1
    after = await runtime.transit_live.stored_kinds(FEED)
    assert all(after[k] > before[k] for k in before)  # as fresh as the 304 says


async def test_failures_back_off_open_the_breaker_and_keep_the_last_good_data(
    runtime: Runtime, caltrain_rt: tuple[FeedServer, str]
) -> None:
    server, _ = caltrain_rt
    settings = make_settings(
        breaker_failure_threshold=2,
        breaker_cooldown_seconds=600,
        sync_min_interval_seconds=10,
        sync_max_backoff_seconds=3600,
    )
    poller = _poller(runtime, settings)
    assert await poller.run(await _claim(poller)) == "ok"
    server.fail(UPDATES, 500)

    async with runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE transit_realtime_polls SET next_poll_at = now()"))
    assert await poller.run(await _claim(poller)) == "failed"
    row = await _row(runtime)
    assert row.consecutive_failures == 1  # type: ignore[attr-defined]
    assert "HTTP 500" in row.last_error and "trip_updates" in row.last_error  # type: ignore[attr-defined]
    assert row.due_in >= settings.transit_realtime_interval_seconds - 5  # type: ignore[attr-defined]
    # The kind that failed keeps its last good body; the other one was stored anew.
    snapshot = await poller.store.snapshot(FEED)
    assert snapshot is not None and len(snapshot.trip_updates) == 19

    async with runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE transit_realtime_polls SET next_poll_at = now()"))
    assert await poller.run(await _claim(poller)) == "failed"
    row = await _row(runtime)
    assert row.consecutive_failures == 2  # type: ignore[attr-defined]
    # The breaker opened at the second failure: the next poll waits out its cool-down.
    assert row.due_in > 590  # type: ignore[attr-defined]
    async with runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE transit_realtime_polls SET next_poll_at = now()"))
    asked = server.request_counts[UPDATES]
    assert await poller.run(await _claim(poller)) == "circuit"
    assert server.request_counts[UPDATES] == asked  # no call to a feed that keeps failing
    (state,) = await poller.states()
    assert state.breaker is BreakerState.OPEN and state.consecutive_failures == 2


async def test_the_operators_retry_after_is_honoured(
    runtime: Runtime, caltrain_rt: tuple[FeedServer, str]
) -> None:
    server, _ = caltrain_rt
    server.fail(POSITIONS, 429, headers={"Retry-After": "900"})
    poller = runtime.transit_realtime
    assert await poller.run(await _claim(poller)) == "failed"
    row = await _row(runtime)
    assert 895 < row.due_in <= 900  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"<html>maintenance</html>", "text/html", "not a binary feed"),
        (b"\x08\x96\x01garbage\xff", PROTOBUF, "not a GTFS-Realtime FeedMessage"),
    ],
)
async def test_a_body_that_is_no_feed_fails_the_poll_clearly(
    runtime: Runtime,
    caltrain_rt: tuple[FeedServer, str],
    body: bytes,
    content_type: str,
    message: str,
) -> None:
    server, _ = caltrain_rt
    server.set_body(UPDATES, body, content_type=content_type)
    report = await runtime.transit_realtime.poll(FEED)
    assert not report.ok
    assert report.error is not None and message in report.error
    assert report.error.startswith("trip_updates: ")
    assert "127.0.0.1" not in report.error or "/ct/" in report.error  # URLs only, redacted


async def test_a_deadline_bounds_a_hanging_feed(
    runtime: Runtime, caltrain_rt: tuple[FeedServer, str]
) -> None:
    server, _ = caltrain_rt
    server.hang(POSITIONS)
    settings = make_settings(sync_deadline_seconds=1.0)
    started = time.monotonic()
    report = await _poller(runtime, settings).poll(FEED)
    assert time.monotonic() - started < 4
    assert not report.ok and report.error is not None and "deadline" in report.error


async def test_queued_dispatch_kicks_the_job_task(
    runtime: Runtime, caltrain_rt: tuple[FeedServer, str]
) -> None:
    kicked: list[tuple[str, str, str]] = []

    async def kick(provider_id: str, token: str) -> object:
        raise AssertionError("no provider is due")

    async def kick_job(kind: str, key: str, token: str) -> object:
        kicked.append((kind, key, token))
        return None

    kinds = runtime.job_kinds
    dispatcher = QueueDispatcher(kick, runtime.sync, kinds=kinds, kick_job=kick_job)
    claims = await Scheduler(runtime.sync, runtime.settings, dispatcher, kinds=kinds).run_once()
    assert [(c.kind, c.provider_id, c.token) for c in claims] == kicked
    assert await runtime.transit_realtime.outstanding() == 1
    # What the worker's task does with it (providers/tasks.py run_job): the claim runs.
    ((kind, key, token),) = kicked
    assert await runtime.transit_realtime.run(Claim(key, token, kind=kind)) == "ok"
    assert await runtime.transit_realtime.outstanding() == 0


async def test_metrics_report_each_feeds_live_data(
    runtime: Runtime, api: httpx.AsyncClient, caltrain_rt: tuple[FeedServer, str]
) -> None:
    server, _ = caltrain_rt
    assert (await runtime.transit_realtime.poll(FEED)).ok
    server.fail(POSITIONS, 500)
    assert not (await runtime.transit_realtime.poll(FEED)).ok
    response = await api.get("/metrics")
    assert response.status_code == 200
    values = {
        (family.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    feed = (("feed", FEED),)
    assert values["mobility_transit_realtime_consecutive_failures", feed] == 1
    assert values["mobility_transit_realtime_unknown_trips", feed] == 1
    assert 0 <= values["mobility_transit_realtime_data_age_seconds", feed] < 60
    # Fresh data and a failure since: degraded, by the providers' rules.
    assert values["mobility_transit_realtime_status", (*feed, ("status", "degraded"))] == 1
    assert values["mobility_transit_realtime_status", (*feed, ("status", "ok"))] == 0
