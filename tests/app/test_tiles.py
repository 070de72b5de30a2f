"""Vector tiles (``/tiles/...``) against the data they were drawn from.

A GBFS operator (a real HTTP server serving documents built here) runs a mixed fleet of 600
vehicles over a few kilometres, some reserved or disabled, a few exactly on tile edges; it is
synced through the production path. The tiles are fetched through the real app and decoded
with ``mapbox-vector-tile`` (not our code), and every expectation is computed here from the
served positions with the slippy-map formulas, not from PostGIS or app/tiles:

- at street zooms every visible vehicle appears exactly once, in the tile that owns it, at its
  position (to the tile grid's resolution), with its attributes;
- at city zooms the clusters of each tile are exactly the vehicles of each 16 x 16 cell: their
  count, their mix of form factors and their mean position;
- private fleets, stale and disabled providers, filters, conditional GET, the point cap, the
  errors, and TileJSON.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import mapbox_vector_tile
import pytest
from sqlalchemy import text

from app.admission import slots
from app.main import create_app
from app.platform.db import transaction
from app.runtime import Runtime
from app.tiles.grid import TileAddress
from app.tiles.service import TILES, TileKey, TileQuery
from providers.service import register_provider
from providers.simulators.feed_server import FeedServer
from tests.booking_support import gql, staff_token
from tests.graphql.test_fleet_booking import PRIVATE, Org
from tests.helpers import age_last_success, serve_documents, v23_envelope

CITY = "tilecity"
FLEET = "tilefleet"  # made private to organisation A where a test says so
CENTER = (48.8566, 2.3522)
EXTENT = 4096
CELLS = 16
TYPES = {  # vehicle_type_id -> (form factor, propulsion)
    "es": ("scooter_standing", "electric"),
    "bk": ("bicycle", "human"),
    "car": ("car", "electric"),
}

# ------------------------------------------------------------------ the slippy-map formulas


def mercator_y(lat: float) -> float:
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of an XYZ tile, from the OSM wiki's formulas."""
    n = 2**z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def owns(bounds: tuple[float, float, float, float], lat: float, lon: float) -> bool:
    """West and north edges in, east and south edges out (docs/tiles.md)."""
    west, south, east, north = bounds
    return west <= lon < east and south < lat <= north


def tiles_over(z: int, points: list[tuple[float, float]]) -> list[tuple[int, int, int]]:
    n = 2**z
    xs = [int((lon + 180) / 360 * n) for _, lon in points]
    ys = [int((1 - mercator_y(lat) / math.pi) / 2 * n) for lat, _ in points]
    return [
        (z, x, y) for x in range(min(xs) - 1, max(xs) + 2) for y in range(min(ys) - 1, max(ys) + 2)
    ]


def tile_units(
    bounds: tuple[float, float, float, float], lat: float, lon: float
) -> tuple[float, float]:
    """A position in tile coordinates: x east, y down from the north edge."""
    west, south, east, north = bounds
    top, bottom = mercator_y(north), mercator_y(south)
    return (
        (lon - west) / (east - west) * EXTENT,
        (top - mercator_y(lat)) / (top - bottom) * EXTENT,
    )


def decode(body: bytes) -> dict[str, list[dict[str, Any]]]:
    if not body:
        return {}
    layers = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})
    return {name: layer["features"] for name, layer in layers.items()}


# ------------------------------------------------------------------ the operator


@dataclass
class Vehicle:
    id: str
    lat: float
    lon: float
    type_id: str
    reserved: bool = False
    disabled: bool = False
    range_m: float = 12_345.6
    provider: str = CITY

    @property
    def key(self) -> str:
        """Its id in the API (provider-scoped)."""
        return f"{self.provider}:{self.id}"

    @property
    def form_factor(self) -> str:
        return TYPES[self.type_id][0]

    def gbfs(self) -> dict[str, Any]:
        return {
            "bike_id": self.id,
            "lat": self.lat,
            "lon": self.lon,
            "is_reserved": self.reserved,
            "is_disabled": self.disabled,
            "vehicle_type_id": self.type_id,
            "current_range_meters": self.range_m,
            "last_reported": int(time.time()),
        }


ZONE_RULES = [
    {"vehicle_type_ids": ["bk"], "ride_start_allowed": True, "ride_end_allowed": True,
     "ride_through_allowed": True},
    {"ride_start_allowed": False, "ride_end_allowed": False, "ride_through_allowed": True,
     "maximum_speed_kph": 15},
]  # fmt: skip


def documents(
    slug: str, vehicles: list[Vehicle], stations: dict[str, tuple[float, float]]
) -> dict[str, Any]:
    now = int(time.time())
    lat, lon = CENTER
    square = [[lon - 0.004, lat - 0.003], [lon + 0.004, lat - 0.003], [lon + 0.004, lat + 0.003],
              [lon - 0.004, lat + 0.003], [lon - 0.004, lat - 0.003]]  # fmt: skip
    docs: dict[str, Any] = {
        "system_information": {"system_id": slug, "language": "en", "name": slug,
                               "timezone": "Europe/Paris"},
        "vehicle_types": {"vehicle_types": [
            {"vehicle_type_id": t, "form_factor": ff, "propulsion_type": prop,
             **({"max_range_meters": 50_000} if prop != "human" else {})}
            for t, (ff, prop) in TYPES.items()
        ]},
        "free_bike_status": {"bikes": [v.gbfs() for v in vehicles]},
        "station_information": {"stations": [
            {"station_id": s, "name": f"{slug} {s}", "lat": la, "lon": lo, "capacity": 12}
            for s, (la, lo) in stations.items()
        ]},
        "station_status": {"stations": [
            {"station_id": s, "num_bikes_available": i + 1, "num_docks_available": 11 - i,
             "is_installed": True, "is_renting": True, "is_returning": True, "last_reported": now}
            for i, s in enumerate(stations)
        ]},
        "geofencing_zones": {"geofencing_zones": {"type": "FeatureCollection", "features": [
            {"type": "Feature",
             "geometry": {"type": "MultiPolygon", "coordinates": [[square]]},
             "properties": {"name": "Centre", "rules": ZONE_RULES}}
        ]}},
    }  # fmt: skip
    return {name: v23_envelope(data, last_updated=now) for name, data in docs.items()}


def offset(north_m: float, east_m: float) -> tuple[float, float]:
    lat, lon = CENTER
    return (
        round(lat + north_m / 111_320.0, 7),
        round(lon + east_m / (111_320.0 * math.cos(math.radians(lat))), 7),
    )


def city_fleet() -> list[Vehicle]:
    rng = random.Random(18)
    fleet = []
    for i in range(600):
        lat, lon = offset(rng.uniform(-2500, 2500), rng.uniform(-2500, 2500))
        fleet.append(
            Vehicle(
                f"v{i:03d}",
                lat,
                lon,
                rng.choice(list(TYPES)),
                reserved=i % 23 == 0,
                disabled=i % 31 == 0,
                range_m=rng.uniform(1_000, 60_000),
            )
        )
    # Exactly on the edges of z16 tiles (west, north, both: a corner): each is drawn once.
    z = 16
    n = 2**z
    x = int((CENTER[1] + 180) / 360 * n)
    y = int((1 - mercator_y(CENTER[0]) / math.pi) / 2 * n)
    west, _, _, north = tile_bounds(z, x, y)
    fleet.append(Vehicle("edge-w", CENTER[0], west, "es"))
    fleet.append(Vehicle("edge-n", north, CENTER[1], "bk"))
    fleet.append(Vehicle("edge-corner", north, west, "car"))
    # An operator's absurd range (GBFS only warns about it): drawn, not a failed tile.
    fleet.append(Vehicle("far-range", *offset(-700, 900), "car", range_m=3e9))
    # Two dense spots: more vehicles at one place than a street tile may carry in the cap test.
    for i in range(40):
        fleet.append(Vehicle(f"dense{i:02d}", *offset(1200 + (i % 5), -800 + i // 5), "es"))
    return fleet


@dataclass
class City:
    vehicles: list[Vehicle]
    stations: dict[str, tuple[float, float]]
    private_vehicles: list[Vehicle]
    docs: dict[str, dict[str, Any]]

    def visible(self, *, fleet: bool = True) -> list[Vehicle]:
        """The available vehicles; FLEET's too unless a test has hidden it."""
        shown = [v for v in self.vehicles if not (v.reserved or v.disabled)]
        return shown + (self.private_vehicles if fleet else [])


async def _register(
    runtime: Runtime, server: FeedServer, base_url: str, slug: str, docs: dict[str, Any]
) -> None:
    feeds = serve_documents(server, base_url, slug, docs)
    async with transaction(runtime.sessions) as session:
        await register_provider(
            session, slug=slug, name=slug, adapter="gbfs", config={"feeds": feeds}
        )
    report = await runtime.sync.sync(slug)
    assert report.ok, report.error


@pytest.fixture
async def city(runtime: Runtime, feed_server: tuple[FeedServer, str]) -> City:
    server, base_url = feed_server
    vehicles = city_fleet()
    stations = {f"s{i}": offset(300 * i - 900, 200 * i - 600) for i in range(7)}
    private = [Vehicle(f"p{i}", *offset(100 * i, -50 * i), "car", provider=FLEET) for i in range(5)]
    docs = {
        CITY: documents(CITY, vehicles, stations),
        FLEET: documents(FLEET, private, {}),
    }
    for slug, served in docs.items():
        await _register(runtime, server, base_url, slug, served)
    return City(vehicles, stations, private, docs)


@asynccontextmanager
async def client_of(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings)
    app.state.runtime = runtime
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        yield client


async def fetch(
    api: httpx.AsyncClient,
    layer: str,
    tile: tuple[int, int, int],
    query: str = "",
    token: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    z, x, y = tile
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    return decode(response.content)


def vehicle_ids(found: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [f["properties"]["id"] for f in found.get("vehicles", [])]


# ------------------------------------------------------------------ street zooms: points


@pytest.mark.parametrize("z", [15, 16])
async def test_street_tiles_draw_every_visible_vehicle_once_where_it_is(
    api: httpx.AsyncClient, city: City, z: int
) -> None:
    visible = city.visible()
    tiles = tiles_over(z, [(v.lat, v.lon) for v in city.vehicles])
    drawn: Counter[str] = Counter()
    for tile in tiles:
        bounds = tile_bounds(*tile)
        found = await fetch(api, "vehicles", tile)
        assert set(found) <= {"vehicles"}, found.keys()
        by_id = {f["properties"]["id"]: f for f in found.get("vehicles", [])}
        owned = {v.key: v for v in visible if owns(bounds, v.lat, v.lon)}
        edge = {i for i in owned.keys() | by_id.keys() if "edge" in i}
        # Every vehicle the tile owns is in it; an edge vehicle may land on either side.
        assert set(owned) - edge <= set(by_id), tile
        assert set(by_id) - edge <= set(owned), tile
        drawn.update(vehicle_ids(found))  # every feature: a repeat inside a tile counts
        for vid, feature in by_id.items():
            vehicle = next(v for v in visible if v.key == vid)
            props = feature["properties"]
            assert props["provider_id"] == vehicle.provider
            assert props["form_factor"] == vehicle.form_factor
            assert props["propulsion_type"] == TYPES[vehicle.type_id][1]
            assert props["vehicle_type_id"] == f"{vehicle.provider}:{vehicle.type_id}"
            assert props["range_meters"] == round(vehicle.range_m)
            assert feature["geometry"]["type"] == "Point"
            gx, gy = feature["geometry"]["coordinates"]
            ex, ey = tile_units(bounds, vehicle.lat, vehicle.lon)
            assert abs(gx - ex) <= 0.5 + 1e-6 and abs(gy - ey) <= 0.5 + 1e-6, (vid, gx, gy, ex, ey)
    assert drawn == Counter({v.key: 1 for v in visible})


# ------------------------------------------------------------------ city zooms: clusters


@pytest.mark.parametrize("z", [11, 12, 13])
async def test_city_tiles_count_each_cell_exactly(
    api: httpx.AsyncClient, city: City, z: int
) -> None:
    visible = city.visible()
    total = 0
    for tile in tiles_over(z, [(v.lat, v.lon) for v in city.vehicles]):
        bounds = tile_bounds(*tile)
        west, south, east, north = bounds
        top, bottom = mercator_y(north), mercator_y(south)
        cells: dict[tuple[int, int], list[Vehicle]] = defaultdict(list)
        for v in visible:
            if owns(bounds, v.lat, v.lon):
                col = min(int((v.lon - west) / (east - west) * CELLS), CELLS - 1)
                row = min(int((top - mercator_y(v.lat)) / (top - bottom) * CELLS), CELLS - 1)
                cells[(col, row)].append(v)
        found = await fetch(api, "vehicles", tile)
        assert set(found) <= {"vehicle_clusters"}, found.keys()
        clusters = found.get("vehicle_clusters", [])
        assert len(clusters) == len(cells), tile
        # Each cell's expected cluster: at the mean position of its vehicles (a cluster is
        # matched by that position: the grid may round a mean on a cell's edge across it).
        expected = {}
        for cell, members in cells.items():
            mean_lat = sum(v.lat for v in members) / len(members)
            mean_lon = sum(v.lon for v in members) / len(members)
            expected[cell] = (tile_units(bounds, mean_lat, mean_lon), members)
        for cluster in clusters:
            gx, gy = cluster["geometry"]["coordinates"]
            cell = min(
                cells,
                key=lambda c: math.dist(expected[c][0], (gx, gy)),
            )
            (ex, ey), members = expected[cell]
            del cells[cell]
            assert abs(gx - ex) <= 0.5 + 1e-6 and abs(gy - ey) <= 0.5 + 1e-6, (tile, cell)
            props = cluster["properties"]
            assert props["count"] == len(members)
            mix = Counter(v.form_factor for v in members)
            assert {k: v for k, v in props.items() if k != "count"} == dict(mix)
            total += props["count"]
        assert not cells, f"cells without a cluster in {tile}: {sorted(cells)}"
    assert total == len(visible)


async def test_a_street_tile_denser_than_the_cap_is_drawn_as_clusters(
    runtime: Runtime, api: httpx.AsyncClient, city: City
) -> None:
    dense = next(v for v in city.vehicles if v.id == "dense00")
    z = 16
    n = 2**z
    tile = (z, int((dense.lon + 180) / 360 * n), int((1 - mercator_y(dense.lat) / math.pi) / 2 * n))
    owned = [v for v in city.visible() if owns(tile_bounds(*tile), v.lat, v.lon)]
    assert len(owned) > 30
    capped = runtime.with_settings(runtime.settings.model_copy(update={"tiles_max_points": 30}))
    async with client_of(capped) as capped_api:
        found = await fetch(capped_api, "vehicles", tile)
    assert set(found) == {"vehicle_clusters"}
    assert sum(c["properties"]["count"] for c in found["vehicle_clusters"]) == len(owned)
    # The control: under the default cap the same tile is every vehicle as a point.
    assert sorted(vehicle_ids(await fetch(api, "vehicles", tile))) == sorted(v.key for v in owned)


# ------------------------------------------------------------------ visibility and filters


async def test_a_private_fleet_is_drawn_for_its_organisation_only(
    runtime: Runtime, api: httpx.AsyncClient, city: City
) -> None:
    staff = await staff_token(runtime)
    org_a = await Org.build(api, "Acme")
    org_b = await Org.build(api, "Bravo")
    key_a = await org_a.key(api, "VEHICLES_READ")
    key_b = await org_b.key(api, "VEHICLES_READ")
    made = await gql(api, PRIVATE, {"id": FLEET, "org": org_a.id}, staff)
    assert "errors" not in made, made
    runtime.search.invalidate()
    private_ids = {v.key for v in city.private_vehicles}
    z = 15
    tiles = tiles_over(z, [(v.lat, v.lon) for v in city.private_vehicles])

    async def seen(token: str | None) -> set[str]:
        ids: set[str] = set()
        for tile in tiles:
            ids.update(vehicle_ids(await fetch(api, "vehicles", tile, token=token)))
        return ids

    outsiders = {
        "anonymous": None,
        "B's key": key_b,
        "B's owner": org_b.owner,
        "a token that is no one's": "not-a-token",  # read as anonymous, as search does
    }
    for name, token in outsiders.items():
        assert not await seen(token) & private_ids, name
    for name, token in {"A's key": key_a, "A's rider": org_a.rider}.items():
        assert private_ids <= await seen(token), name
    # Naming the private fleet is answered as naming no fleet at all.
    for token in (None, key_b):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for provider in (FLEET, "nosuchfleet"):
            response = await api.get(
                f"/tiles/vehicles/15/0/0.mvt?providers={provider}", headers=headers
            )
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "UNKNOWN_PROVIDER"
            assert provider in response.json()["error"]["message"]
    # A credentialed tile is cached privately; an anonymous one publicly.
    tile = "/tiles/vehicles/15/0/0.mvt"
    assert (
        (await api.get(tile, headers={"Authorization": f"Bearer {key_a}"}))
        .headers["cache-control"]
        .startswith("private")
    )
    assert (await api.get(tile)).headers["cache-control"].startswith("public")


async def test_api_keys_need_the_vehicles_read_scope_and_must_be_valid(
    runtime: Runtime, api: httpx.AsyncClient, city: City
) -> None:
    org = await Org.build(api, "Acme")
    reports_only = await org.key(api, "REPORTS_READ")
    response = await api.get(
        "/tiles/vehicles/15/0/0.mvt", headers={"Authorization": f"Bearer {reports_only}"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "MISSING_SCOPE"
    forged = reports_only[:-4] + ("AAAA" if not reports_only.endswith("AAAA") else "BBBB")
    response = await api.get(
        "/tiles/vehicles/15/0/0.mvt", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_API_KEY"
    # A rider's stale token reads the public map (as GraphQL's search does).
    response = await api.get(
        "/tiles/vehicles/15/0/0.mvt", headers={"Authorization": "Bearer not-a-token"}
    )
    assert response.status_code == 200


async def test_stale_and_disabled_providers_are_not_drawn(
    runtime: Runtime, api: httpx.AsyncClient, city: City
) -> None:
    z = 12
    tiles = tiles_over(z, [(v.lat, v.lon) for v in city.vehicles])

    async def counts() -> tuple[int, int]:
        vehicles = stations = 0
        for tile in tiles:
            found = await fetch(api, "vehicles", tile)
            vehicles += sum(c["properties"]["count"] for c in found.get("vehicle_clusters", []))
            found = await fetch(api, "stations", tile)
            stations += len(found.get("stations", []))
        return vehicles, stations

    visible = len(city.visible())
    assert await counts() == (visible, len(city.stations))
    await age_last_success(runtime, CITY, runtime.settings.stale_after_seconds + 60)
    runtime.search.invalidate()
    # Stale: its vehicles are hidden as in search; its stations stay where they were.
    assert await counts() == (len(city.private_vehicles), len(city.stations))
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text("UPDATE providers SET enabled = false WHERE id = :p"), {"p": CITY}
        )
    runtime.search.invalidate()
    assert await counts() == (len(city.private_vehicles), 0)


async def test_filters_by_form_factor_propulsion_provider_and_range(
    api: httpx.AsyncClient, city: City
) -> None:
    z = 15
    everyone = city.visible()
    tiles = tiles_over(z, [(v.lat, v.lon) for v in everyone])
    cases: dict[str, Callable[[Vehicle], bool]] = {
        "?form_factors=bicycle,car": lambda v: v.form_factor in {"bicycle", "car"},
        "?propulsion_types=human": lambda v: TYPES[v.type_id][1] == "human",
        f"?providers={FLEET}": lambda v: v.provider == FLEET,
        f"?providers={CITY}&providers={FLEET}&form_factors=car": lambda v: v.form_factor == "car",
        "?min_range_meters=30000": lambda v: v.range_m >= 30_000,
    }
    for query, wanted in cases.items():
        expected = {v.key for v in everyone if wanted(v)}
        drawn: list[str] = []
        for tile in tiles:
            drawn += vehicle_ids(await fetch(api, "vehicles", tile, query))
        assert sorted(drawn) == sorted(expected), query
        assert expected, query  # each case selects something, and not everything
        assert len(expected) < len(everyone), query


async def test_cluster_tiles_are_kept_briefly_but_never_across_visibility(
    runtime: Runtime, api: httpx.AsyncClient, city: City
) -> None:
    z = 12
    tiles = tiles_over(z, [(v.lat, v.lon) for v in city.private_vehicles])
    cached = runtime.with_settings(
        runtime.settings.model_copy(update={"tiles_cluster_cache_seconds": 600.0})
    )

    async def total(client: httpx.AsyncClient, token: str | None = None) -> int:
        found = 0
        for tile in tiles:
            clusters = (await fetch(client, "vehicles", tile, token=token)).get(
                "vehicle_clusters", []
            )
            found += sum(c["properties"]["count"] for c in clusters)
        return found

    everyone = len(city.visible())
    async with client_of(cached) as cached_api:
        assert await total(cached_api) == everyone
        # The fleet leaves the area: within the cache's life the counts stay as drawn...
        for doc in city.docs[FLEET].values():
            doc["last_updated"] = int(time.time()) + 5
        city.docs[FLEET]["free_bike_status"]["data"]["bikes"] = []
        report = await runtime.sync.sync(FLEET)
        assert report.ok, report.error
        assert await total(cached_api) == everyone
    # ...while the API without the cache sees the change at once (the control).
    uncached = runtime.with_settings(
        runtime.settings.model_copy(update={"tiles_cluster_cache_seconds": 0.0})
    )
    async with client_of(uncached) as uncached_api:
        assert await total(uncached_api) == everyone - len(city.private_vehicles)

    # A private fleet: an insider's cluster tile is never served to an outsider.
    for doc in city.docs[FLEET].values():
        doc["last_updated"] = int(time.time()) + 10
    city.docs[FLEET]["free_bike_status"]["data"]["bikes"] = [
        v.gbfs() for v in city.private_vehicles
    ]
    report = await runtime.sync.sync(FLEET)
    assert report.ok, report.error
    staff = await staff_token(runtime)
    org = await Org.build(api, "Acme")
    key = await org.key(api, "VEHICLES_READ")
    made = await gql(api, PRIVATE, {"id": FLEET, "org": org.id}, staff)
    assert "errors" not in made, made
    runtime.search.invalidate()
    cached = runtime.with_settings(
        runtime.settings.model_copy(update={"tiles_cluster_cache_seconds": 600.0})
    )
    async with client_of(cached) as cached_api:
        assert await total(cached_api, key) == everyone
        assert await total(cached_api) == everyone - len(city.private_vehicles)
        assert await total(cached_api, key) == everyone


async def test_below_the_minimum_zoom_tiles_are_empty(
    runtime: Runtime, api: httpx.AsyncClient, city: City
) -> None:
    low = runtime.settings.tiles_min_zoom - 1
    n = 2**low
    tile = (
        low,
        int((CENTER[1] + 180) / 360 * n),
        int((1 - mercator_y(CENTER[0]) / math.pi) / 2 * n),
    )
    for layer in ("vehicles", "stations", "zones"):
        response = await api.get(f"/tiles/{layer}/{low}/{tile[1]}/{tile[2]}.mvt")
        assert response.status_code == 200 and response.content == b"", layer
    # One zoom up, the same place has its vehicles and zones (the control).
    up = (low + 1, tile[1] * 2, tile[2] * 2)
    counts = 0
    for dx in (0, 1):
        for dy in (0, 1):
            clusters = (await fetch(api, "vehicles", (up[0], up[1] + dx, up[2] + dy))).get(
                "vehicle_clusters", []
            )
            counts += sum(c["properties"]["count"] for c in clusters)
    assert counts == len(city.visible())
    zones = 0
    for dx in (0, 1):
        for dy in (0, 1):
            zones += len(
                (await fetch(api, "zones", (up[0], up[1] + dx, up[2] + dy))).get("zones", [])
            )
    assert zones >= 2  # each provider's zone, once per tile it touches
    for layer in ("vehicles", "stations", "zones"):
        doc = (await api.get(f"/tiles/{layer}.json")).json()
        assert doc["minzoom"] == runtime.settings.tiles_min_zoom, layer


# ------------------------------------------------------------------ stations and zones


async def test_stations_and_zones_carry_their_attributes(
    api: httpx.AsyncClient, city: City
) -> None:
    z = 14
    tiles = tiles_over(z, list(city.stations.values()))
    stations: dict[str, dict[str, Any]] = {}
    for tile in tiles:
        for feature in (await fetch(api, "stations", tile)).get("stations", []):
            assert feature["properties"]["id"] not in stations
            stations[feature["properties"]["id"]] = feature["properties"]
    assert set(stations) == {f"{CITY}:{s}" for s in city.stations}
    for i, s in enumerate(city.stations):
        props = stations[f"{CITY}:{s}"]
        assert props["vehicles_available"] == i + 1
        assert props["docks_available"] == 11 - i
        assert props["name"] == f"{CITY} {s}"
        assert props["is_renting"] is True
    # Below the stations' point zoom: clusters adding up to the same stations and vehicles.
    clusters = []
    for tile in tiles_over(10, list(city.stations.values())):
        clusters += (await fetch(api, "stations", tile)).get("station_clusters", [])
    assert sum(c["properties"]["count"] for c in clusters) == len(city.stations)
    assert sum(c["properties"]["vehicles_available"] for c in clusters) == sum(
        i + 1 for i in range(len(city.stations))
    )
    # The zone: the rule for every vehicle type as attributes, all rules as JSON; both
    # providers have one, so the tile at the centre holds two.
    n = 2**z
    centre = (
        z,
        int((CENTER[1] + 180) / 360 * n),
        int((1 - mercator_y(CENTER[0]) / math.pi) / 2 * n),
    )
    zones = (await fetch(api, "zones", centre))["zones"]
    assert {f["properties"]["provider_id"] for f in zones} == {CITY, FLEET}
    props = next(f["properties"] for f in zones if f["properties"]["provider_id"] == CITY)
    assert props["name"] == "Centre"
    assert props["ride_end_allowed"] is False and props["ride_start_allowed"] is False
    assert props["ride_through_allowed"] is True
    assert props["maximum_speed_kph"] == 15
    assert [r.get("vehicle_type_ids") for r in json.loads(props["rules"])] == [[f"{CITY}:bk"], None]


# ------------------------------------------------------------------ caching


async def test_a_tile_is_revalidated_and_changes_when_its_vehicles_do(
    runtime: Runtime, api: httpx.AsyncClient, city: City
) -> None:
    moved = next(v for v in city.visible() if v.id.startswith("v"))
    z = 16
    n = 2**z
    x, y = int((moved.lon + 180) / 360 * n), int((1 - mercator_y(moved.lat) / math.pi) / 2 * n)
    url = f"/tiles/vehicles/{z}/{x}/{y}.mvt"
    first = await api.get(url)
    etag = first.headers["etag"]
    assert (
        first.headers["cache-control"]
        == f"public, max-age={runtime.settings.tiles_max_age_seconds}"
    )
    again = await api.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert (await api.get(url, headers={"If-None-Match": f'W/{etag}, "other"'})).status_code == 304
    # The vehicle drives 3 km north: its old tile changes, and so does its ETag.
    bikes = city.docs[CITY]["free_bike_status"]["data"]["bikes"]
    for bike in bikes:
        if bike["bike_id"] == moved.id:
            bike["lat"] = round(moved.lat + 0.03, 7)
    for doc in city.docs[CITY].values():
        doc["last_updated"] = int(time.time()) + 5
    report = await runtime.sync.sync(CITY)
    assert report.ok, report.error
    after = await api.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    assert moved.key not in vehicle_ids(decode(after.content))


async def test_tiles_are_gzipped_for_clients_that_take_it(
    api: httpx.AsyncClient, city: City
) -> None:
    z = 14
    n = 2**z
    x, y = int((CENTER[1] + 180) / 360 * n), int((1 - mercator_y(CENTER[0]) / math.pi) / 2 * n)
    url = f"/tiles/vehicles/{z}/{x}/{y}.mvt"
    plain = await api.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(plain.content) > 512 and vehicle_ids(decode(plain.content))
    for accept in ("gzip", "br, gzip;q=0.5", "*"):
        zipped = await api.get(url, headers={"Accept-Encoding": accept})
        assert zipped.headers["content-encoding"] == "gzip", accept
        assert zipped.content == plain.content  # httpx decodes: the same tile
        assert int(zipped.headers["content-length"]) < len(plain.content)
        assert zipped.headers["etag"] != plain.headers["etag"]  # another representation
        assert "Accept-Encoding" in zipped.headers["vary"]
        # Each representation revalidates against its own tag only.
        same = await api.get(
            url, headers={"Accept-Encoding": accept, "If-None-Match": zipped.headers["etag"]}
        )
        assert same.status_code == 304
        other = await api.get(
            url, headers={"Accept-Encoding": accept, "If-None-Match": plain.headers["etag"]}
        )
        assert other.status_code == 200
    refused = await api.get(url, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


async def test_a_flood_waits_a_moment_for_a_slot_then_is_told_to_come_back(
    runtime: Runtime, city: City
) -> None:
    n = 2**15
    x, y = int((CENTER[1] + 180) / 360 * n), int((1 - mercator_y(CENTER[0]) / math.pi) / 2 * n)
    url = f"/tiles/vehicles/15/{x}/{y}.mvt"
    busy = runtime.with_settings(
        runtime.settings.model_copy(
            update={"tiles_max_concurrent": 1, "tiles_slot_wait_seconds": 0.05}
        )
    )
    async with client_of(busy) as busy_api:
        slot = slots(TILES, 1)
        async with slot:  # every slot of the process taken, as by a long tile
            started = time.monotonic()
            response = await busy_api.get(url)
            waited = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "TILES_BUSY"
        assert response.headers["retry-after"] == "1"
        assert 0.05 <= waited < 2.0
        # The slot free again: the same request is drawn.
        assert vehicle_ids(await fetch(busy_api, "vehicles", (15, x, y)))
    slow = runtime.with_settings(
        runtime.settings.model_copy(update={"tiles_statement_timeout_seconds": 1e-6})
    )
    async with client_of(slow) as slow_api:
        response = await slow_api.get(url)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "TILES_BUSY"


async def test_one_drawing_serves_every_request_of_a_tile_at_once(runtime: Runtime) -> None:
    service = runtime.tiles
    key: TileKey = (TileQuery(layer="vehicles"), TileAddress(12, 1, 1), frozenset(), frozenset())
    drawn = 0
    release = asyncio.Event()

    async def draw() -> bytes:
        nonlocal drawn
        drawn += 1
        await release.wait()
        return b"tile %d" % drawn

    requests = [asyncio.create_task(service._cached(key, 60.0, draw)) for _ in range(5)]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(*requests) == [b"tile 1"] * 5
    assert drawn == 1
    # Kept: asked again, not drawn again.
    assert await service._cached(key, 60.0, draw) == b"tile 1" and drawn == 1

    # The request drawing it goes away: a waiting one draws it instead.
    other: TileKey = (key[0], TileAddress(12, 2, 2), frozenset(), frozenset())
    release.clear()
    first = asyncio.create_task(service._cached(other, 60.0, draw))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(service._cached(other, 60.0, draw))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    release.set()
    assert await second == b"tile 3" and drawn == 3
    with pytest.raises(asyncio.CancelledError):
        await first

    # A drawing that fails: each waiting request draws (and fails) on its own.
    failing: TileKey = (key[0], TileAddress(12, 3, 3), frozenset(), frozenset())
    attempts = 0

    async def broken() -> bytes:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise OSError(f"attempt {attempts}")

    results = await asyncio.gather(
        *(service._cached(failing, 60.0, broken) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, OSError) for r in results)
    assert len({str(r) for r in results}) == attempts == 3  # its own error each


# ------------------------------------------------------------------ errors and TileJSON


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/tiles/trains/1/0/0.mvt", 404, "UNKNOWN_LAYER"),
        ("/tiles/vehicles/21/0/0.mvt", 400, "INVALID_TILE"),
        ("/tiles/vehicles/2/4/0.mvt", 400, "INVALID_TILE"),
        ("/tiles/vehicles/2/0/4.mvt", 400, "INVALID_TILE"),
        ("/tiles/vehicles/-1/0/0.mvt", 400, "INVALID_TILE"),
        ("/tiles/vehicles/1/+1/0.mvt", 400, "INVALID_TILE"),
        ("/tiles/vehicles/%C2%B2/0/0.mvt", 400, "INVALID_TILE"),  # "²": a digit to str.isdigit
        ("/tiles/vehicles/%D9%A1%D9%A2/0/0.mvt", 400, "INVALID_TILE"),  # Arabic-Indic 12
        ("/tiles/vehicles/1/0/0.mvt?min_range_meters=1_0", 400, "INVALID_FILTER"),
        ("/tiles/vehicles/1/0/0.mvt?min_range_meters=1.5", 400, "INVALID_FILTER"),
        ("/tiles/vehicles/1/0/0.mvt?min_range_meters=1000001", 400, "INVALID_FILTER"),
        (
            "/tiles/vehicles/1/0/0.mvt?providers=" + ",".join(f"p{i}" for i in range(51)),
            400,
            "INVALID_FILTER",
        ),
        ("/tiles/vehicles/1/0/0.mvt?providers=" + "x" * 65, 400, "INVALID_FILTER"),
        ("/tiles/vehicles/99999999999/0/0.mvt", 400, "INVALID_TILE"),
        ("/tiles/vehicles/1/0/0.mvt?form_factors=bike", 400, "INVALID_FILTER"),
        ("/tiles/vehicles/1/0/0.mvt?form_factors=", 400, "INVALID_FILTER"),
        ("/tiles/vehicles/1/0/0.mvt?formfactors=car", 400, "INVALID_FILTER"),
        ("/tiles/vehicles/1/0/0.mvt?min_range_meters=-1", 400, "INVALID_FILTER"),
        ("/tiles/vehicles/1/0/0.mvt?min_range_meters=inf", 400, "INVALID_FILTER"),
        (
            "/tiles/vehicles/1/0/0.mvt?min_range_meters=%EF%BC%91",
            400,
            "INVALID_FILTER",
        ),  # fullwidth one
        ("/tiles/vehicles/1/0/0.mvt?providers=,", 400, "INVALID_FILTER"),
        ("/tiles/stations/1/0/0.mvt?form_factors=car", 400, "INVALID_FILTER"),
        ("/tiles/zones/1/0/0.mvt?providers=nope", 400, "UNKNOWN_PROVIDER"),
        ("/tiles/trains.json", 404, "UNKNOWN_LAYER"),
        ("/tiles/vehicles.json?propulsion_types=steam", 400, "INVALID_FILTER"),
    ],
)
async def test_bad_requests_are_refused_with_a_code(
    api: httpx.AsyncClient, runtime: Runtime, path: str, status: int, code: str
) -> None:
    assert runtime.settings.tiles_max_zoom == 20
    response = await api.get(path)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert response.headers["cache-control"] == "no-store"


async def test_tilejson_describes_the_layer_for_this_caller(
    api: httpx.AsyncClient, city: City
) -> None:
    response = await api.get("/tiles/vehicles.json?form_factors=car")
    assert response.status_code == 200
    doc = response.json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == ["http://api/tiles/vehicles/{z}/{x}/{y}.mvt?form_factors=car"]
    west, south, east, north = doc["bounds"]
    cars = [v for v in city.visible() if v.form_factor == "car"]
    # The extent of everything the caller may see of the layer, filters aside (PostGIS keeps
    # boxes in single precision, rounded outwards).
    shown = city.visible()
    for edge, exact in [
        (west, min(v.lon for v in shown)),
        (south, min(v.lat for v in shown)),
        (-east, -max(v.lon for v in shown)),
        (-north, -max(v.lat for v in shown)),
    ]:
        assert 0 <= exact - edge < 1e-5
    layers = {layer["id"]: layer for layer in doc["vector_layers"]}
    assert set(layers) == {"vehicles", "vehicle_clusters"}
    # Every attribute a decoded tile carries is declared, with its type.
    z = 16
    found = await fetch(
        api, "vehicles", tiles_over(z, [(cars[0].lat, cars[0].lon)])[4], "?form_factors=car"
    )
    for feature in found["vehicles"]:
        for name, value in feature["properties"].items():
            declared = layers["vehicles"]["fields"][name]
            assert declared == ("Number" if isinstance(value, int | float) else "String"), name
