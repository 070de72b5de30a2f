"""``mobility scheduler``: the scheduler alone, queueing due syncs and webhook rounds for the
workers and running booking upkeep, for multi-process deployments."""

from __future__ import annotations

import asyncio
import signal

from app.booking.maintenance import start_booking_maintenance
from app.commands.console import say
from app.commands.metrics_port import serve_metrics_or_say_why
from app.fleet.tasks import kick_webhook_rounds
from app.platform.settings import Settings
from app.platform.tracing import configure_tracing
from app.runtime import open_runtime
from app.task_queue import running_broker
from providers.scheduler import start_scheduler
from providers.tasks import job_kicker, kicker

__all__ = ["run"]


async def run(settings: Settings, *, metrics_at: tuple[str, int] | None = None) -> int:
    """The scheduler alone: claims due providers and queues their syncs for the workers, and
    runs booking upkeep and webhook deliveries; its metrics on ``metrics_at`` if given."""
    if metrics_at is not None:
        refused = serve_metrics_or_say_why(metrics_at, settings)
        if refused is not None:
            return refused
    queued = settings.model_copy(update={"sync_dispatch": "queue"})
    # Before the runtime and the broker: their clients and tasks are traced if it is on.
    configure_tracing(queued, role="scheduler")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        open_runtime(queued) as rt,
        running_broker(queued) as broker,
        start_scheduler(rt, kick=kicker(broker), kick_job=job_kicker(broker)),
        # The periodic upkeep `mobility serve` runs in process: here for multi-process setups
        # (API processes then run with MOBILITY_BACKGROUND_SYNC=false).
        start_booking_maintenance(rt.bookings),
        kick_webhook_rounds(broker),
    ):
        say(
            f"sync scheduler: queueing due syncs and webhook rounds on "
            f"{queued.redis_prefix}:tasks for the workers; booking upkeep runs here "
            "(Ctrl-C to stop)"
        )
        await stop.wait()
    say("scheduler stopped")
    return 0
