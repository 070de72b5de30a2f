"""Where a transit feed's latest GTFS-Realtime data lives: one Redis hash per feed, written by
whichever process polled it (app/transit/realtime_poll.py), read by every API process.

The hash holds, per kind (``trip_updates``, ``vehicle_positions``, ``service_alerts``), the raw
protobuf body as fetched, its SHA-256 and when it was fetched (POSIX seconds). Raw bytes are the
most compact encoding there is for this data and what every reader can check on its own; a
reader parses a body once per change (the digest says when) and keeps the parse in memory.

Staleness. A kind fetched longer ago than ``transit_realtime_max_age_seconds`` is ignored, and
the whole hash expires that long after the last write: a feed whose polls keep failing (or a
stopped scheduler) falls back to the timetable within that time, instead of showing delays that
may no longer hold. The age is our fetch's, not the producer's header timestamp: a producer
whose clock is off does not make good data look stale.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError

from app.platform import metrics
from app.platform.redis import RedisClient, RedisKeys
from app.platform.settings import Settings
from app.transit.realtime import RealtimeSnapshot, merge_snapshots
from app.transit.realtime_parse import RealtimeFeedError, parse_feed

__all__ = ["REALTIME_KINDS", "RealtimeStore", "StoredBody"]

log = logging.getLogger(__name__)

#: The kinds of GTFS-Realtime feed a transit feed's ``realtime`` may name a URL for.
REALTIME_KINDS = ("trip_updates", "vehicle_positions", "service_alerts")


@dataclass(frozen=True, slots=True)
class StoredBody:
    body: bytes
    fetched_at: float  # POSIX seconds


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class RealtimeStore:
    """Each feed's latest live data: written by the poller, read (and parsed once per change,
    per process) by departures and journeys."""

    def __init__(
        self,
        redis: RedisClient,
        keys: RedisKeys,
        settings: Settings,
        *,
        recheck_seconds: float = 1.0,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._max_age = settings.transit_realtime_max_age_seconds
        # A burst of reads (a departures board, a journey search) asks Redis once.
        self._recheck = recheck_seconds
        self._parsed: dict[tuple[str, str], tuple[str, RealtimeSnapshot]] = {}
        self._merged: dict[str, tuple[float, tuple[str, ...], RealtimeSnapshot | None]] = {}

    def forget(self) -> None:
        """Drop what this process holds (tests; a new process starts so)."""
        self._parsed.clear()
        self._merged.clear()

    @property
    def max_age_seconds(self) -> float:
        return self._max_age

    async def write(self, feed: str, bodies: Mapping[str, StoredBody]) -> None:
        """Store the kinds fetched now (the others keep what they had, until they age out)."""
        if not bodies:
            return
        mapping: dict[str, bytes | str] = {}
        for kind, stored in bodies.items():
            mapping[kind] = stored.body
            mapping[f"{kind}:sha"] = _digest(stored.body)
            mapping[f"{kind}:at"] = f"{stored.fetched_at:.3f}"
        key = self._keys.transit_realtime(feed)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            pipe.expire(key, int(self._max_age) + 1)
            await pipe.execute()

    async def touch(self, feed: str, kinds: list[str], fetched_at: float) -> None:
        """The server said these kinds have not changed (304): they are as fresh as now."""
        if kinds:
            key = self._keys.transit_realtime(feed)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={f"{k}:at": f"{fetched_at:.3f}" for k in kinds})
                pipe.expire(key, int(self._max_age) + 1)
                await pipe.execute()

    async def snapshot(self, feed: str, *, now: float | None = None) -> RealtimeSnapshot | None:
        """The feed's live data, its kinds merged; None when there is none fresh enough (or
        Redis cannot be read: departures then show the timetable)."""
        clock = time.monotonic()
        cached = self._merged.get(feed)
        if cached is not None and now is None and clock - cached[0] < self._recheck:
            return cached[2]
        current = time.time() if now is None else now
        key = self._keys.transit_realtime(feed)
        fields = [f"{k}:{part}" for k in REALTIME_KINDS for part in ("at", "sha")]
        try:
            values = await self._redis.hmget(key, fields)
        except RedisError as exc:
            metrics.redis_error("transit_realtime")
            log.warning("live transit data of %s unreadable: %s", feed, exc)
            return None
        fresh: list[tuple[str, str]] = []
        for i, kind in enumerate(REALTIME_KINDS):
            at, sha = values[2 * i], values[2 * i + 1]
            if at is None or sha is None:
                continue
            if current - float(_text(at)) <= self._max_age:
                fresh.append((kind, _text(sha)))
        digests = tuple(sha for _kind, sha in fresh)
        if cached is not None and cached[1] == digests:
            self._merged[feed] = (clock, digests, cached[2])
            return cached[2]
        parts: list[RealtimeSnapshot] = []
        for kind, sha in fresh:
            parsed = self._parsed.get((feed, kind))
            if parsed is None or parsed[0] != sha:
                snapshot = await self._read(feed, kind, sha)
                if snapshot is None:
                    continue
                parsed = (sha, snapshot)
                self._parsed[feed, kind] = parsed
            parts.append(parsed[1])
        merged = merge_snapshots(parts) if parts else None
        self._merged[feed] = (clock, digests, merged)
        return merged

    async def _read(self, feed: str, kind: str, sha: str) -> RealtimeSnapshot | None:
        try:
            body = await self._redis.hget(self._keys.transit_realtime(feed), kind)
        except RedisError as exc:
            metrics.redis_error("transit_realtime")
            log.warning("live transit data of %s unreadable: %s", feed, exc)
            return None
        if body is None or _digest(_bytes(body)) != sha:
            return None  # replaced between the two reads: the next read gets the new one
        try:
            return parse_feed(_bytes(body))
        except RealtimeFeedError:  # the poller stores only what parsed; never expected
            log.exception("stored live transit data of %s (%s) does not parse", feed, kind)
            return None

    async def stored_kinds(self, feed: str) -> dict[str, float]:
        """When each kind was last fetched (POSIX seconds), whatever its age (status pages)."""
        values = await self._redis.hmget(
            self._keys.transit_realtime(feed), [f"{k}:at" for k in REALTIME_KINDS]
        )
        return {
            kind: float(_text(at))
            for kind, at in zip(REALTIME_KINDS, values, strict=True)
            if at is not None
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")
