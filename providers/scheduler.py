"""In-process sync scheduler for the one-machine default: each provider at its own cadence.

Cadence is the feeds' ``ttl`` bounded by the configured minimum and maximum; a failing provider
backs off exponentially (capped at the maximum) so a dead operator is not hammered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.db import transaction
from app.models import Provider
from app.settings import Settings
from providers import repository
from providers.sync import SyncEngine

log = logging.getLogger(__name__)


def next_interval(settings: Settings, ttl: int | None, consecutive_failures: int) -> float:
    base = max(settings.sync_min_interval_seconds, float(ttl or 0))
    base = min(base, settings.sync_max_interval_seconds)
    if consecutive_failures:
        backoff = settings.sync_min_interval_seconds * (2 ** min(consecutive_failures, 16))
        # Full jitter keeps many failing providers from retrying in lockstep.
        return random.uniform(base, max(base, min(backoff, settings.sync_max_interval_seconds)))
    return base


class Scheduler:
    def __init__(self, engine: SyncEngine, settings: Settings, *, max_concurrent: int = 4) -> None:
        self.engine = engine
        self.settings = settings
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sync-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.engine.ensure_index_ready()
            except Exception as exc:  # Redis down: search uses PostGIS; try again next round
                log.debug("index check failed: %s", exc)
            try:
                await self._dispatch_due()
            except Exception:  # keep scheduling whatever one round did
                log.exception("scheduler round failed")
            await asyncio.sleep(1.0)

    async def _dispatch_due(self) -> None:
        now = datetime.now(UTC)
        async with self.engine.sessions() as session:
            providers = await repository.list_all(session, enabled_only=True)
        for p in providers:
            if p.id in self._running:
                continue
            if p.next_sync_at is None or p.next_sync_at <= now:
                self._running[p.id] = asyncio.create_task(self._run(p.id), name=f"sync-{p.id}")

    async def _run(self, provider_id: str) -> None:
        try:
            async with self._semaphore:
                await self.engine.sync(provider_id)
        except Exception:
            log.exception("sync task for %s crashed", provider_id)
        finally:
            # Whatever happened, the next attempt is scheduled (with backoff after failures):
            # a provider must never be retried in a tight loop.
            try:
                await self._schedule_next(provider_id)
            except Exception:
                log.exception("could not schedule the next sync of %s", provider_id)
            self._running.pop(provider_id, None)

    async def _schedule_next(self, provider_id: str) -> None:
        async with transaction(self.engine.sessions) as session:
            provider = await repository.get(session, provider_id)
            if provider is None:
                return
            seconds = next_interval(
                self.settings, provider.ttl_seconds, provider.consecutive_failures
            )
            await session.execute(
                update(Provider)
                .where(Provider.id == provider.id)
                .values(next_sync_at=datetime.now(UTC) + timedelta(seconds=seconds))
            )
