"""``mobility worker``: taskiq workers on the task queue (syncs and webhook rounds)."""

from __future__ import annotations

import logging

from taskiq.cli.common_args import LogLevel
from taskiq.cli.worker.args import WorkerArgs
from taskiq.cli.worker.run import run_worker

from app.commands.console import say
from app.commands.metrics_port import serve_metrics_or_say_why
from app.platform import metrics
from app.platform.settings import Settings

__all__ = ["run"]


def run(
    processes: int,
    concurrency: int | None,
    settings: Settings,
    *,
    metrics_at: tuple[str, int] | None = None,
) -> int:
    """taskiq workers on the task queue (app/task_queue.py): syncs and webhook rounds. Blocks until
    stopped. With ``metrics_at``, the processes count into one directory and this (the
    supervising) process serves their metrics."""
    directory = metrics.use_multiprocess_dir() if metrics_at is not None else None
    if metrics_at is not None and directory is not None:
        refused = serve_metrics_or_say_why(metrics_at, settings)
        if refused is not None:
            metrics.remove_multiprocess_dir(directory)
            return refused
    say(
        f"sync worker: {processes} process(es), {concurrency or settings.sync_concurrency} "
        f"sync(s) at a time each, queue {settings.redis_prefix}:tasks (Ctrl-C to stop)"
    )
    args = WorkerArgs(
        broker="app.task_queue:worker_broker",
        modules=[],
        workers=processes,
        max_async_tasks=concurrency or settings.sync_concurrency,
        # On SIGTERM (or SIGINT) a worker stops reading the queue and gives the tasks it runs
        # this long to finish (docs/operations-shutdown.md). A task still running then is never
        # acknowledged: it stays pending in the stream and another worker claims it once idle
        # for a claim's lease (app/task_queue.py). A grace at least the sync deadline lets
        # every sync in flight finish.
        wait_tasks_timeout=settings.shutdown_grace_seconds,
        shutdown_timeout=settings.shutdown_grace_seconds + 5,
        # The root handler app/cli.py configured (MOBILITY_LOG_FORMAT): the worker processes
        # are forked and inherit it; taskiq's own basicConfig would be a second format.
        configure_logging=False,
        # taskiq sets its loggers to this level: the one the root logger has.
        log_level=LogLevel(logging.getLogger().getEffectiveLevel()),
    )
    try:
        return run_worker(args) or 0
    finally:
        if directory is not None:
            metrics.remove_multiprocess_dir(directory)
