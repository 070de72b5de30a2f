"""The sync task: ``sync_provider`` runs one claimed provider sync in a ``mobility worker``.

The task queue (app/task_queue.py) carries it: ``mobility scheduler`` claims due providers and
queues one task per claim (providers/scheduler.py), and any worker runs it. A task is
acknowledged only after it ran (taskiq's default ``WHEN_SAVED``): a worker killed mid-sync
leaves its message pending in the stream, and another worker claims it once it has been idle
for a claim's lease. By then the scheduler may already have dispatched the provider again; the
claim token carried by the task (providers/dispatch.py) makes the older copy a no-op, so the
provider is synced once, not twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from taskiq import AsyncBroker, TaskiqEvents, TaskiqState

from app.platform.settings import Settings
from providers.breaker import CircuitBreaker
from providers.dispatch import Claim, JobKind, KickJob, KickSync, run_claim
from providers.sync import SyncEngine

log = logging.getLogger(__name__)

SYNC_TASK = "mobility.sync_provider"
#: Runs a claimed job of another kind (providers/dispatch.JobKind): (kind, id, token).
JOB_TASK = "mobility.run_job"


class SyncRuntime(Protocol):
    """What a sync task needs of the process's runtime (app/runtime.py's ``Runtime`` has it):
    named here so that providers/ does not import the runtime, which holds the domains."""

    @property
    def sync(self) -> SyncEngine: ...

    @property
    def breaker(self) -> CircuitBreaker: ...

    @property
    def job_kinds(self) -> tuple[JobKind, ...]: ...


OpenRuntime = Callable[[Settings], AbstractAsyncContextManager[SyncRuntime]]


@dataclass
class _WorkerResources:
    """What a worker process opens once at start and closes at shutdown."""

    settings: Settings
    runtime: SyncRuntime | None = None
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)


def register_sync_tasks(broker: AsyncBroker, settings: Settings, open_runtime: OpenRuntime) -> None:
    """Add ``mobility.sync_provider`` to ``broker``, with the runtime each worker process
    opens for it with ``open_runtime`` (app/task_queue.py builds the broker and passes
    app.runtime.open_runtime)."""
    resources = _WorkerResources(settings)

    async def startup(state: TaskiqState) -> None:
        resources.runtime = await resources.stack.enter_async_context(open_runtime(settings))
        log.info("sync worker ready")

    async def shutdown(state: TaskiqState) -> None:
        await resources.stack.aclose()

    async def sync_provider(provider_id: str, token: str) -> str:
        runtime = resources.runtime
        if runtime is None:
            raise RuntimeError("the worker's runtime is not open")
        outcome = await run_claim(
            runtime.sync, runtime.breaker, settings, Claim(provider_id, token)
        )
        if outcome.report is not None:
            r = outcome.report
            log.info(
                "sync %s: %s in %.2fs%s",
                provider_id,
                "ok" if r.ok else "FAILED",
                r.duration_seconds,
                f" ({r.error})" if r.error else "",
            )
        return outcome.note or ("ok" if outcome.report and outcome.report.ok else "failed")

    async def run_job(kind: str, key: str, token: str) -> str:
        runtime = resources.runtime
        if runtime is None:
            raise RuntimeError("the worker's runtime is not open")
        job = next((k for k in runtime.job_kinds if k.kind == kind), None)
        if job is None:  # queued by a newer version that knows a kind this one does not
            log.warning("job of unknown kind %r dropped (%s)", kind, key)
            return "unknown kind"
        note = await job.run(Claim(key, token, kind=kind))
        log.info("%s job %s: %s", kind, key, note)
        return note

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, shutdown)
    broker.register_task(sync_provider, task_name=SYNC_TASK)
    broker.register_task(run_job, task_name=JOB_TASK)


def kicker(broker: AsyncBroker) -> KickSync:
    task = broker.find_task(SYNC_TASK)
    if task is None:
        raise RuntimeError(f"{SYNC_TASK} is not registered on this broker")

    async def kick(provider_id: str, token: str) -> object:
        return await task.kiq(provider_id, token)

    return kick


def job_kicker(broker: AsyncBroker) -> KickJob:
    task = broker.find_task(JOB_TASK)
    if task is None:
        raise RuntimeError(f"{JOB_TASK} is not registered on this broker")

    async def kick(kind: str, key: str, token: str) -> object:
        return await task.kiq(kind, key, token)

    return kick
