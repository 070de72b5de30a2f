"""What the whole system is doing right now, read from the database and Redis when metrics are
scraped: each provider's health, data age and circuit breaker, the task queue's depth, and the
backlogs that should stay short (bookings waiting on an operator, webhook deliveries).

These are states, not events: every API process reads the same truth, so a scrape of any of
them reports it (alert rules take ``max`` over instances). Counted events are
app/platform/metrics.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.health import HealthStatus, SyncRecord, data_age_seconds, health_status
from app.platform.redis import RedisClient, RedisKeys
from app.platform.settings import Settings
from providers.breaker import BreakerState, CircuitBreaker

__all__ = [
    "Backlogs",
    "ProviderState",
    "QueueState",
    "read_backlogs",
    "read_providers",
    "read_queue",
    "with_breakers",
]

# The latest finished run's error count beside each provider: one statement for all of them.
# Ordered by started_at, which ix_sync_runs_provider_started serves (a provider's syncs never
# overlap, so it is also the latest by id): a read of one index entry or two per provider,
# however many runs the table keeps.
_PROVIDERS = text(
    """
    SELECT p.id, p.enabled, p.last_success_at, p.consecutive_failures,
           coalesce(r.error_count, 0) AS latest_errors
    FROM providers p
    LEFT JOIN LATERAL (
        SELECT error_count FROM sync_runs
        WHERE provider_id = p.id AND finished_at IS NOT NULL
        ORDER BY started_at DESC LIMIT 1
    ) r ON true
    ORDER BY p.id
    """
)

_BACKLOGS = text(
    """
    SELECT
      (SELECT count(*) FROM bookings WHERE state = 'PENDING') AS bookings_pending,
      (SELECT extract(epoch FROM now() - min(created_at)) FROM bookings
        WHERE state = 'PENDING') AS oldest_pending_booking,
      (SELECT count(*) FROM webhook_deliveries WHERE status = 'PENDING') AS webhooks_pending,
      (SELECT extract(epoch FROM now() - min(window_opened_at)) FROM webhook_deliveries
        WHERE status = 'PENDING') AS oldest_pending_webhook
    """
)


@dataclass(frozen=True, slots=True)
class ProviderState:
    id: str
    status: HealthStatus
    data_age_seconds: float | None  # None: never synced successfully
    consecutive_failures: int
    breaker: BreakerState | None = None  # None: not read (Redis unreachable)


@dataclass(frozen=True, slots=True)
class QueueState:
    # Queued and not yet handed to a worker (None: Redis cannot tell); handed to a worker and
    # not yet acknowledged.
    waiting: int | None
    running: int


@dataclass(slots=True)
class Backlogs:
    bookings_pending: int = 0
    oldest_pending_booking_seconds: float = 0.0
    webhooks_pending: int = 0
    oldest_pending_webhook_seconds: float = 0.0


async def read_providers(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> list[ProviderState]:
    now = datetime.now(UTC)
    async with sessions() as session:
        rows = (await session.execute(_PROVIDERS)).all()
    states = []
    for row in rows:
        record = SyncRecord(
            enabled=row.enabled,
            last_success_at=row.last_success_at,
            consecutive_failures=row.consecutive_failures,
            latest_errors=row.latest_errors,
        )
        states.append(
            ProviderState(
                id=row.id,
                status=health_status(record, settings, now),
                data_age_seconds=data_age_seconds(row.last_success_at, now),
                consecutive_failures=row.consecutive_failures,
            )
        )
    return states


async def with_breakers(
    providers: list[ProviderState], breaker: CircuitBreaker
) -> list[ProviderState]:
    """Each provider's breaker, read together (one round trip's wait, not one per provider)."""
    decisions = await asyncio.gather(*(breaker.state(p.id) for p in providers))
    return [
        replace(state, breaker=decision.state)
        for state, decision in zip(providers, decisions, strict=True)
    ]


QUEUE_COUNT_CAP = 10_000


async def read_queue(redis: RedisClient, keys: RedisKeys, group: str) -> QueueState:
    """The task stream's consumer group: ``lag`` (entries not yet delivered to the group) and
    ``pending`` (delivered, not acknowledged). Before any worker created the group, every
    entry of the stream is waiting."""
    stream = keys.task_stream
    if not await redis.exists(stream):
        return QueueState(0, 0)
    for info in await redis.xinfo_groups(stream):
        name = info.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == group:
            pending = int(info.get("pending") or 0)
            lag = info.get("lag")
            if lag is not None:
                return QueueState(int(lag), pending)
            # Redis cannot always say (entries deleted or trimmed before the group read
            # them, which a full queue's trimming does): count the entries after the last one
            # delivered, up to QUEUE_COUNT_CAP (past it, the cap: still far over any alert).
            last = info.get("last-delivered-id")
            last_id = last.decode() if isinstance(last, bytes) else str(last)
            if last_id == "0-0":
                return QueueState(int(await redis.xlen(stream)), pending)
            ahead = await redis.xrange(stream, min=f"({last_id}", max="+", count=QUEUE_COUNT_CAP)
            return QueueState(len(ahead or ()), pending)
    return QueueState(int(await redis.xlen(stream)), 0)


async def read_backlogs(sessions: async_sessionmaker[AsyncSession]) -> Backlogs:
    async with sessions() as session:
        row = (await session.execute(_BACKLOGS)).one()
    return Backlogs(
        bookings_pending=int(row.bookings_pending),
        oldest_pending_booking_seconds=float(row.oldest_pending_booking or 0.0),
        webhooks_pending=int(row.webhooks_pending),
        oldest_pending_webhook_seconds=float(row.oldest_pending_webhook or 0.0),
    )
