"""Redis plumbing: one client per process, and the key names everything else uses.

Two modes (``MOBILITY_REDIS_CLUSTER``, app/platform/settings/stores.py): one Redis server (the
default) or a Redis Cluster whose seed nodes ``MOBILITY_REDIS_URL`` names. Everything above
this module holds a :data:`RedisClient` and does not care which; the few places where the modes
differ (a bulk writer's connection, how a channel is published and subscribed, the task
stream's broker) ask ``isinstance(redis, RedisCluster)`` or the setting.
docs/operations-redis-cluster.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, overload
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from app.vehicle import DOC_FORMAT

# The index's format: bumped by hand when the index's layout changes (its keys, what a set
# holds); the vehicle document's own format (app/vehicle.DOC_FORMAT) follows its fields by
# itself. Either way a deploy then builds a fresh index under new keys instead of misreading
# what the previous version wrote.
# v3: the index's keys and its delta channel share one hash tag (Redis Cluster).
INDEX_FORMAT = f"v3-{DOC_FORMAT}"

#: Either client: a single server's or a cluster's. Their command methods are the same.
RedisClient = Redis | RedisCluster


async def publish(redis: RedisClient, channel: str, message: bytes) -> None:
    """Publish on a channel: classic PUBLISH on one server; on a cluster SPUBLISH, to the node
    holding the channel's slot, where the listeners (app/live_updates.py) subscribe."""
    if isinstance(redis, RedisCluster):
        await redis.spublish(channel, message)
    else:
        await redis.publish(channel, message)


@overload
def create_redis(
    redis_url: str, *, cluster: Literal[False] = False, timeout_seconds: float = 1.0
) -> Redis: ...


@overload
def create_redis(redis_url: str, *, cluster: bool, timeout_seconds: float = 1.0) -> RedisClient: ...


def create_redis(
    redis_url: str, *, cluster: bool = False, timeout_seconds: float = 1.0
) -> RedisClient:
    # Short timeouts: Redis is the hot path, and search must fall back to PostGIS quickly when
    # Redis does not answer rather than hang a request.
    # No retries: redis-py's default (three, with backoff) turns an outage into seconds of
    # waiting per request; callers fall back to PostGIS or retry on their own schedule.
    if cluster:
        return create_cluster(
            redis_url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=1.0,
            health_check_interval=0,
            # MOVED / ASK redirections are followed whatever this says. The retry is what
            # comes after a lost connection or CLUSTERDOWN: the slot map read again, then one
            # more attempt, so a failover to a replica costs a retry rather than an error;
            # not redis-py's default three with backoff (the reason for none below).
            retry=Retry(NoBackoff(), 1),
        )
    return Redis.from_url(
        redis_url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=1.0,
        # No per-command health bookkeeping on the hot path: a dead connection fails the
        # command, and search falls back to PostGIS for a second (app/search/service.py).
        health_check_interval=0,
        retry=Retry(NoBackoff(), 0),
    )


class ClusterClient(RedisCluster):
    """redis-py's cluster client, whose own failures are Redis errors.

    When no node answers, or no node serves a key's slot, redis-py raises
    ``RedisClusterException``, which is not a ``RedisError``; every caller here catches
    ``RedisError`` to degrade (search answers from PostGIS, rate limits and the breaker let
    calls through, a sync leaves the index to be rebuilt). Raised as a ``ConnectionError``
    instead, an unreachable cluster degrades exactly as an unreachable server does."""

    async def initialize(self, *args: Any, **kwargs: Any) -> ClusterClient:
        try:
            await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unavailable: {exc}") from exc
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unavailable: {exc}") from exc


def cluster_seeds(redis_url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL's first node as a plain URL (credentials, TLS and options kept) and every
    seed node named: ``redis://[user:password@]host1:port1,host2:port2`` (a cluster has only
    database 0, so a path other than ``/`` or ``/0`` is refused)."""
    parts = urlsplit(redis_url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    seeds: list[tuple[str, int]] = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":")
        if not name or not port.isdigit():
            raise ValueError("a Redis Cluster URL names host:port of each seed node")
        seeds.append((name.strip("[]"), int(port)))
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("Redis Cluster has only database 0")
    first = f"{credentials}@{hosts.split(',')[0]}" if credentials else hosts.split(",")[0]
    return urlunsplit((parts.scheme, first, "", parts.query, "")), seeds


def create_cluster(redis_url: str, **options: object) -> ClusterClient:
    """A cluster client over the URL's seed nodes (:func:`cluster_seeds`); it discovers the
    other nodes and the slot map by itself."""
    first, seeds = cluster_seeds(redis_url)
    client = ClusterClient.from_url(
        first,
        startup_nodes=[ClusterNode(host, port) for host, port in seeds[1:]],
        **options,
    )
    assert isinstance(client, ClusterClient)  # from_url builds the class it is called on
    return client


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Every key and channel name. The index's keys (and its delta channel) share one hash tag,
    ``{<prefix>:<INDEX_FORMAT>}``: the search script, the bulk writes and the removals touch
    several of them at once, which a Redis Cluster allows only within one hash slot. The other
    keys (breaker, rate-limit buckets, APQ documents, the task stream) are each used alone and
    spread over the cluster by their own names. A single server ignores the tags."""

    prefix: str

    @property
    def patterns(self) -> tuple[str, str]:
        """SCAN patterns that together match every key under this prefix (the index's keys
        begin with their hash tag's brace)."""
        return f"{self.prefix}:*", f"{{{self.prefix}:*"

    @property
    def _index(self) -> str:
        return f"{{{self.prefix}:{INDEX_FORMAT}}}"

    @property
    def index_tag(self) -> str:
        """A key in the index's hash slot (which node a cluster keeps the index on)."""
        return self._index

    @property
    def vehicle_geo(self) -> str:
        """GEO set of *available* vehicles (not reserved, not disabled)."""
        return f"{self._index}:vehicles:geo"

    def vehicle_geo_of(self, form_factor: str) -> str:
        """GEO set of the available vehicles of one form factor: a search for cars (5% of a
        fleet) reads cars only, instead of filtering its way through twenty times as many."""
        return f"{self._index}:vehicles:geo:{form_factor}"

    @property
    def vehicle_docs(self) -> str:
        """Hash: vehicle id -> document with every field search returns and filters on."""
        return f"{self._index}:vehicles:docs"

    @property
    def index_ready(self) -> str:
        """Set once the index was fully built from PostGIS; absent after Redis lost its data,
        and search then answers from PostGIS until the index is rebuilt."""
        return f"{self._index}:ready"

    @property
    def index_rebuild_lock(self) -> str:
        return f"{self._index}:rebuild-lock"

    @property
    def vehicle_deltas(self) -> str:
        """Pub/sub channel of created / updated / removed vehicle deltas. Under the index's
        format: its messages carry documents, and a process of another version would misread
        them. In the index's slot: on a cluster the bulk writer publishes it (SPUBLISH, a
        sharded channel) on the connection it writes the index with."""
        return f"{self._index}:vehicles:deltas"

    @property
    def booking_changes(self) -> str:
        """Pub/sub channel of booking changes, each message a booking id (bookingUpdates)."""
        return f"{self.prefix}:bookings:changes"

    def provider_members(self, provider_id: str) -> str:
        """Set of a provider's vehicle ids present in the index (for rebuilds and removals)."""
        return f"{self._index}:provider:{provider_id}:vehicles"

    def provider_indexed_run(self, provider_id: str) -> str:
        """Id of the sync run whose result the index holds for this provider. A sync applies
        its delta only when this is the provider's previous good run; otherwise it rebuilds."""
        return f"{self._index}:provider:{provider_id}:indexed-run"

    def provider_breaker(self, provider_id: str) -> str:
        """Hash: the provider's circuit breaker (providers/breaker.py), shared by all workers."""
        return f"{self.prefix}:breaker:{provider_id}"

    def transit_realtime(self, feed: str) -> str:
        """Hash: a transit feed's latest GTFS-Realtime bodies and when each was fetched
        (app/transit/realtime_poll.py), read by every API process."""
        return f"{self.prefix}:transit-rt:{feed}"

    @property
    def task_stream(self) -> str:
        """Redis stream of background tasks (providers/tasks.py: taskiq's RedisStreamBroker)."""
        return f"{self.prefix}:tasks"
