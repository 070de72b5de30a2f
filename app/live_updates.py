"""Live vehicle deltas for this process's subscribers: one Redis subscription, fanned out.

Every sync and push batch publishes its created / updated / removed vehicles on one Redis
channel (``VehicleIndex.publish_delta``), whichever process wrote them. Each API process holds
exactly one subscription to that channel, started with its first subscriber, and hands every
message to each local subscriber's queue: a thousand sockets cost one Redis connection, not a
thousand.

Nothing is silently lost: a subscriber too slow to keep up (its queue full), or every
subscriber while the Redis subscription is broken (messages published meanwhile are gone, as
pub/sub keeps nothing), receives :data:`RESYNC` and must rebuild its view from a fresh
snapshot. The hub reconnects by itself, with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.vehicle_index import IndexUnavailable, VehicleDelta

log = logging.getLogger(__name__)


class _Resync:
    def __repr__(self) -> str:
        return "RESYNC"


#: Delivered instead of deltas when some were missed: rebuild from a snapshot.
RESYNC: Final = _Resync()

Item = VehicleDelta | _Resync

#: The hub's connection, by name in ``CLIENT LIST`` (operators and tests can find it).
CLIENT_NAME = "mobility-live-updates"


class Subscriber:
    def __init__(self, max_pending: int) -> None:
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=max_pending)

    def offer(self, item: Item) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Too slow to keep up: drop what is pending and tell it to start over, rather than
            # buffer without bound or skip deltas silently.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(RESYNC)

    async def next_batch(
        self, window_seconds: float, max_items: int, idle_seconds: float | None = None
    ) -> list[Item]:
        """Wait for the next item, then gather whatever else arrives within the window. After
        ``idle_seconds`` with nothing, an empty batch (the caller re-checks its world)."""
        try:
            items = [await asyncio.wait_for(self._queue.get(), idle_seconds)]
        except TimeoutError:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window_seconds
        while len(items) < max_items:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return items


class DeltaHub:
    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        max_pending: int = 1_000,
        reconnect_max_seconds: float = 10.0,
    ) -> None:
        self._redis_url = redis_url
        self._channel = channel
        self._max_pending = max_pending
        self._reconnect_max = reconnect_max_seconds
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @asynccontextmanager
    async def subscribe(self, *, ready_timeout: float = 1.0) -> AsyncIterator[Subscriber]:
        """A subscriber receiving every delta published from now on (once the hub listens).

        Waits (up to ``ready_timeout``) until the Redis subscription is in place, so a caller
        that reads a snapshot right after cannot miss a delta in between; if Redis does not
        answer by then, the subscriber is still registered and gets :data:`RESYNC` when the
        hub connects."""
        subscriber = Subscriber(self._max_pending)
        try:
            # Registered inside the try: a socket that closes while this waits for the hub
            # (Redis down, or still connecting) must not stay behind as a subscriber.
            self._subscribers.add(subscriber)
            if self._task is None or self._task.done():
                if self._task is not None:
                    # The hub stopped (it should not): whatever it missed is lost to pub/sub.
                    self._broadcast(RESYNC)
                self._task = asyncio.create_task(self._run(), name="vehicle-delta-hub")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), ready_timeout)
            if not self._listening.is_set():
                subscriber.offer(RESYNC)
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.2
        while True:
            # Not the shared client: a pub/sub connection blocks on reads, and must not carry
            # the short command timeouts search relies on.
            redis = Redis.from_url(
                self._redis_url, health_check_interval=15, client_name=CLIENT_NAME
            )
            pubsub = redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if delay > 0.2:
                    # Reconnected: whatever was published meanwhile is lost to pub/sub.
                    self._broadcast(RESYNC)
                self._listening.set()
                delay = 0.2
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    try:
                        delta = VehicleDelta.decode(message["data"])
                    except IndexUnavailable as exc:
                        log.warning("skipping an unreadable delta message: %s", exc)
                        continue
                    self._broadcast(delta)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("vehicle delta subscription lost (%s); reconnecting", exc)
            except Exception:
                # Never let the hub die quietly: subscribers would wait forever for deltas.
                log.exception("vehicle delta hub failed; reconnecting")
            finally:
                self._listening.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await redis.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)

    def _broadcast(self, item: Item) -> None:
        for subscriber in list(self._subscribers):
            subscriber.offer(item)
