"""The sync scheduler: every second, claim the providers that are due and dispatch them.

Each provider is synced at its own cadence (its feeds' ``ttl``, bounded by settings; backoff
after failures); the rules and the claim protocol are in providers/dispatch.py. Where a claimed
sync runs is the dispatcher's business:

- :class:`InProcessDispatcher`: in this process, at most ``sync_concurrency`` at a time (the
  one-machine default: ``mobility serve`` runs the scheduler and the syncs);
- :class:`QueueDispatcher`: onto the Redis stream that ``mobility worker`` processes consume
  (providers/tasks.py), for a scheduler running alone (``mobility scheduler``).

Claims are atomic in PostgreSQL, so a second scheduler (a standby, or two API processes with
background sync on) cannot dispatch a provider twice; it only adds polling.

Other kinds of polled job (``JobKind``, providers/dispatch.py: GTFS-Realtime feeds) ride the
same rounds, dispatchers and workers with claims of their own: each round the kinds take turns
at the capacity, so neither can starve the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from app.platform.settings import Settings
from providers.breaker import CircuitBreaker
from providers.dispatch import (
    PROVIDER_SYNC,
    Claim,
    JobKind,
    KickJob,
    KickSync,
    claim_due,
    next_interval,
    outstanding_claims,
    release,
    run_claim,
)
from providers.sync import SyncEngine

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = [
    "Dispatcher",
    "InProcessDispatcher",
    "JobKind",
    "KickJob",
    "KickSync",
    "QueueDispatcher",
    "Scheduler",
    "next_interval",
    "start_scheduler",
]

log = logging.getLogger(__name__)

# A claim that could not be queued (Redis down) is retried this much later.
REQUEUE_DELAY_SECONDS = 5.0


class Dispatcher(Protocol):
    def capacity(self) -> int:
        """How many claims to take this round."""
        ...

    async def refresh(self) -> None:
        """Update what ``capacity`` knows, before a round."""
        ...

    async def dispatch(self, claim: Claim) -> None: ...

    async def aclose(self) -> None: ...


class InProcessDispatcher:
    def __init__(
        self,
        engine: SyncEngine,
        breaker: CircuitBreaker | None,
        settings: Settings,
        kinds: Sequence[JobKind] = (),
    ) -> None:
        self._engine = engine
        self._breaker = breaker
        self._settings = settings
        self._kinds = {k.kind: k for k in kinds}
        self._running: set[asyncio.Task[None]] = set()

    def capacity(self) -> int:
        # Only claim what can start now: a claim waiting for a free slot would eat its lease.
        return self._settings.sync_concurrency - len(self._running)

    async def refresh(self) -> None:
        return None

    async def dispatch(self, claim: Claim) -> None:
        task = asyncio.create_task(self._run(claim), name=f"sync-{claim.provider_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, claim: Claim) -> None:
        kind = self._kinds.get(claim.kind)
        try:
            if kind is None:
                await run_claim(self._engine, self._breaker, self._settings, claim)
            else:
                await kind.run(claim)
        except asyncio.CancelledError:
            # Shutting down mid-sync: give the claim back, so the next process syncs the
            # provider at once instead of waiting out the lease.
            with contextlib.suppress(Exception):
                if kind is None:
                    await asyncio.shield(release(self._engine.sessions, claim, retry_in_seconds=0))
                else:
                    await asyncio.shield(kind.release(claim, retry_in_seconds=0))
            raise
        except Exception:
            # The claim lapses after its lease and the provider is claimed again.
            log.exception("sync of %s crashed", claim.provider_id)

    async def aclose(self) -> None:
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class QueueDispatcher:
    """Puts claims on the task stream. ``kick`` is the taskiq task's ``kiq``.

    At most ``max_outstanding`` claims are out at a time (queued or running): beyond what the
    workers can start soon, a claim would only wait in the stream until its lease ran out."""

    def __init__(
        self,
        kick: KickSync,
        engine: SyncEngine,
        *,
        max_outstanding: int = 50,
        kinds: Sequence[JobKind] = (),
        kick_job: KickJob | None = None,
    ) -> None:
        if kinds and kick_job is None:
            raise ValueError("queued jobs of other kinds need the task queue's job kicker")
        self._kick = kick
        self._kick_job = kick_job
        self._engine = engine
        self._kinds = {k.kind: k for k in kinds}
        self._max_outstanding = max_outstanding
        self._outstanding = 0

    def capacity(self) -> int:
        return self._max_outstanding - self._outstanding

    async def refresh(self) -> None:
        outstanding = await outstanding_claims(self._engine.sessions)
        for kind in self._kinds.values():
            outstanding += await kind.outstanding()
        self._outstanding = outstanding

    async def dispatch(self, claim: Claim) -> None:
        kind = self._kinds.get(claim.kind)
        try:
            if kind is None:
                await self._kick(claim.provider_id, claim.token)
            else:
                assert self._kick_job is not None
                await self._kick_job(claim.kind, claim.provider_id, claim.token)
        except Exception as exc:  # taskiq wraps broker errors in SendTaskError
            log.warning("could not queue the %s job of %s: %s", claim.kind, claim.provider_id, exc)
            if kind is None:
                await release(self._engine.sessions, claim, retry_in_seconds=REQUEUE_DELAY_SECONDS)
            else:
                await kind.release(claim, retry_in_seconds=REQUEUE_DELAY_SECONDS)
            return
        self._outstanding += 1

    async def aclose(self) -> None:
        return None


class Scheduler:
    def __init__(
        self,
        engine: SyncEngine,
        settings: Settings,
        dispatcher: Dispatcher | None = None,
        *,
        tick_seconds: float = 1.0,
        kinds: Sequence[JobKind] = (),
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.kinds = tuple(kinds)
        self.dispatcher = dispatcher or InProcessDispatcher(engine, None, settings, self.kinds)
        self._tick = tick_seconds
        self._task: asyncio.Task[None] | None = None
        self._rounds = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sync-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.dispatcher.aclose()

    async def run_once(self) -> list[Claim]:
        """One round: claim what is due (within the dispatcher's capacity) and dispatch it;
        the kinds of job take turns at claiming first."""
        await self.dispatcher.refresh()
        capacity = self.dispatcher.capacity()
        claimers: list[tuple[str, JobKind | None]] = [(PROVIDER_SYNC, None)]
        claimers += [(k.kind, k) for k in self.kinds]
        turn = self._rounds % len(claimers)
        self._rounds += 1
        claims: list[Claim] = []
        for _name, kind in claimers[turn:] + claimers[:turn]:
            limit = capacity - len(claims)
            if limit <= 0:
                break
            if kind is None:
                claims += await claim_due(self.engine.sessions, self.settings, limit=limit)
            else:
                claims += await kind.claim_due(limit)
        for claim in claims:
            await self.dispatcher.dispatch(claim)
        return claims

    async def _loop(self) -> None:
        while True:
            try:
                await self.engine.ensure_index_ready()
            except Exception as exc:  # Redis down: search uses PostGIS; try again next round
                log.debug("index check failed: %s", exc)
            try:
                await self.run_once()
            except Exception:  # keep scheduling whatever one round did
                log.exception("scheduler round failed")
            await asyncio.sleep(self._tick)


@asynccontextmanager
async def start_scheduler(
    runtime: Runtime, *, kick: KickSync | None = None, kick_job: KickJob | None = None
) -> AsyncIterator[Scheduler]:
    """A running scheduler dispatching as ``sync_dispatch`` says, stopped on exit: in process,
    or (``queue``) through ``kick``, which queues a sync on the task queue, and ``kick_job``,
    which queues a job of another kind (app/task_queue.py's ``scheduling`` opens the queue
    and passes both). The other kinds are the runtime's ``job_kinds``."""
    settings = runtime.settings
    kinds = runtime.job_kinds
    dispatcher: Dispatcher
    if settings.sync_dispatch == "queue":
        if kick is None:
            raise ValueError("sync_dispatch=queue: the scheduler needs the task queue's kicker")
        dispatcher = QueueDispatcher(
            kick,
            runtime.sync,
            max_outstanding=settings.sync_max_queued,
            kinds=kinds,
            kick_job=kick_job,
        )
    else:
        dispatcher = InProcessDispatcher(runtime.sync, runtime.breaker, settings, kinds)
    scheduler = Scheduler(runtime.sync, settings, dispatcher, kinds=kinds)
    scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.stop()
