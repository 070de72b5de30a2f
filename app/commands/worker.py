"""``mobility worker``: taskiq workers on the task queue (syncs and webhook rounds)."""

from __future__ import annotations

import logging

from taskiq.cli.common_args import LogLevel
from taskiq.cli.worker.args import WorkerArgs
from taskiq.cli.worker.run import run_worker

from app.commands.console import say
from app.platform.settings import Settings

__all__ = ["run"]


def run(processes: int, concurrency: int | None, settings: Settings) -> int:
    """taskiq workers on the task queue (app/task_queue.py): syncs and webhook rounds. Blocks until
    stopped."""
    say(
        f"sync worker: {processes} process(es), {concurrency or settings.sync_concurrency} "
        f"sync(s) at a time each, queue {settings.redis_prefix}:tasks (Ctrl-C to stop)"
    )
    args = WorkerArgs(
        broker="app.task_queue:worker_broker",
        modules=[],
        workers=processes,
        max_async_tasks=concurrency or settings.sync_concurrency,
        # A sync may take up to its deadline: let one in flight finish on shutdown.
        wait_tasks_timeout=settings.sync_deadline_seconds,
        shutdown_timeout=settings.sync_deadline_seconds + 5,
        # The root handler app/cli.py configured (MOBILITY_LOG_FORMAT): the worker processes
        # are forked and inherit it; taskiq's own basicConfig would be a second format.
        configure_logging=False,
        # taskiq sets its loggers to this level: the one the root logger has.
        log_level=LogLevel(logging.getLogger().getEffectiveLevel()),
    )
    return run_worker(args) or 0
