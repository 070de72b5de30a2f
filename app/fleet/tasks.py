"""The webhook round as a taskiq task, for ``mobility worker`` processes (app/task_queue.py
builds the broker).

:func:`register_webhook_tasks` adds the task and the resources it needs (its own small engine
and an HTTP client, opened at worker start-up) to a broker. Whoever schedules kicks the task
with :func:`webhook_kicker`, as often as it likes: a round claims its deliveries with
SKIP LOCKED and a lease, so copies of the task running at once, or a message redelivered after
a worker died, send nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from taskiq import AsyncBroker, TaskiqEvents, TaskiqState

from app.fleet.webhooks import TICK_SECONDS, run_webhook_round, utc_now, webhook_http_client
from app.platform.background import in_background
from app.platform.db import create_engine, session_factory
from app.platform.settings import Settings

__all__ = [
    "WEBHOOK_TASK",
    "KickWebhooks",
    "kick_webhook_rounds",
    "register_webhook_tasks",
    "webhook_kicker",
]

log = logging.getLogger(__name__)

WEBHOOK_TASK = "mobility.deliver_webhooks"

#: Queues one webhook round.
KickWebhooks = Callable[[], Awaitable[object]]


@dataclass
class _WebhookResources:
    sessions: async_sessionmaker[AsyncSession] | None = None
    http: httpx.AsyncClient | None = None
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)


def register_webhook_tasks(broker: AsyncBroker, settings: Settings) -> None:
    """Add ``mobility.deliver_webhooks`` to ``broker`` (call it where the broker is built)."""
    resources = _WebhookResources()

    async def startup(state: TaskiqState) -> None:
        # Its own pool, small: a round holds one connection per concurrent delivery at most.
        engine = create_engine(settings.database_url, pool_size=2)
        resources.stack.push_async_callback(engine.dispose)
        resources.sessions = session_factory(engine)
        # The delivery client, whose every connection is checked against where a tenant's
        # URL may lead (never a general-purpose client).
        resources.http = await resources.stack.enter_async_context(webhook_http_client(settings))

    async def shutdown(state: TaskiqState) -> None:
        await resources.stack.aclose()

    async def deliver_webhooks() -> str:
        if resources.sessions is None or resources.http is None:
            raise RuntimeError("the worker's webhook resources are not open")
        report = await run_webhook_round(resources.sessions, resources.http, utc_now())
        return f"{report.dispatched_events} events dispatched, {report.attempted} attempts"

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, shutdown)
    broker.register_task(deliver_webhooks, task_name=WEBHOOK_TASK)


def webhook_kicker(broker: AsyncBroker) -> KickWebhooks:
    task = broker.find_task(WEBHOOK_TASK)
    if task is None:
        raise RuntimeError(f"{WEBHOOK_TASK} is not registered on this broker")

    async def kick() -> object:
        return await task.kiq()

    return kick


@contextlib.asynccontextmanager
async def kick_webhook_rounds(
    broker: AsyncBroker, *, every_seconds: float = TICK_SECONDS
) -> AsyncIterator[None]:
    """Queue a webhook round for the workers on ``broker`` (started, app/task_queue.py) every
    ``every_seconds`` while open (``mobility scheduler``). A round that finds nothing due costs
    one indexed query; rounds queued while the workers are busy are harmless (each claims with
    SKIP LOCKED and a lease)."""
    kick = webhook_kicker(broker)

    async def loop() -> None:
        while True:
            try:
                await kick()
            except Exception:  # Redis away: the next tick tries again
                log.warning("could not queue a webhook round", exc_info=True)
            await asyncio.sleep(every_seconds)

    async with in_background(loop(), name="webhook-kicker"):
        yield
