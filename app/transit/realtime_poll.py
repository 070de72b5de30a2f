"""Polling transit feeds' GTFS-Realtime URLs through the sync scheduler and workers.

A transit feed whose ``realtime`` names URLs (``trip_updates``, ``vehicle_positions``,
``service_alerts``) is a job of its own kind for the scheduler (providers/scheduler.py): claimed,
run and completed by the same protocol as a provider's GBFS sync (providers/dispatch.py), on its
own claim rows (``transit_realtime_polls``, migration 0017), with the syncs' HTTP timeout,
deadline, body size cap, backoff after failures (capped, full jitter), the operator's
``Retry-After`` and the shared circuit breaker (providers/breaker.py, keyed ``transit:SLUG``).

One poll fetches the feed's kinds together, parses each (app/transit/realtime_parse.py), stores the
bodies that parsed in Redis (app/transit/realtime_store.py) and records the outcome on the row:
a poll succeeds when every kind did; a kind that failed keeps its previous body until that ages
out. Trip ids the active timetable does not have are counted on the row (``stats``), never
fatal. Health is decided by app/health.py's rules, as for providers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.http import FeedCache, FeedFetchError, fetch_bytes, redact_urls
from app.health import HealthStatus, SyncRecord, data_age_seconds, health_status
from app.platform.db import transaction
from app.platform.settings import Settings
from app.transit.realtime import RealtimeSnapshot, TripRelationship, merge_snapshots
from app.transit.realtime_parse import RealtimeFeedError, parse_feed
from app.transit.realtime_store import REALTIME_KINDS, RealtimeStore, StoredBody
from providers.breaker import BreakerState, CircuitBreaker
from providers.dispatch import Claim, claim_lease_seconds, next_interval

__all__ = [
    "KIND",
    "PollReport",
    "RealtimeFeedState",
    "RealtimePoller",
    "breaker_id",
    "realtime_states",
    "realtime_urls",
]

log = logging.getLogger(__name__)

#: The scheduler's name for this kind of job (providers/dispatch.py, ``Claim.kind``).
KIND = "transit_realtime"
Sessions = async_sessionmaker[AsyncSession]


def breaker_id(feed: str) -> str:
    """The feed's circuit breaker: beside the providers' (whose ids have no colon)."""
    return f"transit:{feed}"


def realtime_urls(realtime: dict[str, Any]) -> dict[str, str]:
    """The kinds a feed's ``realtime`` column names an http(s) URL for."""
    return {
        kind: url
        for kind in REALTIME_KINDS
        if isinstance(url := realtime.get(kind), str) and url.startswith(("http://", "https://"))
    }


@dataclass(slots=True)
class PollReport:
    feed: str
    ok: bool
    error: str | None = None
    entities: dict[str, int] = field(default_factory=dict)  # per kind
    unknown_trips: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    not_modified: list[str] = field(default_factory=list)
    retry_after_seconds: float | None = None
    duration_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class RealtimeFeedState:
    """A feed's live data health, for staff (CLI, status page) and metrics."""

    feed: str
    status: HealthStatus
    last_success_at: datetime | None
    data_age_seconds: float | None
    consecutive_failures: int
    last_error: str | None
    unknown_trips: int
    stats: dict[str, Any]
    breaker: BreakerState | None = None


_ENSURE_ROWS = text(
    """
    INSERT INTO transit_realtime_polls (feed)
    SELECT slug FROM transit_feeds f
    WHERE f.realtime <> '{}'::jsonb
      AND NOT EXISTS (SELECT 1 FROM transit_realtime_polls p WHERE p.feed = f.slug)
    ON CONFLICT DO NOTHING
    """
)

_CLAIM_DUE = text(
    """
    UPDATE transit_realtime_polls AS p
    SET poll_token = gen_random_uuid()::text,
        claimed_at = now(),
        next_poll_at = now() + make_interval(secs => :lease)
    WHERE p.feed IN (
        SELECT r.feed FROM transit_realtime_polls r
        JOIN transit_feeds f ON f.slug = r.feed
        WHERE f.enabled AND f.realtime <> '{}'::jsonb
          AND (r.next_poll_at IS NULL OR r.next_poll_at <= now())
        ORDER BY r.next_poll_at NULLS FIRST, r.feed
        LIMIT :limit
        FOR NO KEY UPDATE OF r SKIP LOCKED
    )
    RETURNING p.feed, p.poll_token
    """
)

_COMPLETE = text(
    """
    UPDATE transit_realtime_polls SET
      next_poll_at = CASE WHEN requested_at >= claimed_at THEN now()
                     ELSE now() + make_interval(secs => :s) END,
      poll_token = NULL, claimed_at = NULL, requested_at = NULL
    WHERE feed = :f AND poll_token = :t
    """
)

_STATES = text(
    """
    SELECT f.slug, f.enabled, p.last_success_at, coalesce(p.consecutive_failures, 0) AS failures,
           p.last_error, coalesce(p.stats, '{}'::jsonb) AS stats
    FROM transit_feeds f
    LEFT JOIN transit_realtime_polls p ON p.feed = f.slug
    WHERE f.realtime <> '{}'::jsonb
    ORDER BY f.slug
    """
)


@dataclass(eq=False, kw_only=True)
class RealtimePoller:
    """The scheduler's job kind for GTFS-Realtime feeds (providers/dispatch.JobKind)."""

    kind = KIND

    sessions: Sessions
    store: RealtimeStore
    http: httpx.AsyncClient
    settings: Settings
    breaker: CircuitBreaker | None
    _caches: dict[str, FeedCache] = field(default_factory=dict, init=False, repr=False)

    # -- the claim protocol (as providers/dispatch.py's, on transit_realtime_polls) ----------

    async def claim_due(self, limit: int) -> list[Claim]:
        if limit <= 0:
            return []
        async with transaction(self.sessions) as session:
            await session.execute(_ENSURE_ROWS)
            rows = await session.execute(
                _CLAIM_DUE, {"lease": claim_lease_seconds(self.settings), "limit": limit}
            )
            return [Claim(r.feed, r.poll_token, kind=KIND) for r in rows]

    async def release(self, claim: Claim, *, retry_in_seconds: float) -> None:
        await self._complete(claim, retry_in_seconds)

    async def outstanding(self) -> int:
        async with self.sessions() as session:
            count = await session.execute(
                text(
                    "SELECT count(*) FROM transit_realtime_polls"
                    " WHERE poll_token IS NOT NULL AND next_poll_at > now()"
                )
            )
            return int(count.scalar_one())

    async def _complete(self, claim: Claim, seconds: float) -> bool:
        async with transaction(self.sessions) as session:
            result = await session.execute(
                _COMPLETE, {"s": max(0.0, seconds), "f": claim.provider_id, "t": claim.token}
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _holds(self, claim: Claim) -> bool:
        async with self.sessions() as session:
            token = (
                await session.execute(
                    text(
                        "SELECT p.poll_token FROM transit_realtime_polls p"
                        " JOIN transit_feeds f ON f.slug = p.feed"
                        " WHERE p.feed = :f AND f.enabled"
                    ),
                    {"f": claim.provider_id},
                )
            ).scalar_one_or_none()
        return token is not None and token == claim.token

    async def run(self, claim: Claim) -> str:
        """Run one claimed poll and schedule the next (providers/dispatch.run_claim's steps).
        Never raises for a feed's problems; says what happened."""
        feed = claim.provider_id
        if not await self._holds(claim):
            log.info("realtime poll of %s dropped: superseded", feed)
            return "superseded"
        if self.breaker is not None:
            decision = await self.breaker.allow(breaker_id(feed))
            if not decision.allowed:
                wait = max(decision.retry_in_seconds, 1.0)
                await self._complete(claim, wait)
                log.info("realtime poll of %s held back: circuit %s", feed, decision.state)
                return "circuit"
        report = await self.poll(feed)
        async with self.sessions() as session:
            failures = (
                await session.execute(
                    text("SELECT consecutive_failures FROM transit_realtime_polls WHERE feed = :f"),
                    {"f": feed},
                )
            ).scalar_one_or_none() or 0
        seconds = next_interval(
            self.settings,
            int(self.settings.transit_realtime_interval_seconds),
            0 if report.ok else max(failures, 1),
        )
        if self.breaker is not None:
            if report.ok:
                await self.breaker.record_success(breaker_id(feed))
            else:
                decision = await self.breaker.record_failure(breaker_id(feed))
                if decision.state is BreakerState.OPEN:
                    seconds = max(seconds, decision.retry_in_seconds)
        if report.retry_after_seconds:
            seconds = max(
                seconds, min(report.retry_after_seconds, self.settings.sync_max_backoff_seconds)
            )
        if not await self._complete(claim, seconds):
            log.info("realtime poll of %s finished after its claim lapsed", feed)
        return "ok" if report.ok else "failed"

    # -- one poll ----------------------------------------------------------------------------

    async def poll(self, feed: str) -> PollReport:
        """Fetch, check and store the feed's live data now; record the outcome. Never raises
        for the feed's problems (see the report)."""
        started = time.perf_counter()
        report = PollReport(feed=feed, ok=False)
        async with self.sessions() as session:
            row = (
                await session.execute(
                    text("SELECT realtime, active_version FROM transit_feeds WHERE slug = :f"),
                    {"f": feed},
                )
            ).one_or_none()
        if row is None:
            report.error = "no such transit feed"
            return report
        urls = realtime_urls(dict(row.realtime))
        if not urls:
            report.error = "the feed names no GTFS-Realtime URL"
            return report
        cache = self._caches.setdefault(feed, FeedCache())
        errors: list[str] = []
        fetched_at = time.time()
        try:
            async with asyncio.timeout(self.settings.sync_deadline_seconds):
                results = await asyncio.gather(
                    *(
                        fetch_bytes(
                            self.http, url, cache, max_bytes=self.settings.sync_max_feed_bytes
                        )
                        for url in urls.values()
                    ),
                    return_exceptions=True,
                )
        except TimeoutError:
            deadline = self.settings.sync_deadline_seconds
            results = [FeedFetchError(f"poll deadline of {deadline:g}s exceeded", url="")] * len(
                urls
            )
        bodies: dict[str, StoredBody] = {}
        snapshots: list[RealtimeSnapshot] = []
        for kind, result in zip(urls, results, strict=True):
            if isinstance(result, FeedFetchError):
                errors.append(f"{kind}: {result}")
                if result.retry_after_seconds:
                    report.retry_after_seconds = max(
                        report.retry_after_seconds or 0.0, result.retry_after_seconds
                    )
                continue
            if isinstance(result, BaseException):
                log.error("realtime fetch of %s (%s) crashed", feed, kind, exc_info=result)
                errors.append(f"{kind}: fetch error ({result.__class__.__name__}); see the logs")
                continue
            try:
                snapshot = parse_feed(result.body)
            except RealtimeFeedError as exc:
                errors.append(f"{kind}: {exc}")
                continue
            snapshots.append(snapshot)
            report.entities[kind] = (
                len(snapshot.trip_updates) + len(snapshot.vehicle_positions) + len(snapshot.alerts)
            )
            if result.not_modified:
                report.not_modified.append(kind)
            else:
                bodies[kind] = StoredBody(result.body, fetched_at)
        merged = merge_snapshots(snapshots)
        report.dropped = dict(merged.dropped)
        report.unknown_trips = await self._unknown_trips(row.active_version, merged)
        try:
            await self.store.write(feed, bodies)
            await self.store.touch(feed, report.not_modified, fetched_at)
        except Exception as exc:  # Redis down: nobody can read what we fetched
            errors.append(f"could not store the live data ({exc.__class__.__name__})")
        report.ok = not errors
        report.error = redact_urls("; ".join(errors)) if errors else None
        report.duration_seconds = time.perf_counter() - started
        await self._record(report)
        if not report.ok:
            log.warning("realtime poll of %s failed: %s", feed, report.error)
        return report

    async def _unknown_trips(self, version: int | None, snapshot: RealtimeSnapshot) -> int:
        """Trip ids of the updates that the active timetable does not have (ADDED and the like
        are not in a timetable by design)."""
        ids = {
            u.trip.trip_id
            for u in snapshot.trip_updates
            if u.trip.trip_id is not None
            and u.trip.schedule_relationship
            not in (TripRelationship.ADDED, TripRelationship.NEW, TripRelationship.DUPLICATED)
        }
        if not ids or version is None:
            return len(ids)
        async with self.sessions() as session:
            known = (
                await session.execute(
                    text(
                        "SELECT count(*) FROM transit_trips"
                        " WHERE version_id = :v AND trip_id = ANY(:ids)"
                    ),
                    {"v": version, "ids": sorted(ids)},
                )
            ).scalar_one()
        return len(ids) - int(known)

    async def _record(self, report: PollReport) -> None:
        stats = {
            "entities": report.entities,
            "unknown_trips": report.unknown_trips,
            "dropped": report.dropped,
            "duration_seconds": round(report.duration_seconds, 3),
        }
        async with transaction(self.sessions) as session:
            await session.execute(
                text(
                    "INSERT INTO transit_realtime_polls (feed) VALUES (:f) ON CONFLICT DO NOTHING"
                ),
                {"f": report.feed},
            )
            if report.ok:
                await session.execute(
                    text(
                        "UPDATE transit_realtime_polls SET last_attempt_at = now(),"
                        " last_success_at = now(), consecutive_failures = 0, last_error = NULL,"
                        " stats = CAST(:stats AS jsonb) WHERE feed = :f"
                    ),
                    {"f": report.feed, "stats": orjson.dumps(stats).decode()},
                )
            else:
                await session.execute(
                    text(
                        "UPDATE transit_realtime_polls SET last_attempt_at = now(),"
                        " consecutive_failures = consecutive_failures + 1, last_error = :e"
                        " WHERE feed = :f"
                    ),
                    {"f": report.feed, "e": report.error},
                )

    # -- health --------------------------------------------------------------------------------

    async def states(self) -> list[RealtimeFeedState]:
        """Every feed with live data URLs and its health (`realtime_states`), breakers read."""
        return await realtime_states(self.sessions, self.settings, self.breaker)

    async def request_poll(self, feed: str) -> bool:
        """Make a feed due now (staff's "poll now"); False if it has no live data URLs."""
        async with transaction(self.sessions) as session:
            await session.execute(_ENSURE_ROWS)
            result = await session.execute(
                text(
                    "UPDATE transit_realtime_polls SET requested_at = now(),"
                    " next_poll_at = CASE WHEN poll_token IS NULL THEN now() ELSE next_poll_at END"
                    " WHERE feed = :f"
                ),
                {"f": feed},
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]


async def realtime_states(
    sessions: Sessions, settings: Settings, breaker: CircuitBreaker | None = None
) -> list[RealtimeFeedState]:
    """Every feed with live data URLs, by app/health.py's rules (data that never came, or older
    than ``transit_realtime_max_age_seconds``, is stale; stale with repeated failures, down);
    each breaker's state when ``breaker`` is given."""
    now = datetime.now(UTC)
    # Live data is stale when it would no longer be served (realtime_store.py).
    rules = settings.model_copy(
        update={"stale_after_seconds": settings.transit_realtime_max_age_seconds}
    )
    async with sessions() as session:
        rows = (await session.execute(_STATES)).all()
    states = []
    for row in rows:
        record = SyncRecord(
            enabled=row.enabled,
            last_success_at=row.last_success_at,
            consecutive_failures=row.failures,
            latest_errors=0,
        )
        state = None
        if breaker is not None:
            state = (await breaker.state(breaker_id(row.slug))).state
        stats = dict(row.stats)
        states.append(
            RealtimeFeedState(
                feed=row.slug,
                status=health_status(record, rules, now),
                last_success_at=row.last_success_at,
                data_age_seconds=data_age_seconds(row.last_success_at, now),
                consecutive_failures=row.failures,
                last_error=row.last_error,
                unknown_trips=int(stats.get("unknown_trips", 0)),
                stats=stats,
                breaker=state,
            )
        )
    return states
