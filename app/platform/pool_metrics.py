"""The database pools' use, sampled: connections checked out and requests waiting for one, per
pool, every few seconds (``mobility_db_pool_connections_in_use``, ``mobility_db_pool_waiting``).

Neither SQLAlchemy nor asyncpg counts its waiters in public: both keep them as the getters of
an ``asyncio.Queue``, read here. ``tests/app/test_metrics.py`` holds a pool full and checks the
count, so a library upgrade that moves them fails there instead of reporting zero forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.platform.background import in_background
from app.platform.metrics import DB_POOL_IN_USE, DB_POOL_WAITING

__all__ = ["pool_use", "sampling_pools"]

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 5.0


def _waiters(queue: Any) -> int:
    getters = getattr(queue, "_getters", None)
    if getters is None:
        return 0
    return sum(1 for waiter in getters if not waiter.done())


def pool_use(pool: AsyncEngine | asyncpg.Pool) -> tuple[int, int]:
    """(in use, waiting) of an engine's pool or an asyncpg pool, now."""
    if isinstance(pool, AsyncEngine):
        queue_pool: Any = pool.sync_engine.pool
        in_use = int(queue_pool.checkedout())
        inner = getattr(queue_pool, "_pool", None)  # sqlalchemy.util.queue.AsyncAdaptedQueue
        waiting = _waiters(getattr(inner, "_queue", None)) if inner is not None else 0
        return in_use, waiting
    in_use = pool.get_size() - pool.get_idle_size()
    return in_use, _waiters(getattr(pool, "_queue", None))


def sample(pools: Mapping[str, AsyncEngine | asyncpg.Pool]) -> None:
    for name, pool in pools.items():
        in_use, waiting = pool_use(pool)
        DB_POOL_IN_USE.labels(name).set(in_use)
        DB_POOL_WAITING.labels(name).set(waiting)


@contextlib.asynccontextmanager
async def sampling_pools(
    pools: Mapping[str, AsyncEngine | asyncpg.Pool], every: float = SAMPLE_SECONDS
) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            try:
                sample(pools)
            except Exception:  # a sample must never stop the process's other work
                log.exception("sampling the database pools failed")
            await asyncio.sleep(every)

    async with in_background(loop(), name="pool-metrics"):
        yield
