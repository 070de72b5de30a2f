"""`vehicleUpdates` over graphql-transport-ws: a real server socket, real pushes, real Redis."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import websockets
from geographiclib.geodesic import Geodesic
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection

from app.live_updates import RESYNC, DeltaHub, Subscriber
from app.main import create_app
from app.platform.settings import Settings
from app.runtime import Runtime
from app.search.live_view import LiveView, box_around
from app.search.schemas import VehicleFilter
from app.search.validation import Area
from app.vehicle_index import VehicleDelta, VehicleDoc
from geo.areas import BBox, Near
from geo.distance import geodesic_meters
from providers.push import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from providers.simulators.feed_server import serve_in_background
from tests.conftest import make_settings
from tests.providers.test_push_ingest import SLUG, _push_provider, _vehicle

CENTER = (59.9139, 10.7522)
RADIUS = 500.0

SUBSCRIPTION = """
subscription Live($near: NearInput, $within: WithinInput, $filter: VehicleFilterInput,
                  $first: Int) {
  vehicleUpdates(near: $near, within: $within, filter: $filter, first: $first) {
    kind
    created { id lat lon distanceMeters isReserved provider { id } }
    updated { id lat lon distanceMeters isReserved }
    removed
  }
}
"""


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """A point roughly ``north_m``/``east_m`` metres away (the tests measure exactly)."""
    return (
        lat + north_m / 111_320.0,
        lon + east_m / (111_320.0 * math.cos(math.radians(lat))),
    )


@asynccontextmanager
async def served(runtime: Runtime, settings: Settings | None = None) -> AsyncIterator[str]:
    app = create_app(settings or runtime.settings)
    app.state.runtime = runtime
    async with serve_in_background(app) as base_url:
        yield base_url


class Client:
    """A minimal graphql-transport-ws client that answers the server's pings."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pings = 0

    async def receive(self, within_seconds: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within_seconds):
            while True:
                raw = await self.ws.recv()
                # Protocol messages are JSON text: browsers hand binary frames to a client as
                # Blobs, which graphql-ws cannot read. Every socket test checks every frame.
                assert isinstance(raw, str), f"a binary frame: {raw[:80]!r}"
                message = json.loads(raw)
                if message["type"] == "ping":
                    self.pings += 1
                    await self.ws.send(json.dumps({"type": "pong"}))
                    continue
                return message  # type: ignore[no-any-return]

    async def subscribe(self, variables: dict[str, Any], op_id: str = "1") -> None:
        await self.ws.send(
            json.dumps(
                {
                    "id": op_id,
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIPTION, "variables": variables},
                }
            )
        )

    async def next_update(self, within_seconds: float = 10.0) -> dict[str, Any]:
        message = await self.receive(within_seconds)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]["vehicleUpdates"]  # type: ignore[no-any-return]


@asynccontextmanager
async def connect(base_url: str) -> AsyncIterator[Client]:
    url = base_url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        client = Client(ws)
        await ws.send(json.dumps({"type": "connection_init"}))
        assert (await client.receive())["type"] == "connection_ack"
        yield client


async def push(base_url: str, secret: str, vehicles: list[dict[str, Any]]) -> None:
    raw = orjson.dumps({"vehicles": vehicles})
    ts = int(time.time())
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post(
            f"/ingest/{SLUG}/vehicles",
            content=raw,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(ts),
                SIGNATURE_HEADER: sign(secret, ts, raw),
            },
        )
    assert response.status_code == 200, response.text


async def _hub_connections(runtime: Runtime) -> list[dict[str, Any]]:
    """The live-update hubs' pub/sub connections to this suite's Redis db."""
    assert isinstance(runtime.redis, Redis)  # the suite runs on one server
    db = str(runtime.redis.connection_pool.connection_kwargs.get("db", 0))
    return [
        c
        for c in await runtime.redis.client_list(_type="pubsub")
        if c.get("name") == "mobility-live-updates" and str(c.get("db")) == db
    ]


def geodesic_destination(
    lat: float, lon: float, bearing: float, meters: float
) -> tuple[float, float]:
    line = Geodesic.WGS84.Direct(lat, lon, bearing, meters)
    return line["lat2"], line["lon2"]


def _expected_inside(vehicles: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Provider-scoped id -> geodesic distance, for every vehicle within the radius."""
    inside = {}
    for vid, (lat, lon) in vehicles.items():
        distance = geodesic_meters(CENTER[0], CENTER[1], lat, lon)
        if distance <= RADIUS:
            inside[f"{SLUG}:{vid}"] = distance
    return inside


async def test_snapshot_then_created_updated_removed_deltas(runtime: Runtime) -> None:
    secret = await _push_provider(runtime)
    assert secret is not None
    positions = {
        "a": _offset(*CENTER, 100, 0),
        "b": _offset(*CENTER, -200, 150),
        "c": _offset(*CENTER, 900, 0),  # outside
    }
    async with served(runtime) as base_url:
        await push(base_url, secret, [_vehicle(v, *p) for v, p in positions.items()])
        async with connect(base_url) as client:
            near = {"lat": CENTER[0], "lon": CENTER[1], "radiusMeters": RADIUS}
            await client.subscribe({"near": near})
            snapshot = await client.next_update()
            assert snapshot["kind"] == "SNAPSHOT"
            expected = _expected_inside(positions)
            assert {v["id"]: v["distanceMeters"] for v in snapshot["created"]} == pytest.approx(
                expected, abs=0.01
            )
            # Nearest first, as the `vehicles` query orders them.
            assert [v["id"] for v in snapshot["created"]] == sorted(expected, key=expected.get)  # type: ignore[arg-type]

            # a moves within the area, b leaves it, c enters it.
            moved = {
                "a": _offset(*CENTER, 120, 10),
                "b": _offset(*CENTER, -800, 0),
                "c": _offset(*CENTER, 0, -300),
            }
            later = int(time.time())
            await push(
                base_url,
                secret,
                [_vehicle(v, *p, last_reported=later) for v, p in moved.items()],
            )
            created: dict[str, dict[str, Any]] = {}
            updated: dict[str, dict[str, Any]] = {}
            removed: set[str] = set()
            while {f"{SLUG}:a"} - updated.keys() or f"{SLUG}:b" not in removed or not created:
                delta = await client.next_update()
                assert delta["kind"] == "DELTA"
                created.update({v["id"]: v for v in delta["created"]})
                updated.update({v["id"]: v for v in delta["updated"]})
                removed.update(delta["removed"])
            now_inside = _expected_inside(moved)
            assert set(created) == {f"{SLUG}:c"} == now_inside.keys() - {f"{SLUG}:a"}
            assert set(updated) == {f"{SLUG}:a"}
            assert removed == {f"{SLUG}:b"}
            for vid, vehicle in {**created, **updated}.items():
                assert vehicle["distanceMeters"] == pytest.approx(now_inside[vid], abs=0.01)
                assert (vehicle["lat"], vehicle["lon"]) == pytest.approx(moved[vid.split(":")[1]])

            # Reserved: gone from everyone's map at once (the default filter shows available).
            await push(
                base_url,
                secret,
                [_vehicle("a", *moved["a"], is_reserved=True, last_reported=later + 1)],
            )
            delta = await client.next_update()
            assert delta == {
                "kind": "DELTA",
                "created": [],
                "updated": [],
                "removed": [f"{SLUG}:a"],
            }


async def test_a_filter_applies_to_deltas_too(runtime: Runtime) -> None:
    secret = await _push_provider(runtime)
    assert secret is not None
    async with served(runtime) as base_url, connect(base_url) as client:
        near = {"lat": CENTER[0], "lon": CENTER[1], "radiusMeters": RADIUS}
        await client.subscribe({"near": near, "filter": {"minRangeMeters": 100000}})
        assert (await client.next_update())["created"] == []
        spot = _offset(*CENTER, 50, 50)
        await push(
            base_url,
            secret,
            [
                _vehicle("far-reaching", *spot, current_range_meters=150000),
                _vehicle("nearly-empty", *spot, current_range_meters=5000),
            ],
        )
        delta = await client.next_update()
        assert [v["id"] for v in delta["created"]] == [f"{SLUG}:far-reaching"]


async def test_bad_arguments_are_a_coded_error(runtime: Runtime) -> None:
    async with served(runtime) as base_url, connect(base_url) as client:
        near = {"lat": CENTER[0], "lon": CENTER[1], "radiusMeters": RADIUS}
        within = {"minLat": 59.9, "minLon": 10.7, "maxLat": 59.92, "maxLon": 10.76}
        await client.subscribe({"near": near, "within": within})
        message = await client.receive()
        assert message["type"] in {"error", "next"}
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "INVALID_AREA"


async def test_the_server_pings_idle_sockets(runtime: Runtime) -> None:
    settings = make_settings(ws_keepalive_seconds=0.2)
    async with served(runtime, settings) as base_url, connect(base_url) as client:
        near = {"lat": CENTER[0], "lon": CENTER[1], "radiusMeters": RADIUS}
        await client.subscribe({"near": near})
        await client.next_update()  # the snapshot
        with pytest.raises(TimeoutError):
            await client.receive(within_seconds=1.0)  # nothing but pings for a second
        assert client.pings >= 3


async def test_a_lost_redis_subscription_ends_in_a_fresh_snapshot(runtime: Runtime) -> None:
    secret = await _push_provider(runtime)
    assert secret is not None
    async with served(runtime) as base_url, connect(base_url) as client:
        near = {"lat": CENTER[0], "lon": CENTER[1], "radiusMeters": RADIUS}
        await client.subscribe({"near": near})
        assert (await client.next_update())["created"] == []
        # Kill the hub's pub/sub connection, as a Redis failover would.
        killed = 0
        for info in await _hub_connections(runtime):
            await runtime.redis.client_kill_filter(_id=info["id"])
            killed += 1
        assert killed >= 1
        # A vehicle pushed while the hub is (re)connecting may be lost to pub/sub; the
        # subscriber must end up with it anyway, through a fresh snapshot.
        await push(base_url, secret, [_vehicle("during", *_offset(*CENTER, 10, 10))])
        seen: set[str] = set()
        kinds = []
        while f"{SLUG}:during" not in seen:
            update = await client.next_update(within_seconds=15)
            kinds.append(update["kind"])
            if update["kind"] == "SNAPSHOT":
                seen = {v["id"] for v in update["created"]}
            else:
                seen |= {v["id"] for v in update["created"]}
        assert "SNAPSHOT" in kinds


async def test_a_subscriber_that_falls_behind_is_told_to_resync() -> None:
    subscriber = Subscriber(max_pending=3)
    deltas = [
        VehicleDelta(provider_id=f"p{i}", created=[], updated=[], removed=[]) for i in range(5)
    ]
    for delta in deltas:
        subscriber.offer(delta)
    # The fourth found the queue full: what was pending is replaced by RESYNC (the snapshot it
    # leads to covers them); later deltas queue behind it as usual.
    batch = await subscriber.next_batch(0.01, max_items=10)
    assert batch == [RESYNC, deltas[4]]


async def test_a_batch_holds_what_was_queued_and_what_arrives_within_its_window() -> None:
    subscriber = Subscriber(max_pending=100)
    deltas = [
        VehicleDelta(provider_id=f"p{i}", created=[], updated=[], removed=[]) for i in range(6)
    ]
    for delta in deltas[:3]:
        subscriber.offer(delta)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, subscriber.offer, deltas[3])  # within the window: joins
    loop.call_later(0.5, subscriber.offer, deltas[4])  # after it: the next batch
    assert await subscriber.next_batch(0.2, max_items=256) == deltas[:4]
    assert await subscriber.next_batch(0.2, max_items=256, idle_seconds=2.0) == [deltas[4]]
    for delta in deltas:
        subscriber.offer(delta)
    # At most max_items; the rest is the next batch, at once.
    assert await subscriber.next_batch(0.2, max_items=4) == deltas[:4]
    started = loop.time()
    assert await subscriber.next_batch(0.2, max_items=2) == deltas[4:]
    assert loop.time() - started < 0.1


async def test_websocket_connections_share_one_redis_subscription(runtime: Runtime) -> None:
    async with (
        served(runtime) as base_url,
        connect(base_url) as first,
        connect(base_url) as second,
    ):
        near = {"lat": CENTER[0], "lon": CENTER[1], "radiusMeters": RADIUS}
        await first.subscribe({"near": near})
        await second.subscribe({"near": near})
        await first.next_update()
        await second.next_update()
        assert len(await _hub_connections(runtime)) == 1
        assert runtime.live_updates.subscriber_count == 2
    await asyncio.sleep(0.1)
    assert runtime.live_updates.subscriber_count == 0


async def test_a_bounding_box_subscription(runtime: Runtime) -> None:
    secret = await _push_provider(runtime)
    assert secret is not None
    south_west = _offset(*CENTER, -300, -300)
    north_east = _offset(*CENTER, 300, 300)
    box = {
        "minLat": south_west[0],
        "minLon": south_west[1],
        "maxLat": north_east[0],
        "maxLon": north_east[1],
    }

    def inside(lat: float, lon: float) -> bool:
        return box["minLat"] <= lat <= box["maxLat"] and box["minLon"] <= lon <= box["maxLon"]

    # Distances are measured from the box's centre, in the snapshot and in deltas alike.
    centre = ((box["minLat"] + box["maxLat"]) / 2, (box["minLon"] + box["maxLon"]) / 2)

    def from_centre(position: tuple[float, float]) -> float:
        return float(Geodesic.WGS84.Inverse(*centre, *position)["s12"])

    positions = {"in": _offset(*CENTER, 100, -100), "out": _offset(*CENTER, 0, 500)}
    async with served(runtime) as base_url:
        await push(base_url, secret, [_vehicle(v, *p) for v, p in positions.items()])
        async with connect(base_url) as client:
            await client.subscribe({"within": box})
            snapshot = await client.next_update()
            expected = {f"{SLUG}:{v}" for v, p in positions.items() if inside(*p)}
            assert {v["id"] for v in snapshot["created"]} == expected
            assert {v["id"]: v["distanceMeters"] for v in snapshot["created"]} == pytest.approx(
                {f"{SLUG}:{v}": from_centre(p) for v, p in positions.items() if inside(*p)},
                abs=0.002,
            )

            moved = {"in": _offset(*CENTER, 0, 400), "out": _offset(*CENTER, -50, 50)}
            await push(
                base_url,
                secret,
                [_vehicle(v, *p, last_reported=int(time.time()) + 1) for v, p in moved.items()],
            )
            created: dict[str, float] = {}
            removed: set[str] = set()
            while not created or not removed:
                delta = await client.next_update()
                created |= {v["id"]: v["distanceMeters"] for v in delta["created"]}
                removed |= set(delta["removed"])
            assert created == pytest.approx(
                {f"{SLUG}:{v}": from_centre(p) for v, p in moved.items() if inside(*p)},
                abs=0.002,
            )
            assert removed == expected - created.keys()


async def test_sockets_closed_while_the_hub_cannot_connect_leave_no_subscriber() -> None:
    hub = DeltaHub("redis://127.0.0.1:9/0", "nowhere")  # Redis unreachable

    async def subscribe_and_wait() -> None:
        async with hub.subscribe(ready_timeout=5.0):
            await asyncio.sleep(60)

    tasks = [asyncio.create_task(subscribe_and_wait()) for _ in range(5)]
    await asyncio.sleep(0.2)  # all five are waiting for the hub
    assert hub.subscriber_count == 5
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert hub.subscriber_count == 0
    await hub.aclose()


def _doc(vid: str, lat: float, lon: float, *, reserved: bool = False) -> VehicleDoc:
    return VehicleDoc(
        id=vid,
        provider_id="p",
        form_factor="scooter_standing",
        propulsion_type="electric",
        lat=lat,
        lon=lon,
        is_reserved=reserved,
        is_disabled=False,
        vehicle_type_id=None,
        pricing_plan_id=None,
        station_id=None,
        current_range_meters=None,
        current_fuel_percent=None,
        rental_uris=None,
        last_reported=None,
    )


def _delta(
    created: Sequence[VehicleDoc] = (),
    updated: Sequence[VehicleDoc] = (),
    removed: Sequence[str] = (),
) -> VehicleDelta:
    return VehicleDelta(
        provider_id="p", created=list(created), updated=list(updated), removed=list(removed)
    )


def test_a_view_reports_each_vehicle_once_per_batch_by_its_last_state() -> None:
    view = LiveView(Area(near=Near(CENTER[0], CENTER[1], RADIUS), bbox=None), VehicleFilter(), 10)
    inside, outside = _offset(*CENTER, 10, 10), _offset(*CENTER, 5000, 0)
    servable = frozenset({"p"})
    # Appeared and vanished within one batch: the subscriber never needs to hear of it.
    changes = view.apply([_delta([_doc("x", *inside)]), _delta(removed=["x"])], servable)
    assert (changes.created, changes.updated, changes.removed) == ([], [], [])
    # Created outside, then moved in: one creation, at its last position.
    changes = view.apply(
        [_delta([_doc("y", *outside)]), _delta(updated=[_doc("y", *inside)])], servable
    )
    assert [h.vehicle.lat for h in changes.created] == [inside[0]] and not changes.updated
    # Reserved: removed; a provider that is not servable: not shown.
    changes = view.apply([_delta(updated=[_doc("y", *inside, reserved=True)])], servable)
    assert changes.removed == ["y"]
    changes = view.apply([_delta([_doc("z", *inside)])], frozenset())
    assert not changes


def test_a_view_tracks_at_most_its_capacity() -> None:
    view = LiveView(Area(near=Near(CENTER[0], CENTER[1], RADIUS), bbox=None), VehicleFilter(), 3)
    docs = [_doc(f"v{i}", *_offset(*CENTER, i * 10, 0)) for i in range(5)]
    changes = view.apply([_delta(docs)], frozenset({"p"}))
    assert len(changes.created) == 3 and len(view.visible) == 3
    # One leaves: room for one of the others when it next changes.
    gone = changes.created[0].vehicle.id
    others = [d for d in docs if d.id != gone]
    changes = view.apply([_delta(removed=[gone]), _delta(updated=others)], frozenset({"p"}))
    assert changes.removed == [gone] and len(changes.created) == 1 and len(view.visible) == 3


def _scan_every_vehicle(
    view: LiveView, visible: set[str], deltas: Sequence[VehicleDelta], servable: frozenset[str]
) -> tuple[list[tuple[str, float | None]], list[tuple[str, float | None]], list[str]]:
    """What a view answered before it filed each message's vehicles by cell: every vehicle of
    the batch, by its last state, in the order the batch first names them."""
    latest: dict[str, VehicleDoc | None] = {}
    for delta in deltas:
        for doc in [*delta.created, *delta.updated]:
            latest[doc.id] = doc
        for vehicle_id in delta.removed:
            latest[vehicle_id] = None
    created: list[tuple[str, float | None]] = []
    updated: list[tuple[str, float | None]] = []
    removed: list[str] = []
    for vehicle_id, last in latest.items():
        hit = view.hit(last, servable) if last is not None else None
        if hit is None:
            if vehicle_id in visible:
                visible.discard(vehicle_id)
                removed.append(vehicle_id)
        elif vehicle_id in visible:
            updated.append((vehicle_id, hit.distance_meters))
        elif len(visible) < view.capacity:
            visible.add(vehicle_id)
            created.append((vehicle_id, hit.distance_meters))
    return created, updated, removed


@pytest.mark.parametrize(
    "area",
    [
        Area(near=Near(CENTER[0], CENTER[1], RADIUS), bbox=None),
        Area(near=Near(CENTER[0], CENTER[1], 5000.0), bbox=None),
        Area(near=None, bbox=BBox(59.905, 10.74, 59.92, 10.77)),
        # Wider than the vehicles' spread: the view walks the message's cells instead.
        Area(near=None, bbox=BBox(58.0, 8.0, 61.0, 13.0)),
        # Near the antimeridian there is no box around the circle: every vehicle is looked at.
        Area(near=Near(0.0, 179.99, 5000.0), bbox=None),
    ],
)
@pytest.mark.parametrize("capacity", [3, 200])
def test_a_view_changes_exactly_as_a_scan_of_every_vehicle_would(area: Area, capacity: int) -> None:
    rng = random.Random(f"{area}-{capacity}")
    if area.near is not None:
        centre = (area.near.lat, area.near.lon)
    else:
        assert area.bbox is not None
        centre = area.bbox.centre
    view = LiveView(area, VehicleFilter(), capacity)
    # Another subscriber of the same area in the process: handed the same messages, it reads
    # the batch the first one merged.
    twin = LiveView(area, VehicleFilter(), capacity)
    visible: set[str] = set()
    ids = [f"p:v{i}" for i in range(60)]
    spread = 1.5 * area.ranked().reach_meters  # about half the vehicles inside, half out
    shown = 0
    for _ in range(150):
        deltas = []
        for _ in range(rng.randint(1, 4)):
            created, updated, removed = [], [], []
            for vehicle_id in rng.sample(ids, rng.randint(0, 25)):
                lat, lon = _offset(
                    *centre,
                    rng.uniform(-spread, spread),
                    rng.uniform(-spread, spread),
                )
                doc = _doc(vehicle_id, lat, lon, reserved=rng.random() < 0.1)
                roll = rng.random()
                if roll < 0.3:
                    created.append(doc)
                elif roll < 0.85:
                    updated.append(doc)
                else:
                    removed.append(vehicle_id)
            deltas.append(_delta(created, updated, removed))
        servable = frozenset({"p"}) if rng.random() < 0.9 else frozenset()
        expected = _scan_every_vehicle(view, visible, deltas, servable)
        changes = view.apply(deltas, servable)
        got = (
            [(h.vehicle.id, h.distance_meters) for h in changes.created],
            [(h.vehicle.id, h.distance_meters) for h in changes.updated],
            changes.removed,
        )
        assert got == expected
        assert view.visible == visible
        again = twin.apply(list(deltas), servable)
        assert [h.vehicle.id for h in again.created] == [v for v, _ in expected[0]]
        assert [h.vehicle.id for h in again.updated] == [v for v, _ in expected[1]]
        assert again.removed == expected[2]
        shown += len(changes.created)
    assert shown > 50  # the batches did reach the area


def test_the_box_around_a_circle_holds_the_whole_circle() -> None:
    for lat in (-60.0, 0.0, 45.0, 59.9, 70.0):
        near = Near(lat, 10.0, 5000.0)
        box = box_around(near)
        assert box is not None
        for bearing in range(0, 360, 5):
            point = geodesic_destination(lat, 10.0, bearing, 5000.0)
            assert box.contains(*point), (lat, bearing)
    assert box_around(Near(89.99, 0.0, 5000.0)) is None
    assert box_around(Near(0.0, 179.99, 5000.0)) is None
