"""Claiming due syncs and running a claimed one: the part every scheduler and worker shares.

A sync goes through three steps, whichever process runs each:

1. **Claim** (the scheduler): one ``UPDATE … RETURNING`` takes every enabled provider whose
   ``next_sync_at`` has come, writes a fresh ``sync_token`` and pushes ``next_sync_at`` a lease
   ahead. Row locks make the claim atomic, so two schedulers (or a scheduler restarted while
   the old one still runs) never dispatch the same provider twice.
2. **Run** (a worker, or the scheduler's own process): only while the claim's token is still the
   provider's ``sync_token``; a task redelivered after its worker died, once the lease expired and
   the provider was claimed again, finds another token and is dropped. The circuit breaker
   (providers/breaker.py) is asked first; the sync itself holds the advisory lock that makes it
   one sync per provider at a time (providers/sync.py).
3. **Complete**: the next sync is scheduled from the feed's ``ttl``, or with backoff after a
   failure (capped, full jitter), never sooner than the operator's ``Retry-After`` or the open
   breaker. The token is cleared in the same statement, only if it is still ours.

If the worker dies mid-sync nothing is half-written (the merge is one transaction; an index the
database got ahead of is rebuilt by the next sync), and once the lease has passed the provider is
claimed and synced again: a sync is never lost, and never run twice for one interval.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.platform.db import transaction
from app.platform.errors import DomainError
from app.platform.settings import Settings
from providers import repository
from providers.breaker import BreakerState, CircuitBreaker
from providers.sync import ProviderNotFound, SyncEngine, SyncReport

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]


#: Queues one sync task (the taskiq task's ``kiq``, providers/tasks.py).
KickSync = Callable[[str, str], Awaitable[object]]
#: Queues one job of another kind: (kind, id, token) (providers/tasks.py's ``run_job``).
KickJob = Callable[[str, str, str], Awaitable[object]]


#: ``Claim.kind`` of a provider's GBFS sync, the scheduler's first kind of job.
PROVIDER_SYNC = "provider"


@dataclass(frozen=True, slots=True)
class Claim:
    provider_id: str  # the claimed thing's id: a provider's, or another kind's (a feed slug)
    token: str
    kind: str = PROVIDER_SYNC


class JobKind(Protocol):
    """Another kind of polled job the scheduler claims and dispatches beside provider syncs
    (GTFS-Realtime feeds: app/transit/realtime_poll.py), with claim rows of its own and the
    same protocol: claim atomically with a token and a lease, run only while the token holds,
    complete by scheduling the next run. The runtime assembles the kinds (``Runtime.job_kinds``),
    so providers/ knows none of them."""

    @property
    def kind(self) -> str: ...

    async def claim_due(self, limit: int) -> list[Claim]: ...

    async def run(self, claim: Claim) -> str:
        """Run a claimed job and schedule the next; never raises for the job's problems."""
        ...

    async def release(self, claim: Claim, *, retry_in_seconds: float) -> None: ...

    async def outstanding(self) -> int:
        """Claims given out and not completed or lapsed (queued or running)."""
        ...


def next_interval(settings: Settings, ttl: int | None, consecutive_failures: int) -> float:
    """Seconds to the next sync: the feed's ttl within the configured bounds; after failures,
    exponential backoff with full jitter (many failing providers do not retry in lockstep),
    capped at ``sync_max_backoff_seconds``."""
    base = max(settings.sync_min_interval_seconds, float(ttl or 0))
    base = min(base, settings.sync_max_interval_seconds)
    if consecutive_failures:
        cap = max(base, settings.sync_max_backoff_seconds)
        backoff = settings.sync_min_interval_seconds * (2 ** min(consecutive_failures, 24))
        return random.uniform(base, max(base, min(backoff, cap)))
    return base


def claim_lease_seconds(settings: Settings) -> float:
    """How long a claim stands before the provider may be claimed again: a sync that still
    runs by then has outlived its own deadline twice over (its worker is presumed dead)."""
    if settings.sync_claim_lease_seconds is not None:
        return settings.sync_claim_lease_seconds
    return settings.sync_deadline_seconds * 2 + 30.0


_CLAIM_DUE = text(
    """
    UPDATE providers AS p
    SET sync_token = gen_random_uuid()::text,
        sync_claimed_at = now(),
        next_sync_at = now() + make_interval(secs => :lease)
    WHERE p.id IN (
        SELECT id FROM providers
        WHERE enabled AND (next_sync_at IS NULL OR next_sync_at <= now())
        ORDER BY next_sync_at NULLS FIRST, id
        LIMIT :limit
        -- NO KEY UPDATE: does not conflict with the KEY SHARE locks foreign-key checks take on
        -- the row (push batches inserting vehicles, sync runs), so a busy provider is not
        -- skipped tick after tick.
        FOR NO KEY UPDATE SKIP LOCKED
    )
    RETURNING p.id, p.sync_token
    """
)


async def claim_due(sessions: Sessions, settings: Settings, *, limit: int) -> list[Claim]:
    """Claim up to ``limit`` due providers (the most overdue first)."""
    if limit <= 0:
        return []
    async with transaction(sessions) as session:
        rows = await session.execute(
            _CLAIM_DUE, {"lease": claim_lease_seconds(settings), "limit": limit}
        )
        return [Claim(r.id, r.sync_token) for r in rows]


async def release(sessions: Sessions, claim: Claim, *, retry_in_seconds: float) -> None:
    """Give a claim back unused (the task could not be queued): retried after the delay."""
    await _complete(sessions, claim, retry_in_seconds)


async def _complete(sessions: Sessions, claim: Claim, seconds: float) -> bool:
    """Schedule the next sync and give the claim up, if it is still ours. A sync staff asked
    for while this one ran (``force_sync``) makes the provider due at once instead."""
    async with transaction(sessions) as session:
        result = await session.execute(
            text(
                "UPDATE providers SET"
                " next_sync_at = CASE WHEN sync_requested_at >= sync_claimed_at THEN now()"
                " ELSE now() + make_interval(secs => :s) END,"
                " sync_token = NULL, sync_claimed_at = NULL, sync_requested_at = NULL"
                " WHERE id = :p AND sync_token = :t"
            ),
            {"s": max(0.0, seconds), "p": claim.provider_id, "t": claim.token},
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def outstanding_claims(sessions: Sessions) -> int:
    """Claims given out and not yet completed or lapsed: syncs queued or running."""
    async with sessions() as session:
        count = await session.execute(
            text(
                "SELECT count(*) FROM providers"
                " WHERE sync_token IS NOT NULL AND next_sync_at > now()"
            )
        )
        return int(count.scalar_one())


async def holds_claim(sessions: Sessions, claim: Claim) -> bool:
    async with sessions() as session:
        token = (
            await session.execute(
                text("SELECT sync_token FROM providers WHERE id = :p AND enabled"),
                {"p": claim.provider_id},
            )
        ).scalar_one_or_none()
    return token is not None and token == claim.token


@dataclass(slots=True)
class ClaimOutcome:
    claim: Claim
    ran: bool  # the sync was attempted (not superseded, not held back by the breaker)
    report: SyncReport | None = None
    breaker: BreakerState = BreakerState.CLOSED
    next_sync_in_seconds: float | None = None
    note: str = ""


async def run_claim(
    engine: SyncEngine, breaker: CircuitBreaker | None, settings: Settings, claim: Claim
) -> ClaimOutcome:
    """Run one claimed sync and schedule the next. Never raises for a provider's problems."""
    sessions = engine.sessions
    if not await holds_claim(sessions, claim):
        log.info("sync of %s dropped: superseded by a newer dispatch", claim.provider_id)
        return ClaimOutcome(claim, ran=False, note="superseded")

    if breaker is not None:
        decision = await breaker.allow(claim.provider_id)
        if not decision.allowed:
            # No call to an operator that keeps failing; come back when a trial is allowed.
            wait = max(decision.retry_in_seconds, 1.0)
            await _complete(sessions, claim, wait)
            log.info(
                "sync of %s held back: circuit %s for %.0fs",
                claim.provider_id,
                decision.state,
                wait,
            )
            return ClaimOutcome(
                claim, ran=False, breaker=decision.state, next_sync_in_seconds=wait, note="circuit"
            )

    try:
        report = await engine.sync(claim.provider_id)
    except ProviderNotFound:
        return ClaimOutcome(claim, ran=False, note="provider deleted")

    state = BreakerState.CLOSED
    if report.skipped:
        # Someone else (a forced sync, an overrunning earlier dispatch) is syncing it right now.
        seconds = settings.sync_min_interval_seconds
    else:
        async with sessions() as session:
            provider = await repository.get(session, claim.provider_id)
        ttl = provider.ttl_seconds if provider is not None else None
        failures = provider.consecutive_failures if provider is not None else 0
        seconds = next_interval(settings, ttl, 0 if report.ok else max(failures, 1))
        if breaker is not None:
            if report.ok:
                await breaker.record_success(claim.provider_id)
            else:
                decision = await breaker.record_failure(claim.provider_id)
                state = decision.state
                if decision.state is BreakerState.OPEN:
                    seconds = max(seconds, decision.retry_in_seconds)
        if report.retry_after_seconds:
            # The operator said when to come back (429/503 Retry-After): never sooner, but
            # no later than our own backoff cap (an operator may send any number).
            retry_after = min(report.retry_after_seconds, settings.sync_max_backoff_seconds)
            seconds = max(seconds, retry_after)
    if not await _complete(sessions, claim, seconds):
        log.info("sync of %s finished after its claim lapsed", claim.provider_id)
    return ClaimOutcome(claim, True, report, state, seconds)


class ProviderDisabled(DomainError):
    code = "PROVIDER_DISABLED"


async def force_sync(sessions: Sessions, provider_ids: Sequence[str]) -> int:
    """Make providers due now (admin "sync now"): the scheduler claims them within a tick,
    wherever the syncs run. A provider whose sync is running is not disturbed: it is due again
    as soon as that sync completes. Returns how many of the named providers exist; a disabled
    one is refused (it would never be synced)."""
    async with transaction(sessions) as session:
        disabled = (
            (
                await session.execute(
                    text("SELECT id FROM providers WHERE id = ANY(:ids) AND NOT enabled"),
                    {"ids": list(provider_ids)},
                )
            )
            .scalars()
            .all()
        )
        if disabled:
            raise ProviderDisabled(
                f"provider(s) {', '.join(sorted(disabled))} disabled: enable before syncing"
            )
        result = await session.execute(
            text(
                "UPDATE providers SET sync_requested_at = now(),"
                " next_sync_at = CASE WHEN sync_token IS NULL THEN now() ELSE next_sync_at END"
                " WHERE id = ANY(:ids)"
            ),
            {"ids": list(provider_ids)},
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
