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

Booking changes travel the same way (:class:`ChangeSignals`): one subscription per process to
one channel whose messages are booking ids, handed to the sockets following those bookings.

On a Redis Cluster (``MOBILITY_REDIS_CLUSTER``) the channels are sharded (SPUBLISH /
SSUBSCRIBE, :class:`_ShardedSubscription`): a message goes to the node that holds the
channel's hash slot only, rather than over the cluster bus to every node as a classic PUBLISH
would, and the listener subscribes on that node (redis-py's cluster pub/sub finds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, TypedDict, Unpack

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from app.platform import metrics
from app.platform.redis import create_cluster
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
        """Wait for the next item, then gather whatever else arrives within the window (at most
        ``max_items``; the rest waits for the next batch). After ``idle_seconds`` with nothing,
        an empty batch (the caller re-checks its world)."""
        try:
            items = [await asyncio.wait_for(self._queue.get(), idle_seconds)]
        except TimeoutError:
            return []
        if window_seconds > 0 and self._queue.qsize() < max_items - 1:
            # Asleep through the window, then take what came: a sync publishes its delta as
            # many messages, each handed to every subscriber of the process at once, and
            # waking each subscriber for each message (a thousand wake-ups per message) kept
            # the hub from reading the next ones before the windows closed
            # (bench/subscriptions.py).
            await asyncio.sleep(window_seconds)
        while len(items) < max_items:
            try:
                items.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return items


class _ClassicSubscription:
    """SUBSCRIBE on one Redis server."""

    def __init__(self, redis_url: str, channel: str, client_name: str) -> None:
        self._channel = channel
        # Not the shared client: a pub/sub connection blocks on reads, and must not carry
        # the short command timeouts search relies on.
        self._redis = Redis.from_url(redis_url, health_check_interval=15, client_name=client_name)
        self._pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=True)

    async def subscribe(self) -> None:
        await self._pubsub.subscribe(self._channel)

    async def next_message(self) -> bytes | None:
        message = await self._pubsub.get_message(timeout=5.0)
        return None if message is None else message["data"]

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self._redis.aclose()


class _ShardedSubscription:
    """SSUBSCRIBE on the cluster node that holds the channel's hash slot."""

    def __init__(self, redis_url: str, channel: str, client_name: str) -> None:
        self._channel = channel
        self._redis: RedisCluster = create_cluster(
            redis_url, health_check_interval=15, client_name=client_name
        )
        self._pubsub: ClusterPubSub = self._redis.pubsub()

    async def subscribe(self) -> None:
        await self._redis.initialize()  # the slot map: which node holds the channel
        await self._pubsub.ssubscribe(self._channel)
        # Listening once the node confirmed it, not merely once it was sent: which node holds
        # the channel is the client's guess from its slot map until then.
        while True:
            message = await self._next()
            if message is not None and _text(message["type"]) == "ssubscribe":
                return

    async def next_message(self) -> bytes | None:
        message = await self._next()
        if message is None or _text(message["type"]) != "smessage":
            return None
        data: bytes = message["data"]
        return data

    async def _next(self) -> dict[str, Any] | None:
        if not self._pubsub.node_pubsub_mapping:
            # No node connection left (redis-py drops it when the channel's slot moved and it
            # could not follow): polling nothing would return at once, forever; start over.
            raise RedisError("the sharded subscription lost its node")
        return await self._pubsub.get_sharded_message(timeout=5.0)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._redis.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ListenerOptions(TypedDict, total=False):
    """How a listener connects, the same for every kind: each subclass passes them through to
    :class:`_ChannelListener`, which holds their defaults."""

    reconnect_max_seconds: float  # the longest wait between reconnection attempts
    cluster: bool  # a Redis Cluster: sharded pub/sub (:class:`_ShardedSubscription`)


class _ChannelListener:
    """One Redis pub/sub subscription to one channel, for the whole process: started with the
    first local subscriber, reconnecting by itself with backoff, never dying quietly.
    Subclasses say what a message means (:meth:`_on_message`) and what to do when messages
    may have been missed (:meth:`_on_gap`: while disconnected, pub/sub keeps nothing)."""

    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        client_name: str,
        reconnect_max_seconds: float = 10.0,
        cluster: bool = False,
    ) -> None:
        self._redis_url = redis_url
        self._cluster = cluster
        self._channel = channel
        self._client_name = client_name
        self._reconnect_max = reconnect_max_seconds
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    def _on_message(self, data: bytes) -> None:
        raise NotImplementedError

    def _on_gap(self) -> None:
        raise NotImplementedError

    def _on_listening(self) -> None:
        """Called each time the subscription is in place (first time and after reconnects)."""

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            if self._task is not None:
                # The listener stopped (it should not): whatever it missed is lost to pub/sub.
                self._on_gap()
            self._task = asyncio.create_task(self._run(), name=self._client_name)

    async def _wait_listening(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), seconds)
        return self._listening.is_set()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.2
        while True:
            kind = _ShardedSubscription if self._cluster else _ClassicSubscription
            subscription = kind(self._redis_url, self._channel, self._client_name)
            try:
                await subscription.subscribe()
                if delay > 0.2:
                    # Reconnected: whatever was published meanwhile is lost to pub/sub.
                    self._on_gap()
                self._listening.set()
                self._on_listening()
                delay = 0.2
                while True:
                    data = await subscription.next_message()
                    if data is not None:
                        self._on_message(data)
            except asyncio.CancelledError:
                raise
            except (RedisError, RedisClusterException, OSError) as exc:
                # (RedisClusterException: a cluster whose slot map has no node for the
                # channel yet, as during a failover.)
                metrics.redis_error("live_updates")
                log.warning("%s subscription lost (%s); reconnecting", self._channel, exc)
            except Exception:
                # Never let the listener die quietly: subscribers would wait forever.
                log.exception("%s listener failed; reconnecting", self._channel)
            finally:
                self._listening.clear()
                await subscription.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect_max)


class DeltaHub(_ChannelListener):
    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        max_pending: int = 1_000,
        **options: Unpack[ListenerOptions],
    ) -> None:
        super().__init__(redis_url, channel, client_name=CLIENT_NAME, **options)
        self._max_pending = max_pending
        self._subscribers: set[Subscriber] = set()

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
            self._ensure_running()
            if not await self._wait_listening(ready_timeout):
                subscriber.offer(RESYNC)
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    def _on_message(self, data: bytes) -> None:
        try:
            delta = VehicleDelta.decode(data)
        except IndexUnavailable as exc:
            log.warning("skipping an unreadable delta message: %s", exc)
            return
        self._broadcast(delta)

    def _on_gap(self) -> None:
        self._broadcast(RESYNC)

    def _broadcast(self, item: Item) -> None:
        for subscriber in list(self._subscribers):
            subscriber.offer(item)


#: The booking signals' connection, by name in ``CLIENT LIST``.
BOOKING_SIGNALS_CLIENT_NAME = "mobility-booking-signals"


class Watch:
    """What one subscriber waits on: set when its record may have changed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def signal(self) -> None:
        self._event.set()

    async def changed(self, within_seconds: float) -> bool:
        """True when signalled within ``within_seconds`` (then re-read the record), False when the
        time ran out (re-read it anyway: a signal may have been lost)."""
        try:
            await asyncio.wait_for(self._event.wait(), within_seconds)
        except TimeoutError:
            return False
        # Cleared before the caller re-reads: a change during that read signals again.
        self._event.clear()
        return True


class ChangeSignals(_ChannelListener):
    """Signals that a record changed (each message's payload is its id): one Redis
    subscription per process, each signal handed to the local subscribers watching that id.
    A signal only says "look again": watchers re-read the record from PostgreSQL and also
    re-check on a timer, so a lost signal (Redis down) delays an update, never loses it."""

    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        client_name: str = BOOKING_SIGNALS_CLIENT_NAME,
        **options: Unpack[ListenerOptions],
    ) -> None:
        super().__init__(redis_url, channel, client_name=client_name, **options)
        self._watches: dict[str, set[Watch]] = {}

    @property
    def watch_count(self) -> int:
        return sum(len(watches) for watches in self._watches.values())

    @asynccontextmanager
    async def watch(self, key: str, *, ready_timeout: float = 1.0) -> AsyncIterator[Watch]:
        """Signals for ``key`` from now on (once listening: waits up to ``ready_timeout``, so
        a read right after cannot miss a change in between; past it, the timer covers it)."""
        watch = Watch()
        try:
            self._watches.setdefault(key, set()).add(watch)
            self._ensure_running()
            await self._wait_listening(ready_timeout)
            yield watch
        finally:
            watches = self._watches.get(key)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[key]

    def _on_message(self, data: bytes) -> None:
        key = data.decode("utf-8", "replace")
        for watch in list(self._watches.get(key, ())):
            watch.signal()

    def _on_listening(self) -> None:
        # A watch that stopped waiting for the subscription (slow first connect) may have
        # missed a change in between: everyone looks again, which costs one read each.
        self._on_gap()

    def _on_gap(self) -> None:
        # Anything may have changed meanwhile: everyone looks again.
        for watches in list(self._watches.values()):
            for watch in list(watches):
                watch.signal()
