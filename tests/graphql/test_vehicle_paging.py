"""Paging through an area with `vehiclesConnection`: every visible vehicle exactly once, in
(distance, id) order, whichever store answers each page; cursors bound to their query.

The world is built here: four GBFS systems around one point, with vehicles at shared spots
(exact ties), mirrored pairs (ties to the millimetre), vehicles just outside the box,
reserved and disabled ones, a provider whose data is stale, a disabled provider and a private
fleet. What each caller should see is computed from that input alone, with geographiclib's
exact geodesic, never with the code under test.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from geographiclib.geodesic import Geodesic

from app.platform.db import transaction
from app.runtime import Runtime
from providers.admin import set_enabled
from providers.simulators.feed_server import FeedServer
from tests.booking_support import gql, sign_up
from tests.graphql.test_station_zone_order import make_private
from tests.helpers import (
    add_provider,
    age_last_success,
    scooter,
    serve_documents,
    synthetic_scooter_feeds,
)

CENTRE = (52.5200, 13.4000)
HALF_HEIGHT_M, HALF_WIDTH_M = 600.0, 900.0
RADIUS = 700.0
# The server rounds distances to the millimetre; geographiclib is exact.
TOLERANCE_M = 0.002

PAGE = """
query Page($near: NearInput, $within: WithinInput, $filter: VehicleFilterInput, $first: Int,
           $after: String) {
  vehiclesConnection(near: $near, within: $within, filter: $filter, first: $first,
                     after: $after) {
    edges { cursor node { id distanceMeters lat lon formFactor provider { id } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""

TYPES = [
    {"vehicle_type_id": "es", "form_factor": "scooter_standing", "propulsion_type": "electric"},
    {"vehicle_type_id": "car", "form_factor": "car", "propulsion_type": "electric"},
    {"vehicle_type_id": "bike", "form_factor": "bicycle", "propulsion_type": "human"},
]


def geodesic(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(Geodesic.WGS84.Inverse(lat1, lon1, lat2, lon2)["s12"])


def offset(north_m: float, east_m: float) -> tuple[float, float]:
    lat, lon = CENTRE
    return (
        round(lat + north_m / 111_320.0, 6),
        round(lon + east_m / (111_320.0 * math.cos(math.radians(lat))), 6),
    )


SOUTH_WEST = offset(-HALF_HEIGHT_M, -HALF_WIDTH_M)
NORTH_EAST = offset(HALF_HEIGHT_M, HALF_WIDTH_M)
BOX = {
    "minLat": SOUTH_WEST[0],
    "minLon": SOUTH_WEST[1],
    "maxLat": NORTH_EAST[0],
    "maxLon": NORTH_EAST[1],
}
BOX_CENTRE = ((BOX["minLat"] + BOX["maxLat"]) / 2, (BOX["minLon"] + BOX["maxLon"]) / 2)


def in_box(lat: float, lon: float) -> bool:
    return BOX["minLat"] <= lat <= BOX["maxLat"] and BOX["minLon"] <= lon <= BOX["maxLon"]


@dataclass(frozen=True)
class Placed:
    lat: float
    lon: float
    provider: str
    vehicle_type: str
    reserved: bool
    disabled: bool


@dataclass
class Fleet:
    """Every vehicle the feeds carry, by id."""

    vehicles: dict[str, Placed] = field(default_factory=dict)
    # Providers whose vehicles nobody sees (stale, disabled), and the private fleet.
    never_shown: set[str] = field(default_factory=set)
    private: str = ""

    def expected(
        self,
        area: str,
        *,
        insider: bool,
        include_reserved: bool = False,
        vehicle_type: str | None = None,
    ) -> dict[str, float]:
        """Visible vehicle id -> exact geodesic distance from the area's point."""
        origin = BOX_CENTRE if area == "within" else CENTRE
        out = {}
        for vid, v in self.vehicles.items():
            if v.disabled or (v.reserved and not include_reserved):
                continue
            if v.provider in self.never_shown or (v.provider == self.private and not insider):
                continue
            if vehicle_type is not None and v.vehicle_type != vehicle_type:
                continue
            distance = geodesic(*origin, v.lat, v.lon)
            if area == "within" and not in_box(v.lat, v.lon):
                continue
            if area == "near":
                # Nothing sits on the circle's edge, where rounding could decide.
                assert abs(distance - RADIUS) > 0.05, vid
                if distance > RADIUS:
                    continue
            out[vid] = distance
        return out


def _system(slug: str, bikes: list[dict[str, Any]]) -> dict[str, Any]:
    documents = synthetic_scooter_feeds(bikes)
    documents["system_information"]["data"]["system_id"] = slug
    documents["vehicle_types"]["data"]["vehicle_types"] = [
        {**t, "max_range_meters": 30000} if t["propulsion_type"] != "human" else dict(t)
        for t in TYPES
    ]
    return documents


@pytest.fixture
async def fleet(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> Fleet:
    server, base_url = feed_server
    rng = random.Random(20261207)
    world = Fleet()
    feeds: dict[str, list[dict[str, Any]]] = {
        p: [] for p in ("alpha", "bravo", "charlie", "stale", "off", "pool")
    }

    def put(provider: str, vid: str, position: tuple[float, float], **extra: Any) -> None:
        record = scooter(vid, *position, **extra)
        feeds[provider].append(record)
        world.vehicles[f"{provider}:{vid}"] = Placed(
            *position,
            provider=provider,
            vehicle_type=record["vehicle_type_id"],
            reserved=record["is_reserved"],
            disabled=record["is_disabled"],
        )

    def anywhere() -> tuple[float, float]:
        return offset(
            rng.uniform(-HALF_HEIGHT_M * 0.98, HALF_HEIGHT_M * 0.98),
            rng.uniform(-HALF_WIDTH_M * 0.98, HALF_WIDTH_M * 0.98),
        )

    kinds = {"alpha": ["es"], "bravo": ["car", "bike"], "charlie": ["bike"]}
    for provider, count in (("alpha", 60), ("bravo", 50), ("charlie", 45)):
        for i in range(count):
            kind = kinds[provider][i % len(kinds[provider])]
            put(provider, f"{kind}{i:03d}", anywhere(), vehicle_type_id=kind)
    # Shared spots (a station's pavement): equal distances, exactly.
    for spot in range(6):
        position = anywhere()
        for provider in ("alpha", "bravo", "charlie"):
            put(provider, f"spot{spot}", position, vehicle_type_id=kinds[provider][0])
        put("alpha", f"spot{spot}b", position)
        put("alpha", f"spot{spot}c", position)
    # Mirror images across the centre's meridian: equal distances to the millimetre.
    for pair in range(5):
        north, east = rng.uniform(-500, 500), rng.uniform(50, 800)
        put("bravo", f"east{pair}", offset(north, east), vehicle_type_id="car")
        put("charlie", f"west{pair}", offset(north, -east), vehicle_type_id="bike")
    # Just outside the box, inside the circle around it; a hair (a micro-degree, 11 cm)
    # outside its north edge, where PostGIS's float4 `&&` still says "inside"; and
    # unavailable ones inside.
    for i in range(3):
        put("bravo", f"hair{i}", (round(BOX["maxLat"] + 0.000001, 6), anywhere()[1]))
    for i in range(6):
        put("alpha", f"north{i}", (round(BOX["maxLat"] + 0.00002, 6), anywhere()[1]))
        put("charlie", f"east{i}", (anywhere()[0], round(BOX["maxLon"] + 0.00002, 6)))
        put("bravo", f"held{i}", anywhere(), vehicle_type_id="car", is_reserved=True)
        put("alpha", f"broken{i}", anywhere(), is_disabled=True)
    # Providers nobody sees, and a private fleet, all nearest the centre.
    for i in range(8):
        put("stale", f"s{i}", offset(rng.uniform(-40, 40), rng.uniform(-40, 40)))
        put("off", f"o{i}", offset(rng.uniform(-40, 40), rng.uniform(-40, 40)))
        put("pool", f"p{i}", offset(rng.uniform(-40, 40), rng.uniform(-40, 40)))

    for provider, bikes in feeds.items():
        documents = serve_documents(server, base_url, provider, _system(provider, bikes))
        await add_provider(runtime, provider, documents)
        report = await runtime.sync.sync(provider)
        assert report.ok, report.error
    await age_last_success(runtime, "stale", runtime.settings.stale_after_seconds + 60)
    async with transaction(runtime.sessions) as session:
        await set_enabled(session, "off", False)
    runtime.search.invalidate()
    world.never_shown = {"stale", "off"}
    world.private = "pool"
    return world


@contextmanager
def answered_by(runtime: Runtime, store: str) -> Iterator[None]:
    """Redis (the index) or PostGIS (no index: what an open circuit to Redis does)."""
    original = runtime.search.index
    runtime.search.index = original if store == "redis" else None
    try:
        yield
    finally:
        runtime.search.index = original


async def page_through(
    api: httpx.AsyncClient,
    runtime: Runtime,
    area: dict[str, Any],
    *,
    stores: list[str],
    sizes: list[int],
    token: str | None = None,
    flt: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Every page, following endCursor; page i is answered by stores[i % len(stores)] and
    asks for sizes[i % len(sizes)] vehicles."""
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        i = len(pages)
        first = sizes[i % len(sizes)]
        with answered_by(runtime, stores[i % len(stores)]):
            body = await gql(
                api, PAGE, {**area, "filter": flt, "first": first, "after": after}, token
            )
        assert "errors" not in body, body
        page = body["data"]["vehiclesConnection"]
        edges, info = page["edges"], page["pageInfo"]
        assert len(edges) <= first
        assert info["hasPreviousPage"] is False
        if edges:
            assert info["startCursor"] == edges[0]["cursor"]
            assert info["endCursor"] == edges[-1]["cursor"]
        else:
            assert info["startCursor"] is None and info["endCursor"] is None
        # hasNextPage is exact: it announced this page, so the page is not empty.
        assert edges or not pages, "hasNextPage promised a page that has nothing"
        pages.append(page)
        if not info["hasNextPage"]:
            return pages
        assert len(edges) == first, "a page before the last is full"
        after = info["endCursor"]
        assert len(pages) < 200, "paging does not end"


def check_pages(pages: list[dict[str, Any]], expected: dict[str, float], area: str) -> None:
    nodes = [e["node"] for p in pages for e in p["edges"]]
    ids = [n["id"] for n in nodes]
    assert len(ids) == len(set(ids)), "a vehicle came twice"
    assert set(ids) == set(expected), (
        f"missing {sorted(set(expected) - set(ids))}, extra {sorted(set(ids) - set(expected))}"
    )
    origin = BOX_CENTRE if area == "within" else CENTRE
    for node in nodes:
        # The distance shown is the geodesic from the area's point (computed here anew from
        # the answered position, and from the input data).
        assert node["distanceMeters"] == pytest.approx(expected[node["id"]], abs=TOLERANCE_M)
        assert geodesic(*origin, node["lat"], node["lon"]) == pytest.approx(
            node["distanceMeters"], abs=TOLERANCE_M
        )
    keys = [(n["distanceMeters"], n["id"]) for n in nodes]
    assert keys == sorted(keys), "not in (distance, id) order"
    exact = [expected[i] for i in ids]
    assert all(b >= a - TOLERANCE_M for a, b in itertools.pairwise(exact))
    # The ties matter: some page boundary falls between two vehicles at the same distance.
    boundaries = [
        (a["edges"][-1]["node"]["distanceMeters"], b["edges"][0]["node"]["distanceMeters"])
        for a, b in itertools.pairwise(pages)
        if b["edges"]
    ]
    assert any(x == y for x, y in boundaries), "no page boundary splits a tie: weak test data"


AREAS = {
    "within": {"within": BOX},
    "near": {"near": {"lat": CENTRE[0], "lon": CENTRE[1], "radiusMeters": RADIUS}},
}


@pytest.mark.parametrize(
    ("area", "stores"),
    [
        ("within", ["redis"]),
        ("within", ["postgis"]),
        ("within", ["redis", "postgis"]),  # pages alternate between the stores
        ("near", ["postgis", "redis"]),
    ],
)
async def test_paging_returns_every_visible_vehicle_once_in_distance_order(
    runtime: Runtime, api: httpx.AsyncClient, fleet: Fleet, area: str, stores: list[str]
) -> None:
    owner = await make_private(api, runtime, fleet.private)
    expected = fleet.expected(area, insider=False)
    assert len(expected) > 100  # many pages at these sizes
    # Ordered by id, the first pages would be alpha's alone.
    assert {vid.split(":")[0] for vid in sorted(expected)[:11]} == {"alpha"}

    pages = await page_through(api, runtime, AREAS[area], stores=stores, sizes=[7, 3, 11])

    check_pages(pages, expected, area)
    assert len({e["node"]["provider"]["id"] for e in pages[0]["edges"]}) > 1

    # The private fleet's organisation pages through it as well, nearest first.
    insider = fleet.expected(area, insider=True)
    assert set(insider) - set(expected)
    pages = await page_through(api, runtime, AREAS[area], stores=stores, sizes=[25], token=owner)
    check_pages(pages, insider, area)


async def test_paging_with_a_filter_that_reads_from_postgis(
    runtime: Runtime, api: httpx.AsyncClient, fleet: Fleet
) -> None:
    # Reserved vehicles are not in the Redis index: PostGIS answers every page.
    flt = {"includeReserved": True, "formFactors": ["CAR"]}
    expected = fleet.expected("within", insider=False, include_reserved=True, vehicle_type="car")
    assert any(fleet.vehicles[v].reserved for v in expected)

    pages = await page_through(api, runtime, AREAS["within"], stores=["redis"], sizes=[4], flt=flt)

    nodes = [e["node"] for p in pages for e in p["edges"]]
    assert sorted(n["id"] for n in nodes) == sorted(expected)
    assert {n["formFactor"] for n in nodes} == {"CAR"}
    keys = [(n["distanceMeters"], n["id"]) for n in nodes]
    assert keys == sorted(keys)


async def test_list_search_is_the_first_page(
    runtime: Runtime, api: httpx.AsyncClient, fleet: Fleet
) -> None:
    await make_private(api, runtime, fleet.private)
    for store in ("redis", "postgis"):
        with answered_by(runtime, store):
            listed = await gql(
                api, "query($b: WithinInput) { vehicles(within: $b, first: 40) { id } }", {"b": BOX}
            )
            paged = await gql(api, PAGE, {"within": BOX, "first": 40})
        expected = sorted(fleet.expected("within", insider=False).items(), key=lambda kv: kv[1])
        assert [v["id"] for v in listed["data"]["vehicles"]] == [
            e["node"]["id"] for e in paged["data"]["vehiclesConnection"]["edges"]
        ]
        # The nearest 40, computed here (the 40th and 41st are not a near-tie).
        assert expected[40][1] - expected[39][1] > 0.01
        assert {v["id"] for v in listed["data"]["vehicles"]} == {vid for vid, _ in expected[:40]}


# --- cursors --------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_a_cursor_of_another_query_or_not_ours_is_invalid_cursor(
    runtime: Runtime, api: httpx.AsyncClient, fleet: Fleet
) -> None:
    first = await gql(api, PAGE, {"within": BOX, "first": 5})
    cursor = first["data"]["vehiclesConnection"]["pageInfo"]["endCursor"]
    payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert set(payload) == {"v", "q", "d", "id"}  # the documented format

    def forged(**changes: Any) -> str:
        # The standard library's encoder: it writes integers beyond 64 bits too.
        return _b64(json.dumps({**payload, **changes}).encode())

    other_box = {**BOX, "maxLat": BOX["maxLat"] + 0.001}
    near = AREAS["near"]
    refused: dict[str, tuple[dict[str, Any], str]] = {
        "another box": ({"within": other_box}, cursor),
        "another filter": ({"within": BOX, "filter": {"formFactors": ["CAR"]}}, cursor),
        "near instead of within": (near, cursor),
        "not base64": ({"within": BOX}, "!!not a cursor!!"),
        "not JSON": ({"within": BOX}, _b64(b"hello")),
        "a JSON list": ({"within": BOX}, _b64(b"[1, 2]")),
        "another version": ({"within": BOX}, forged(v=2)),
        "no version": ({"within": BOX}, _b64(orjson.dumps({"q": payload["q"], "d": 1, "id": "x"}))),
        "distance as text": ({"within": BOX}, forged(d="12")),
        "fractional distance": ({"within": BOX}, forged(d=1.5)),
        "negative distance": ({"within": BOX}, forged(d=-1)),
        "huge distance": ({"within": BOX}, forged(d=10**30)),
        "id not a string": ({"within": BOX}, forged(id=7)),
        "empty id": ({"within": BOX}, forged(id="")),
        "huge": ({"within": BOX}, "A" * 100_000),
        "empty": ({"within": BOX}, ""),
    }
    for name, (area, after) in refused.items():
        body = await gql(api, PAGE, {**area, "first": 5, "after": after})
        assert body["data"] is None, (name, body)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_CURSOR"], name
        assert "after" in body["errors"][0]["message"], name

    # A well-formed position the client could have reached is answered, not refused: the
    # cursor grants nothing (see app/search/paging.py).
    body = await gql(api, PAGE, {"within": BOX, "first": 5, "after": forged(d=100_000)})
    assert "errors" not in body, body
    assert all(
        e["node"]["distanceMeters"] >= 100.0 for e in body["data"]["vehiclesConnection"]["edges"]
    )


async def test_has_next_page_is_exact(
    runtime: Runtime, api: httpx.AsyncClient, fleet: Fleet
) -> None:
    await make_private(api, runtime, fleet.private)
    total = len(fleet.expected("within", insider=False))
    assert total <= 200
    for store in ("redis", "postgis"):
        with answered_by(runtime, store):
            whole = await gql(api, PAGE, {"within": BOX, "first": total})
            short = await gql(api, PAGE, {"within": BOX, "first": total - 1})
            after = short["data"]["vehiclesConnection"]["pageInfo"]["endCursor"]
            last = await gql(api, PAGE, {"within": BOX, "first": 1, "after": after})
            beyond_cursor = last["data"]["vehiclesConnection"]["pageInfo"]["endCursor"]
            beyond = await gql(api, PAGE, {"within": BOX, "first": 5, "after": beyond_cursor})
        pages = [whole, short, last, beyond]
        infos = [p["data"]["vehiclesConnection"]["pageInfo"] for p in pages]
        sizes = [len(p["data"]["vehiclesConnection"]["edges"]) for p in pages]
        assert sizes == [total, total - 1, 1, 0], store
        assert [i["hasNextPage"] for i in infos] == [False, True, False, False], store


@pytest.mark.parametrize("first", [0, -1, 201])
async def test_page_size_is_capped_with_invalid_first(api: httpx.AsyncClient, first: int) -> None:
    body = await gql(api, PAGE, {"within": BOX, "first": first})
    assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_FIRST"]
    assert body["data"] is None


async def test_a_cursor_survives_another_page_size_and_caller(
    runtime: Runtime, api: httpx.AsyncClient, fleet: Fleet
) -> None:
    # Bound to the query (area, filter), not to `first` or to who asks.
    rider, _ = await sign_up(api)
    first = await gql(api, PAGE, {"within": BOX, "first": 9})
    after = first["data"]["vehiclesConnection"]["pageInfo"]["endCursor"]
    anonymous = await gql(api, PAGE, {"within": BOX, "first": 4, "after": after})
    signed_in = await gql(api, PAGE, {"within": BOX, "first": 4, "after": after}, rider)
    whole = await gql(api, PAGE, {"within": BOX, "first": 13})
    ids = [e["node"]["id"] for e in whole["data"]["vehiclesConnection"]["edges"]]
    for body in (anonymous, signed_in):
        assert [e["node"]["id"] for e in body["data"]["vehiclesConnection"]["edges"]] == ids[9:]


# --- ties in the Redis index ---------------------------------------------------------------


@pytest.mark.parametrize("store", ["redis", "postgis"])
async def test_many_vehicles_at_one_spot_page_out_once_each(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str], store: str
) -> None:
    # 70 vehicles at one position: both stores return equal distances in no particular order
    # (Redis not even alike in two calls), and every page starts inside the tie; ties must
    # neither repeat nor vanish.
    server, base_url = feed_server
    spot = offset(120, -80)
    bikes = [scooter(f"v{i:02d}", *spot) for i in range(70)]
    bikes += [scooter(f"far{i}", *offset(300 + i, 0)) for i in range(5)]
    await add_provider(
        runtime, "heap", serve_documents(server, base_url, "heap", _system("heap", bikes))
    )
    assert (await runtime.sync.sync("heap")).ok
    at_spot = sorted(f"heap:v{i:02d}" for i in range(70))
    near = {"lat": spot[0], "lon": spot[1], "radiusMeters": 1000}

    with answered_by(runtime, store):
        listed = await gql(
            api, "query($n: NearInput) { vehicles(near: $n, first: 5) { id } }", {"n": near}
        )
    assert [v["id"] for v in listed["data"]["vehicles"]] == at_spot[:5]

    pages = await page_through(api, runtime, {"near": near}, stores=[store], sizes=[5, 8])
    ids = [e["node"]["id"] for p in pages for e in p["edges"]]
    assert ids == at_spot + sorted(f"heap:far{i}" for i in range(5))
