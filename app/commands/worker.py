"""``mobility worker``: taskiq workers on the task queue (syncs and webhook rounds)."""

from __future__ import annotations

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
        # On SIGTERM (or SIGINT) a worker stops reading the queue and gives the tasks it runs
        # this long to finish (docs/operations-shutdown.md). A task still running then is never
        # acknowledged: it stays pending in the stream and another worker claims it once idle
        # for a claim's lease (app/task_queue.py). A grace at least the sync deadline lets
        # every sync in flight finish.
        wait_tasks_timeout=settings.shutdown_grace_seconds,
        shutdown_timeout=settings.shutdown_grace_seconds + 5,
    )
    return run_worker(args) or 0
