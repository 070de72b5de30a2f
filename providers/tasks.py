"""Background tasks on taskiq with taskiq-redis's ``RedisStreamBroker`` (acknowledged delivery).

``mobility worker`` runs taskiq workers on :func:`worker_broker`; ``mobility scheduler`` claims
due providers and queues one ``sync_provider`` task per claim (providers/scheduler.py). A task
is acknowledged only after it ran (taskiq's default ``WHEN_SAVED``): a worker killed mid-sync
leaves its message pending in the stream, and another worker claims it once it has been idle
for a claim's lease. By then the scheduler may already have dispatched the provider again; the
claim token carried by the task (providers/dispatch.py) makes the older copy a no-op, so the
provider is synced once, not twice.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from taskiq import AsyncBroker, TaskiqEvents, TaskiqState
from taskiq_redis import RedisStreamBroker

from app.redis import RedisKeys
from app.runtime import Runtime, open_runtime
from app.settings import Settings, get_settings
from providers.dispatch import Claim, claim_lease_seconds, run_claim
from providers.scheduler import KickSync

log = logging.getLogger(__name__)

SYNC_TASK = "mobility.sync_provider"
CONSUMER_GROUP = "sync-workers"


@dataclass
class _WorkerResources:
    """What a worker process opens once at start and closes at shutdown."""

    settings: Settings
    runtime: Runtime | None = None
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)


def build_broker(settings: Settings) -> AsyncBroker:
    keys = RedisKeys(settings.redis_prefix)
    broker = RedisStreamBroker(
        url=settings.redis_url,
        queue_name=keys.task_stream,
        consumer_group_name=CONSUMER_GROUP,
        # "0": a group created after tasks were queued still delivers them (the default "$"
        # would skip everything queued before the first worker ever started).
        consumer_id="0",
        # Pending messages of a dead worker are reclaimed once idle this long. Shorter than a
        # claim's lease would hand a slow but live sync to a second worker.
        idle_timeout=int(claim_lease_seconds(settings) * 1000),
        xread_block=1000,
        # One message per read: a worker takes a task only when it can start it, so the
        # others share the queue (taskiq-redis's default of 100 let one consumer take every
        # pending task into its own backlog while another worker sat idle).
        xread_count=1,
        # The stream is a queue, not a log: bounded (tasks are tiny; a claim is re-made if one
        # were ever trimmed before delivery).
        maxlen=100_000,
    )
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

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, shutdown)
    broker.register_task(sync_provider, task_name=SYNC_TASK)
    # Webhook deliveries ride the same queue: `mobility scheduler` kicks a round every few
    # seconds and any worker runs it (app/fleet/tasks.py).
    from app.fleet.tasks import register_webhook_tasks

    register_webhook_tasks(broker, settings)
    return broker


def kicker(broker: AsyncBroker) -> KickSync:
    task = broker.find_task(SYNC_TASK)
    if task is None:
        raise RuntimeError(f"{SYNC_TASK} is not registered on this broker")

    async def kick(provider_id: str, token: str) -> object:
        return await task.kiq(provider_id, token)

    return kick


def worker_broker() -> AsyncBroker:
    """The broker ``mobility worker`` runs (taskiq imports it by name), from the environment."""
    return build_broker(get_settings())
