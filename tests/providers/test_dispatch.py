"""Claims, superseded dispatches and the shared circuit breaker, on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from taskiq.exceptions import SendTaskError

from app.platform.db import transaction
from app.platform.redis import RedisKeys, create_redis
from app.runtime import Runtime
from providers.breaker import BreakerState, CircuitBreaker
from providers.dispatch import (
    ProviderDisabled,
    claim_due,
    claim_lease_seconds,
    force_sync,
    next_interval,
    run_claim,
)
from providers.scheduler import REQUEUE_DELAY_SECONDS, QueueDispatcher, Scheduler
from providers.simulators.feed_server import FeedServer
from tests.conftest import make_settings
from tests.helpers import add_conformance_provider, add_provider

FOLDER = "lillestrom-bysykkel"


async def _provider_row(runtime: Runtime, slug: str) -> object:
    async with runtime.sessions() as session:
        return (
            await session.execute(
                text(
                    "SELECT sync_token, sync_claimed_at, next_sync_at, last_sync_at,"
                    " last_success_at, consecutive_failures, ttl_seconds, now() AS db_now"
                    " FROM providers WHERE id = :p"
                ),
                {"p": slug},
            )
        ).one()


async def _lapse_claims(runtime: Runtime) -> None:
    """What the passing of a claim's lease does: the providers are due again."""
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text("UPDATE providers SET next_sync_at = now() - interval '1 second'")
        )


async def test_concurrent_claims_take_each_due_provider_exactly_once(runtime: Runtime) -> None:
    slugs = [f"p{i}" for i in range(7)]
    for slug in slugs:
        await add_provider(runtime, slug, {"vehicle_status": f"http://127.0.0.1:9/{slug}.json"})
    async with transaction(runtime.sessions) as session:
        await session.execute(text("UPDATE providers SET enabled = false WHERE id = 'p6'"))

    rounds = await asyncio.gather(
        *(claim_due(runtime.sessions, runtime.settings, limit=3) for _ in range(5))
    )
    claimed = [c.provider_id for claims in rounds for c in claims]
    # Every enabled provider once; the disabled one never; no claim round above its limit.
    assert sorted(claimed) == slugs[:6]
    assert all(len(claims) <= 3 for claims in rounds)

    # A claimed provider is leased: nothing is due until the lease has passed.
    assert await claim_due(runtime.sessions, runtime.settings, limit=10) == []
    row = await _provider_row(runtime, "p0")
    lease = (row.next_sync_at - row.sync_claimed_at).total_seconds()  # type: ignore[attr-defined]
    assert abs(lease - claim_lease_seconds(runtime.settings)) < 1.0

    first_tokens = {c.provider_id: c.token for claims in rounds for c in claims}
    await _lapse_claims(runtime)
    again = await claim_due(runtime.sessions, runtime.settings, limit=10)
    assert sorted(c.provider_id for c in again) == slugs[:6]
    assert all(c.token != first_tokens[c.provider_id] for c in again)


async def test_a_superseded_dispatch_is_dropped_and_the_current_one_syncs(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    [old] = await claim_due(runtime.sessions, runtime.settings, limit=10)
    await _lapse_claims(runtime)
    [current] = await claim_due(runtime.sessions, runtime.settings, limit=10)

    outcome = await run_claim(runtime.sync, runtime.breaker, runtime.settings, old)
    assert not outcome.ran and outcome.note == "superseded"
    assert sum(server.request_counts.values()) == 0, "a superseded task must not call out"
    assert (await _provider_row(runtime, slug)).last_sync_at is None  # type: ignore[attr-defined]

    outcome = await run_claim(runtime.sync, runtime.breaker, runtime.settings, current)
    assert outcome.ran and outcome.report is not None and outcome.report.ok
    assert sum(server.request_counts.values()) > 0
    row = await _provider_row(runtime, slug)
    assert row.sync_token is None and row.sync_claimed_at is None  # type: ignore[attr-defined]
    expected = next_interval(runtime.settings, row.ttl_seconds, 0)  # type: ignore[attr-defined]
    scheduled_in = (row.next_sync_at - row.db_now).total_seconds()  # type: ignore[attr-defined]
    assert expected - 5 < scheduled_in <= expected

    # The same task delivered twice (a redelivery after its ack was lost) is a no-op too.
    requests = sum(server.request_counts.values())
    again = await run_claim(runtime.sync, runtime.breaker, runtime.settings, current)
    assert not again.ran and again.note == "superseded"
    assert sum(server.request_counts.values()) == requests


async def test_force_sync_makes_a_provider_due_at_once(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    [claim] = await claim_due(runtime.sessions, runtime.settings, limit=10)
    await run_claim(runtime.sync, runtime.breaker, runtime.settings, claim)
    assert await claim_due(runtime.sessions, runtime.settings, limit=10) == []

    assert await force_sync(runtime.sessions, [slug, "no-such-provider"]) == 1
    [forced] = await claim_due(runtime.sessions, runtime.settings, limit=10)
    assert forced.provider_id == slug


async def test_the_breaker_opens_after_failures_and_lets_one_trial_through(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    cooldown = 0.6
    settings = make_settings(breaker_failure_threshold=2, breaker_cooldown_seconds=cooldown)
    breaker = CircuitBreaker(runtime.redis, runtime.keys, settings)
    for path in server.paths:
        server.fail(path, 503)

    async def dispatch() -> tuple[bool, BreakerState, float | None, int]:
        await force_sync(runtime.sessions, [slug])
        [claim] = await claim_due(runtime.sessions, settings, limit=1)
        before = sum(server.request_counts.values())
        outcome = await run_claim(runtime.sync, breaker, settings, claim)
        calls = sum(server.request_counts.values()) - before
        return outcome.ran, outcome.breaker, outcome.next_sync_in_seconds, calls

    ran, state, _, calls = await dispatch()
    assert ran and state is BreakerState.CLOSED and calls > 0
    ran, state, wait, calls = await dispatch()
    assert ran and state is BreakerState.OPEN and calls > 0
    assert wait is not None and wait >= cooldown

    # Open: the operator is not called at all, and the next attempt waits for the cool-down.
    ran, state, wait, calls = await dispatch()
    assert not ran and state is BreakerState.OPEN and calls == 0
    assert wait is not None and wait >= 1.0  # never a tight loop

    await asyncio.sleep(cooldown + 0.1)
    # Half-open: of two workers asking at once, exactly one gets the trial.
    decisions = await asyncio.gather(breaker.allow(slug), breaker.allow(slug))
    assert sorted(d.allowed for d in decisions) == [False, True]
    assert {d.state for d in decisions} == {BreakerState.HALF_OPEN}

    # The trial fails: open again, for twice the cool-down.
    reopened = await breaker.record_failure(slug)
    assert reopened.state is BreakerState.OPEN
    assert abs(reopened.retry_in_seconds - 2 * cooldown) < 1e-6

    # The operator recovers; after the cool-down the trial succeeds and closes the breaker.
    server.reset()
    await asyncio.sleep(2 * cooldown + 0.1)
    ran, state, _, calls = await dispatch()
    assert ran and state is BreakerState.CLOSED and calls > 0
    assert (await breaker.state(slug)).state is BreakerState.CLOSED
    assert not await runtime.redis.exists(runtime.keys.provider_breaker(slug))
    row = await _provider_row(runtime, slug)
    assert row.consecutive_failures == 0 and row.last_success_at is not None  # type: ignore[attr-defined]


async def test_the_cool_down_doubles_up_to_its_cap(runtime: Runtime) -> None:
    settings = make_settings(
        breaker_failure_threshold=1, breaker_cooldown_seconds=10, breaker_max_cooldown_seconds=45
    )
    breaker = CircuitBreaker(runtime.redis, runtime.keys, settings)
    waits = [(await breaker.record_failure("p")).retry_in_seconds for _ in range(4)]
    expected = [min(10 * 2**i, 45) for i in range(4)]
    assert waits == expected
    state = await breaker.state("p")
    assert state.state is BreakerState.OPEN and state.consecutive_failures == 4


async def test_the_breaker_fails_open_when_redis_is_unreachable() -> None:
    # Port 9 (discard) refuses connections here: Redis is "down".
    redis: Redis = create_redis("redis://127.0.0.1:9/0")
    try:
        breaker = CircuitBreaker(redis, RedisKeys("test"), make_settings())
        decision = await breaker.allow("p")
        assert decision.allowed and decision.state is BreakerState.CLOSED
        assert (await breaker.record_failure("p")).allowed
    finally:
        await redis.aclose()


async def test_a_deleted_provider_claim_is_harmless(runtime: Runtime) -> None:
    await add_provider(runtime, "gone", {"vehicle_status": "http://127.0.0.1:9/x.json"})
    [claim] = await claim_due(runtime.sessions, runtime.settings, limit=1)
    async with transaction(runtime.sessions) as session:
        await session.execute(text("DELETE FROM providers WHERE id = 'gone'"))
    outcome = await run_claim(runtime.sync, runtime.breaker, runtime.settings, claim)
    assert not outcome.ran and outcome.note == "superseded"


@pytest.mark.parametrize(("retry_after", "expected"), [("120", 120.0), ("999999999", 3600.0)])
async def test_retry_after_delays_the_next_sync_within_the_backoff_cap(
    runtime: Runtime, feed_server: tuple[FeedServer, str], retry_after: str, expected: float
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    settings = make_settings(
        sync_min_interval_seconds=10, sync_max_interval_seconds=60, sync_max_backoff_seconds=3600
    )
    for path in server.paths:
        server.fail(path, 429, headers={"Retry-After": retry_after})
    [claim] = await claim_due(runtime.sessions, settings, limit=1)
    outcome = await run_claim(runtime.sync, runtime.breaker, settings, claim)
    assert outcome.report is not None and not outcome.report.ok
    # One failure's own backoff is at most 2 x the minimum interval: well below either value.
    assert outcome.next_sync_in_seconds == expected
    row = await _provider_row(runtime, slug)
    scheduled_in = (row.next_sync_at - row.db_now).total_seconds()  # type: ignore[attr-defined]
    assert expected - 5 < scheduled_in <= expected


async def test_a_sync_forced_while_one_runs_waits_for_it_then_is_due_at_once(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    [claim] = await claim_due(runtime.sessions, runtime.settings, limit=1)
    leased = await _provider_row(runtime, slug)

    # Staff press "sync now" while that claim is out: the running sync is left alone...
    assert await force_sync(runtime.sessions, [slug]) == 1
    during = await _provider_row(runtime, slug)
    assert during.sync_token == leased.sync_token  # type: ignore[attr-defined]
    assert during.next_sync_at == leased.next_sync_at  # type: ignore[attr-defined]
    assert await claim_due(runtime.sessions, runtime.settings, limit=1) == []

    # ...and when it completes, the provider is due at once rather than after its interval.
    outcome = await run_claim(runtime.sync, runtime.breaker, runtime.settings, claim)
    assert outcome.ran and outcome.report is not None and outcome.report.ok
    [again] = await claim_due(runtime.sessions, runtime.settings, limit=1)
    assert again.provider_id == slug
    # That second sync completes normally: the request was used up.
    await run_claim(runtime.sync, runtime.breaker, runtime.settings, again)
    assert await claim_due(runtime.sessions, runtime.settings, limit=1) == []


async def test_a_disabled_provider_cannot_be_forced_and_a_claimed_one_is_dropped(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, FOLDER)
    [claim] = await claim_due(runtime.sessions, runtime.settings, limit=1)
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text("UPDATE providers SET enabled = false WHERE id = :p"), {"p": slug}
        )
    outcome = await run_claim(runtime.sync, runtime.breaker, runtime.settings, claim)
    assert not outcome.ran and sum(server.request_counts.values()) == 0
    with pytest.raises(ProviderDisabled):
        await force_sync(runtime.sessions, [slug])


async def test_a_claim_that_cannot_be_queued_is_given_back_and_the_round_goes_on(
    runtime: Runtime,
) -> None:
    for slug in ("a", "b", "c"):
        await add_provider(runtime, slug, {"vehicle_status": f"http://127.0.0.1:9/{slug}.json"})
    kicked: list[str] = []

    async def kick(provider_id: str, token: str) -> object:
        if provider_id == "b":
            raise SendTaskError()  # what taskiq raises when the broker is unreachable
        kicked.append(provider_id)
        return None

    scheduler = Scheduler(runtime.sync, runtime.settings, QueueDispatcher(kick, runtime.sync))
    claims = await scheduler.run_once()
    assert sorted(c.provider_id for c in claims) == ["a", "b", "c"]
    assert kicked == ["a", "c"]
    row = await _provider_row(runtime, "b")
    assert row.sync_token is None  # type: ignore[attr-defined]
    due_in = (row.next_sync_at - row.db_now).total_seconds()  # type: ignore[attr-defined]
    assert 0 < due_in <= REQUEUE_DELAY_SECONDS


async def test_queued_claims_are_bounded_by_what_is_outstanding(runtime: Runtime) -> None:
    for i in range(5):
        await add_provider(runtime, f"q{i}", {"vehicle_status": f"http://127.0.0.1:9/{i}.json"})
    kicked: list[str] = []

    async def kick(provider_id: str, token: str) -> object:
        kicked.append(provider_id)
        return None

    dispatcher = QueueDispatcher(kick, runtime.sync, max_outstanding=3)
    scheduler = Scheduler(runtime.sync, runtime.settings, dispatcher)
    assert len(await scheduler.run_once()) == 3
    # Nothing completed yet: no room for more, in this scheduler or a fresh one.
    assert await scheduler.run_once() == []
    fresh = Scheduler(
        runtime.sync, runtime.settings, QueueDispatcher(kick, runtime.sync, max_outstanding=3)
    )
    assert await fresh.run_once() == []
    assert len(kicked) == 3
