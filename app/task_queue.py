"""The task queue: one taskiq broker on a Redis stream (taskiq-redis's ``RedisStreamBroker``,
acknowledged delivery) carrying every background task: provider syncs (providers/tasks.py) and
webhook delivery rounds (app/fleet/tasks.py). It is composed here, above both, so that neither
imports the other.

``mobility worker`` runs taskiq workers on :func:`worker_broker`; ``mobility scheduler`` opens
the queue with :func:`running_broker` and kicks syncs (:func:`scheduling`) and webhook rounds on
it. A task is acknowledged only after it ran (taskiq's default ``WHEN_SAVED``): a worker killed
mid-task leaves its message pending in the stream, and another worker claims it once it has
been idle for a sync claim's lease.

On a Redis Cluster (``MOBILITY_REDIS_CLUSTER``) the broker is :class:`ClusterStreamBroker`:
taskiq-redis 1.2.4's ``RedisStreamClusterBroker`` with what its single-server broker has and it
lacks, one message per read and the reclaiming of a dead worker's pending tasks (XAUTOCLAIM).
The stream is one key, so it lives on whichever node holds its slot.

Every task carries a request id (:class:`RequestIdMiddleware`): the one current where it was
kicked, in a message label, or a new one if none was; the worker runs the task with it, so
every line the task logs has it (docs/operations-logs.md).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio.cluster import ClusterNode
from taskiq import AckableMessage, AsyncBroker, TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq_redis import RedisStreamBroker, RedisStreamClusterBroker

from app.fleet.tasks import register_webhook_tasks
from app.platform import metrics
from app.platform.redis import RedisKeys, cluster_seeds
from app.platform.request_id import REQUEST_ID, new_request_id, well_formed
from app.platform.settings import Settings, get_settings
from app.platform.tracing import TaskTracing, active_tracing, configure_tracing
from app.runtime import Runtime, open_runtime
from providers.dispatch import claim_lease_seconds
from providers.scheduler import Scheduler, start_scheduler
from providers.tasks import job_kicker, kicker, register_sync_tasks

__all__ = [
    "CONSUMER_GROUP",
    "REQUEST_ID_LABEL",
    "ClusterStreamBroker",
    "RequestIdMiddleware",
    "TaskMetrics",
    "build_broker",
    "running_broker",
    "scheduling",
    "worker_broker",
]

CONSUMER_GROUP = "sync-workers"
REQUEST_ID_LABEL = "request_id"


class RequestIdMiddleware(TaskiqMiddleware):
    """The request id across the queue: put in a label when a task is kicked, restored in the
    worker for the task's run (each message is run in an asyncio task of its own, so the id
    set here is that run's alone)."""

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            message.labels[REQUEST_ID_LABEL] = request_id
        return message

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        # A label is checked like a header: anyone who can write to the stream can write one.
        carried = well_formed(str(message.labels.get(REQUEST_ID_LABEL, "")))
        REQUEST_ID.set(carried or new_request_id())
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[object]) -> None:
        REQUEST_ID.set(None)


def build_broker(settings: Settings) -> AsyncBroker:
    """The broker with every task registered (not started)."""
    broker = _stream_broker(settings)
    broker.add_middlewares(RequestIdMiddleware())
    broker.add_middlewares(TaskMetrics())
    tracing = active_tracing()
    if tracing is not None:
        # The kicking side puts its trace in each task's labels; the worker continues it.
        broker.add_middlewares(TaskTracing(tracing))
    register_sync_tasks(broker, settings, open_runtime)
    # Webhook deliveries ride the same queue: `mobility scheduler` kicks a round every few
    # seconds and any worker runs it.
    register_webhook_tasks(broker, settings)
    return broker


def worker_broker() -> AsyncBroker:
    """The broker ``mobility worker`` runs (taskiq imports it by name, in each worker process),
    from the environment; tracing is switched on here first if it is configured."""
    settings = get_settings()
    configure_tracing(settings, role="worker")
    return build_broker(settings)


@asynccontextmanager
async def running_broker(settings: Settings) -> AsyncIterator[AsyncBroker]:
    """The broker, started (which declares the workers' consumer group before the first task
    is queued) and shut down on exit."""
    broker = build_broker(settings)
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.shutdown()


@asynccontextmanager
async def scheduling(runtime: Runtime) -> AsyncIterator[Scheduler]:
    """The sync scheduler as ``sync_dispatch`` says: syncing in process, or queueing each sync
    for the workers on a broker opened for it."""
    if runtime.settings.sync_dispatch != "queue":
        async with start_scheduler(runtime) as scheduler:
            yield scheduler
        return
    async with (
        running_broker(runtime.settings) as broker,
        start_scheduler(runtime, kick=kicker(broker), kick_job=job_kicker(broker)) as scheduler,
    ):
        yield scheduler


# The label a task carries from the process that sent it: when it was queued (epoch seconds).
QUEUED_AT = "mobility_queued_at"


class TaskMetrics(TaskiqMiddleware):
    """Each task's wait on the queue and its run, by task name (ours: a closed set) and
    outcome (``mobility_task_wait_seconds``, ``mobility_task_duration_seconds``)."""

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        message.labels[QUEUED_AT] = f"{time.time():.6f}"
        return message

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        try:
            queued_at = float(message.labels.get(QUEUED_AT, ""))
        except ValueError:
            return message  # sent by a version that did not say
        metrics.TASK_WAIT.labels(message.task_name).observe(max(0.0, time.time() - queued_at))
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        outcome = "error" if result.is_err else "ok"
        metrics.TASKS.labels(message.task_name, outcome).observe(result.execution_time)


class ClusterStreamBroker(RedisStreamClusterBroker):
    """The stream broker on a Redis Cluster, reading as ``RedisStreamBroker`` does on one
    server: at most ``xread_count`` messages per read, and after each read (with or without
    news) the messages another consumer left pending longer than ``idle_timeout`` ms claimed
    for this one. XAUTOCLAIM is atomic, so two workers never claim one message at once (the
    single-server broker's extra lock key is not needed)."""

    def __init__(
        self,
        *,
        url: str,
        idle_timeout: int,
        xread_count: int,
        unacknowledged_batch_size: int = 100,
        **options: Any,
    ) -> None:
        first, seeds = cluster_seeds(url)
        super().__init__(
            url=first,
            startup_nodes=[ClusterNode(host, port) for host, port in seeds[1:]],
            **options,
        )
        self.idle_timeout = idle_timeout
        self.count = xread_count
        self.unacknowledged_batch_size = unacknowledged_batch_size

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        while True:
            # redis-py types stream replies loosely (Any or str); these are the client's
            # bytes replies: [(stream, [(id, {field: value})])] and [next, [(id, fields)], ...].
            fetched: Any = await self.redis.xreadgroup(
                self.consumer_group_name,
                self.consumer_name,
                {self.queue_name: ">"},
                block=self.block,
                count=self.count,
                noack=False,
            )
            for stream, messages in fetched or ():
                for message_id, fields in messages:
                    yield AckableMessage(
                        data=fields[b"data"],
                        ack=self._ack_generator(id=message_id, queue_name=stream),
                    )
            reclaimed: Any = await self.redis.xautoclaim(
                self.queue_name,
                self.consumer_group_name,
                self.consumer_name,
                min_idle_time=self.idle_timeout,
                count=self.unacknowledged_batch_size,
            )
            for message_id, fields in reclaimed[1]:
                if fields is None:  # trimmed from the stream while pending: nothing to run
                    continue
                yield AckableMessage(
                    data=fields[b"data"],
                    ack=self._ack_generator(id=message_id, queue_name=self.queue_name),
                )


def _stream_broker(settings: Settings) -> AsyncBroker:
    keys = RedisKeys(settings.redis_prefix)
    # One set of choices, whichever Redis: a single server's broker or the cluster's.
    broker_class = ClusterStreamBroker if settings.redis_cluster else RedisStreamBroker
    broker: AsyncBroker = broker_class(
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
    return broker
