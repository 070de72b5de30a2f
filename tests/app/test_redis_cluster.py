"""Every Redis use against a real Redis Cluster (``MOBILITY_REDIS_CLUSTER``).

The session fixture starts six ``redis-server`` processes in cluster mode on ports 7101-7106,
joins them with ``redis-cli --cluster create`` into three masters with a replica each, and stops
them at the end. The tests run the production code paths on a runtime built for the cluster: a
sync writing the index, searches through its script, rate limits, the breaker, persisted
queries, deltas and booking signals over sharded pub/sub, the task stream consumed by a real
``mobility worker``, the API; then an unreachable cluster, and a failover of the index's master.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import text
from taskiq import AckableMessage

from app.live_updates import RESYNC
from app.main import create_app
from app.persisted_queries import PersistedQueries, PersistedQueryError
from app.platform.redis import cluster_seeds, create_redis
from app.platform.settings import Settings
from app.rate_limit import Limit, Subject, take
from app.runtime import Runtime, open_runtime
from app.search.validation import Area
from app.task_queue import ClusterStreamBroker, build_broker
from app.vehicle import VehicleFilter
from app.vehicle_index import VehicleDelta
from geo.areas import Near
from providers.breaker import BreakerState, CircuitBreaker
from providers.scheduler import QueueDispatcher, Scheduler
from providers.simulators.feed_server import FeedServer
from providers.tasks import kicker
from tests.conftest import make_settings, reset_state
from tests.helpers import add_provider, scooter, serve_documents, synthetic_scooter_feeds
from tests.processes import mobility_process, wait_for

PORTS = (7101, 7102, 7103, 7104, 7105, 7106)  # three masters, each with a replica
# Nothing listens on the discard port here (the suite's convention for an unreachable Redis).
UNREACHABLE_URL = "redis://127.0.0.1:9"
CLUSTER_URL = "redis://127.0.0.1:7101,127.0.0.1:7102"
CENTER = (59.91, 10.75)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout


class ClusterProcesses:
    """The cluster's ``redis-server`` processes, one per port; a test may kill one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.servers: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, port: int) -> None:
        with (self.folder / f"{port}.log").open("ab") as log:
            self.servers[port] = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(self.folder / f"nodes-{port}.conf"),
                    # A master that stops answering is failed over within seconds.
                    "--cluster-node-timeout",
                    "1000",
                    "--dir",
                    str(self.folder),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self, port: int) -> None:
        server = self.servers.pop(port)
        server.kill()
        server.wait(timeout=10)

    def live_ports(self) -> list[int]:
        return sorted(self.servers)

    def wait_ok(self, seconds: float) -> None:
        """Every live node says ``cluster_state:ok`` and every replica is in sync."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ports = self.live_ports()
            states = [_cli(p, "cluster", "info") for p in ports]
            roles = [_cli(p, "info", "replication") for p in ports]
            if all("cluster_state:ok" in s for s in states) and all(
                "role:master" in r or "master_link_status:up" in r for r in roles
            ):
                return
            time.sleep(0.1)
        pytest.fail(f"the cluster is not ok after {seconds} s; logs in {self.folder}")


@pytest.fixture(scope="session")
def redis_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    """Three masters and three replicas started from ``redis-server`` on 7101-7106."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli are needed (scripts/install-system.sh)")
    busy = [p for p in PORTS if not _port_free(p)]
    if busy:
        pytest.fail(f"ports {busy} are taken: the cluster test needs 7101-7106")
    processes = ClusterProcesses(tmp_path_factory.mktemp("redis-cluster"))
    try:
        for port in PORTS:
            processes.start(port)
        deadline = time.monotonic() + 20
        while any(_port_free(p) for p in PORTS):
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start; logs in {processes.folder}")
            time.sleep(0.05)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in PORTS),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        processes.wait_ok(30)
        yield processes
    finally:
        for port in processes.live_ports():
            processes.kill(port)


@pytest.fixture(scope="session")
def redis_cluster(redis_processes: ClusterProcesses) -> str:
    """The cluster's seed URL."""
    return CLUSTER_URL


@pytest.fixture(scope="session")
def cluster_settings(redis_cluster: str) -> Settings:
    return make_settings(redis_url=redis_cluster, redis_cluster=True)


@pytest.fixture(scope="session")
async def cluster_session_runtime(
    cluster_settings: Settings, migrated: None
) -> AsyncIterator[Runtime]:
    async with open_runtime(cluster_settings) as runtime:
        yield runtime


@pytest.fixture
async def cluster(cluster_session_runtime: Runtime) -> Runtime:
    """The cluster runtime with an empty database and none of this suite's keys."""
    runtime = cluster_session_runtime
    await reset_state(runtime)
    # Per-process caches and circuits start fresh, as tests/conftest.py's runtime fixture does.
    runtime.sync._caches.clear()
    runtime.search._index_retry_at = -math.inf
    runtime.search._enabled_at = -math.inf
    runtime.reference.invalidate()
    return runtime


@pytest.fixture
async def nodes(redis_processes: ClusterProcesses) -> AsyncIterator[dict[int, Redis]]:
    """A plain client to each master: what each node holds, seen without the cluster client."""
    masters = [
        p for p in redis_processes.live_ports() if "role:master" in _cli(p, "info", "replication")
    ]
    assert len(masters) == 3, masters
    clients = {port: Redis(host="127.0.0.1", port=port) for port in masters}
    yield clients
    for client in clients.values():
        await client.aclose()


async def _keys_by_node(nodes: dict[int, Redis], prefix: str) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for port, client in nodes.items():
        keys = {k.decode() async for k in client.scan_iter(match=f"*{prefix}*", count=1000)}
        if keys:
            found[port] = keys
    return found


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    # The test's own distance (a sphere): the scooters sit hundreds of metres from the radius,
    # far beyond any difference between a sphere and the ellipsoid at this scale.
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def _fleet() -> list[dict[str, Any]]:
    # North of the centre at 150 m steps: 150, 300, ..., 1500 m; and one reserved scooter
    # (never indexed) right at the centre.
    lat0, lon0 = CENTER
    fleet = [scooter(f"s{i}", lat0 + i * 150 / 111_195, lon0) for i in range(1, 11)]
    fleet.append(scooter("taken", lat0, lon0, is_reserved=True))
    return fleet


async def _synced(runtime: Runtime, server: FeedServer, base_url: str) -> tuple[str, Any]:
    documents = synthetic_scooter_feeds(_fleet())
    feeds = serve_documents(server, base_url, "clustered", documents)
    await add_provider(runtime, "clustered", feeds)
    report = await runtime.sync.sync("clustered")
    assert report.ok, report
    return "clustered", documents


async def test_the_cluster_refuses_keys_of_two_slots_in_one_command(
    cluster: Runtime, nodes: dict[int, Redis]
) -> None:
    """The control: were the index's keys not under one hash tag, the cluster would refuse
    the script and the multi-key writes the way it refuses this."""
    client = cluster.redis
    assert isinstance(client, RedisCluster)
    a, b = "cluster-control-a", "cluster-control-b"
    assert client.keyslot(a) != client.keyslot(b)
    node = client.get_node_from_key(a)
    assert node is not None
    with pytest.raises(ResponseError, match="hash to the same slot"):  # CROSSSLOT
        await nodes[int(node.port)].delete(a, b)


async def test_a_sync_and_searches_run_on_the_cluster(
    cluster: Runtime, feed_server: tuple[FeedServer, str], nodes: dict[int, Redis]
) -> None:
    slug, _ = await _synced(cluster, *feed_server)
    lat, lon = CENTER
    radius = 800.0
    fleet = [v for v in _fleet() if not v["is_reserved"]]
    expected = sorted(
        (v for v in fleet if _haversine_m(lat, lon, v["lat"], v["lon"]) <= radius),
        key=lambda v: _haversine_m(lat, lon, v["lat"], v["lon"]),
    )
    assert len(expected) == 5  # 150 ... 750 m

    found, docs = await cluster.index.nearest_documents(lat, lon, radius, count=50)
    assert found == len(expected)
    assert [d.id for d in docs] == [f"{slug}:{v['bike_id']}" for v in expected]
    for doc, vehicle in zip(docs, expected, strict=True):
        assert (round(doc.lat, 5), round(doc.lon, 5)) == (
            round(vehicle["lat"], 5),
            round(vehicle["lon"], 5),
        )

    # The script's other branches: skipping, a minimum distance, one form factor's own set.
    # (With ``skip``, the skip-th comes again: ids at its distance may be ordered otherwise.)
    _, skipped = await cluster.index.nearest_documents(lat, lon, radius, count=50, skip=2)
    assert [d.id for d in skipped] == [d.id for d in docs[1:]]
    _, farther = await cluster.index.nearest_documents(
        lat, lon, radius, count=50, min_distance_meters=400.0
    )
    assert [d.id for d in farther] == [d.id for d in docs[2:]]
    scooters_only = VehicleFilter(form_factors=frozenset({"scooter_standing"}))
    _, of_form = await cluster.index.nearest_documents(
        lat, lon, radius, count=50, flt=scooters_only
    )
    assert [d.id for d in of_form] == [d.id for d in docs]
    bicycles = VehicleFilter(form_factors=frozenset({"bicycle"}))
    assert await cluster.index.nearest_documents(lat, lon, radius, count=50, flt=bicycles) == (
        0,
        [],
    )

    # The pipelined client speaks to one server: on a cluster the searches above went through
    # the cluster client, which routed the script by its keys' slot.
    assert cluster.index.search_client is None

    # Every index key on one node (one hash tag), as the script needs.
    by_node = await _keys_by_node(nodes, cluster.keys.index_tag)
    assert len(by_node) == 1, by_node
    (index_keys,) = by_node.values()
    assert {cluster.keys.vehicle_geo, cluster.keys.vehicle_docs, cluster.keys.index_ready} <= (
        index_keys
    )

    # Multi-key removal and rebuild (one DEL of two keys, bulk writes over several keys).
    await cluster.index.remove_provider(slug)
    assert await cluster.index.nearest_documents(lat, lon, radius, count=50) == (0, [])
    # Every vehicle of the provider is read from PostGIS (the reserved one too: it is kept
    # out of the GEO sets), then the available ones are searchable again.
    assert await cluster.sync.rebuild_index(slug) == len(fleet) + 1
    assert (await cluster.index.nearest_documents(lat, lon, radius, count=50))[0] == 5


async def test_the_index_is_rebuilt_when_the_cluster_lost_it(
    cluster: Runtime, feed_server: tuple[FeedServer, str], nodes: dict[int, Redis]
) -> None:
    await _synced(cluster, *feed_server)
    for client in nodes.values():
        await client.flushall()
    assert not await cluster.index.is_ready()
    assert await cluster.sync.ensure_index_ready()
    found, _ = await cluster.index.nearest_documents(*CENTER, 800.0, count=50)
    assert found == 5


async def test_limits_breaker_and_persisted_queries_spread_over_the_nodes(
    cluster: Runtime, nodes: dict[int, Redis]
) -> None:
    prefix = cluster.keys.prefix
    limit = Limit(burst=3, per_second=0.001)
    riders = [f"rider:{n}" for n in range(12)]
    for rider in riders:
        decisions = [await take(cluster.redis, prefix, Subject(rider, limit)) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert not any(d.unchecked for d in decisions)

    settings = cluster.settings
    breaker = CircuitBreaker(cluster.redis, cluster.keys, settings)
    providers = [f"operator-{n}" for n in range(6)]
    for provider in providers:
        for _ in range(settings.breaker_failure_threshold):
            await breaker.record_failure(provider)
        refused = await breaker.allow(provider)
        assert (refused.allowed, refused.state) == (False, BreakerState.OPEN)
        assert (await breaker.state(provider)).state is BreakerState.OPEN
    await breaker.record_success(providers[0])
    assert (await breaker.allow(providers[0])).state is BreakerState.CLOSED

    query = "{ __typename }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    persisted = {"version": 1, "sha256Hash": digest}
    first = PersistedQueries(cluster.redis, prefix)
    resolved = await first.resolve(query, persisted)
    assert await first.register(resolved, "198.51.100.7")
    # Another process (no local copy) finds it in the cluster.
    assert (await PersistedQueries(cluster.redis, prefix).resolve(None, persisted)).query == query

    # 19 keys, each in its own slot (which slots depends on the run's prefix): all on one
    # master would mean the names share a hash tag after all.
    by_node = await _keys_by_node(nodes, prefix)
    assert len(by_node) >= 2, by_node
    everything = set().union(*by_node.values())
    assert {f"{prefix}:breaker:{p}" for p in providers[1:]} <= everything
    assert f"{prefix}:apq:{digest}" in everything


async def test_deltas_and_booking_signals_over_sharded_pub_sub(
    cluster: Runtime, feed_server: tuple[FeedServer, str], nodes: dict[int, Redis]
) -> None:
    server, base_url = feed_server
    async with cluster.live_updates.subscribe(ready_timeout=5.0) as subscriber:
        # Sharded: the hub's subscription is on the node that holds the channel's slot.
        channel = cluster.keys.vehicle_deltas
        client = cluster.redis
        assert isinstance(client, RedisCluster)
        owner = client.get_node_from_key(channel)
        assert owner is not None
        subscribed = await nodes[int(owner.port)].pubsub_shardnumsub(channel)
        assert subscribed == [(channel.encode(), 1)]

        slug, documents = await _synced(cluster, server, base_url)
        first = await _next_delta(subscriber)
        assert first.provider_id == slug
        expected_ids = {f"{slug}:{v['bike_id']}" for v in _fleet()}
        assert {d.id for d in first.created} == expected_ids

        # A vehicle moves: its update arrives, published by the next sync.
        bikes = documents["free_bike_status"]["data"]["bikes"]
        bikes[0] = {**bikes[0], "lat": CENTER[0] + 0.01}
        assert (await cluster.sync.sync(slug)).ok
        update = await _next_delta(subscriber)
        assert [(d.id, round(d.lat, 5)) for d in update.updated] == [
            (f"{slug}:s1", round(CENTER[0] + 0.01, 5))
        ]

    changed, unchanged = uuid.uuid4(), uuid.uuid4()
    async with (
        cluster.booking_signals.watch(str(changed), ready_timeout=5.0) as a,
        cluster.booking_signals.watch(str(unchanged), ready_timeout=5.0) as b,
    ):
        # The first subscription tells every watch to look (it may have missed something).
        await a.changed(0.5)
        await b.changed(0.5)
        # What a booking change sends (app/booking/effects.py), on the cluster.
        await cluster.bookings.effects.publish(changed)
        assert await a.changed(5.0)
        assert not await b.changed(0.5)


async def _next_delta(subscriber: Any) -> VehicleDelta:
    items = await subscriber.next_batch(0, 1, idle_seconds=10.0)
    assert items, "no delta arrived"
    assert items[0] is not RESYNC
    delta = items[0]
    assert isinstance(delta, VehicleDelta)
    return delta


async def test_a_pending_task_of_a_dead_consumer_is_reclaimed(
    cluster: Runtime, cluster_settings: Settings
) -> None:
    stream = f"{cluster.keys.prefix}:reclaim-test"

    def broker(name: str) -> ClusterStreamBroker:
        return ClusterStreamBroker(
            url=cluster_settings.redis_url,
            queue_name=stream,
            consumer_group_name="reclaim",
            consumer_name=name,
            consumer_id="0",
            idle_timeout=300,
            xread_block=100,
            xread_count=1,
        )

    dead, alive = broker("dead"), broker("alive")
    await dead.startup()
    await alive.startup()
    try:
        await cluster.redis.xadd(stream, {b"data": b"task-1"})
        taken = await anext(dead.listen())
        assert taken.data == b"task-1"  # read, never acknowledged: its consumer "dies"
        reclaimed = await asyncio.wait_for(_first(alive.listen()), 10)
        assert reclaimed.data == b"task-1"
        await _ack(reclaimed)
        pending: Any = await cluster.redis.xpending(stream, "reclaim")
        assert pending["pending"] == 0
    finally:
        await dead.shutdown()
        await alive.shutdown()


async def _first(messages: Any) -> AckableMessage:
    async for message in messages:
        return message  # type: ignore[no-any-return]
    raise AssertionError("the stream ended")


async def _ack(message: AckableMessage) -> None:
    result = message.ack()
    if result is not None:
        await result


async def test_a_queued_sync_is_run_by_a_worker_on_the_cluster(
    cluster: Runtime,
    cluster_settings: Settings,
    feed_server: tuple[FeedServer, str],
    tmp_path: Path,
) -> None:
    server, base_url = feed_server
    feeds = serve_documents(server, base_url, "queued", synthetic_scooter_feeds(_fleet()))
    await add_provider(cluster, "queued", feeds)
    settings = make_settings(
        redis_url=cluster_settings.redis_url,
        redis_cluster=True,
        sync_dispatch="queue",
        sync_min_interval_seconds=600,
    )
    broker = build_broker(settings)
    assert isinstance(broker, ClusterStreamBroker)
    await broker.startup()
    scheduler = Scheduler(
        cluster.sync, settings, QueueDispatcher(kicker(broker), cluster.sync), tick_seconds=0.2
    )
    log = tmp_path / "worker.log"
    scheduler.start()
    try:
        with mobility_process(["worker"], settings, log):

            async def synced() -> bool:
                async with cluster.sessions() as session:
                    status = await session.execute(
                        text("SELECT status FROM sync_runs WHERE provider_id = 'queued'")
                    )
                    return "succeeded" in status.scalars().all()

            await wait_for(synced, 60, "the worker to run the queued sync", [log])

            # The worker's sync wrote the index on the cluster (just after its run was
            # recorded): this process finds its vehicles there.
            async def indexed() -> bool:
                found, _ = await cluster.index.nearest_documents(*CENTER, 800.0, count=50)
                return found == 5

            await wait_for(indexed, 10, "the worker's index write", [log])

            # The stream lives in the cluster under its own key; the worker acknowledges the
            # task once it returned.
            async def acknowledged() -> bool:
                stream = cluster.keys.task_stream
                pending: Any = await cluster.redis.xpending(stream, "sync-workers")
                delivered: Any = await cluster.redis.xinfo_groups(stream)
                # Delivered (the group's position moved past its start) and nothing pending.
                return bool(pending["pending"] == 0 and delivered[0]["last-delivered-id"] != b"0-0")

            await wait_for(acknowledged, 10, "the worker to acknowledge the task", [log])
    finally:
        await scheduler.stop()
        await broker.shutdown()


def test_cluster_urls_name_their_seeds() -> None:
    first, seeds = cluster_seeds("redis://user:secret@10.0.0.1:7000,10.0.0.2:7001")
    assert first == "redis://user:secret@10.0.0.1:7000"
    assert seeds == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    with pytest.raises(ValueError, match="database 0"):
        cluster_seeds("redis://10.0.0.1:7000/3")
    with pytest.raises(ValueError, match="host:port"):
        cluster_seeds("redis://10.0.0.1")
    assert isinstance(create_redis(CLUSTER_URL, cluster=True), RedisCluster)
    assert isinstance(create_redis(CLUSTER_URL.split(",")[0]), Redis)


async def test_an_unreachable_cluster_degrades_like_an_unreachable_server(
    cluster: Runtime, cluster_settings: Settings, feed_server: tuple[FeedServer, str]
) -> None:
    """Search answers from PostGIS, limits and the breaker fail open, persisted queries are
    not found: what a single server's outage does (tests/graphql/test_redis_outage.py)."""
    slug, _ = await _synced(cluster, *feed_server)
    down = cluster_settings.model_copy(update={"redis_url": UNREACHABLE_URL})
    async with open_runtime(down) as runtime:
        hits = await runtime.search.vehicles(
            area=Area(Near(*CENTER, 800.0), None), flt=VehicleFilter(), first=20
        )
        assert [h.vehicle.id for h in hits] == [f"{slug}:s{i}" for i in range(1, 6)]
        decision = await take(runtime.redis, "x", Subject("rider:1", Limit(1, 1.0)))
        assert (decision.allowed, decision.unchecked) == (True, True)
        assert (await runtime.breaker.allow(slug)).allowed
        digest = hashlib.sha256(b"{ __typename }").hexdigest()
        with pytest.raises(PersistedQueryError):
            await runtime.persisted_queries.resolve(None, {"version": 1, "sha256Hash": digest})
        # A live subscriber is told to start from a snapshot, as the hub cannot listen.
        async with runtime.live_updates.subscribe(ready_timeout=0.5) as subscriber:
            assert await subscriber.next_batch(0, 1, idle_seconds=2.0) == [RESYNC]


async def test_the_api_answers_searches_and_persisted_queries_on_the_cluster(
    cluster: Runtime, feed_server: tuple[FeedServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The app over ASGI on the cluster runtime: a search sent as an automatic persisted
    query (stored in the cluster by the first request, found there by the second)."""
    slug, _ = await _synced(cluster, *feed_server)
    lat, lon = CENTER
    query = (
        f"{{ vehicles(near: {{lat: {lat}, lon: {lon}, radiusMeters: 800}}, first: 20) {{ id }} }}"
    )
    persisted = {
        "persistedQuery": {"version": 1, "sha256Hash": hashlib.sha256(query.encode()).hexdigest()}
    }
    app = create_app(cluster.settings)
    app.state.runtime = cluster
    transport = httpx.ASGITransport(app=app, client=("192.0.2.44", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
        unknown = (await api.post("/graphql", json={"extensions": persisted})).json()
        assert [e["extensions"]["code"] for e in unknown["errors"]] == ["PERSISTED_QUERY_NOT_FOUND"]
        first = (await api.post("/graphql", json={"query": query, "extensions": persisted})).json()
        by_hash = (await api.post("/graphql", json={"extensions": persisted})).json()
    expected = [f"{slug}:s{i}" for i in range(1, 6)]  # 150 ... 750 m, nearest first
    assert [v["id"] for v in first["data"]["vehicles"]] == expected
    assert by_hash == first
    # Answered from the index: the search service logs each fall back to PostGIS.
    assert not [r for r in caplog.records if r.name == "app.search.service"]


async def test_a_failover_of_the_index_node_is_followed(
    cluster: Runtime,
    feed_server: tuple[FeedServer, str],
    redis_processes: ClusterProcesses,
) -> None:
    """The master holding the index dies; its replica takes over. Search, the sync's bulk
    writes and the delta subscription find the new master by themselves. (Last in the module:
    the cluster it leaves has the old master back as a replica.)"""
    server, base_url = feed_server
    slug, documents = await _synced(cluster, server, base_url)
    client = cluster.redis
    assert isinstance(client, RedisCluster)
    owner = client.get_node_from_key(cluster.keys.index_tag)
    assert owner is not None
    port = int(owner.port)
    async with Redis(host="127.0.0.1", port=port) as master:
        assert await master.wait(1, 5000) == 1  # the replica has everything written so far

    _, before = await cluster.index.nearest_documents(*CENTER, 800.0, count=50)

    async with cluster.live_updates.subscribe(ready_timeout=5.0) as subscriber:
        redis_processes.kill(port)
        await asyncio.to_thread(redis_processes.wait_ok, 30)

        # The bulk writer's first batch meets the dead node (nothing has told this client of
        # the failover yet); it reads the slot map again, so its next batch reaches the new
        # master without any other command in between.
        with pytest.raises(RedisError):
            await cluster.index.apply(slug, [before[0]], ())
        await cluster.index.apply(slug, [before[0]], ())

        async def searchable() -> bool:
            try:
                found, _ = await cluster.index.nearest_documents(*CENTER, 800.0, count=50)
            except RedisError:
                return False
            return found == 5

        await wait_for(searchable, 20, "a search on the promoted replica", [])
        new_owner = client.get_node_from_key(cluster.keys.index_tag)
        assert new_owner is not None and int(new_owner.port) != port

        # The hub's node died under it: its subscribers are told to start over, once it
        # listens on the new master.
        items = await subscriber.next_batch(0, 10, idle_seconds=30.0)
        assert RESYNC in items, items

        # The next sync writes the index (the bulk writer, on the slot map the searches above
        # refreshed) on the new master, and its delta reaches the subscriber.
        bikes = documents["free_bike_status"]["data"]["bikes"]
        bikes[0] = {**bikes[0], "lat": CENTER[0] + 0.02}
        report = await cluster.sync.sync(slug)
        assert report.ok and report.index_updated, report
        delta = await _next_delta(subscriber)
        assert [d.id for d in delta.updated] == [f"{slug}:s1"]
        found, docs = await cluster.index.nearest_documents(*CENTER, 800.0, count=50)
        assert (found, f"{slug}:s1" in {d.id for d in docs}) == (4, False)

    redis_processes.start(port)  # back, as the new master's replica
    await asyncio.to_thread(redis_processes.wait_ok, 30)
