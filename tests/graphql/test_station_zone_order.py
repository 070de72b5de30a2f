"""Stations and geofencing zones of an area: nearest to the `near` point or the box's centre
first, ties by id, and another organisation's private fleet left out *before* `first`, so it
never makes a page come back short.

Two GBFS systems built here: PUBLIC (everyone's) and POOL (made private to an organisation),
whose stations and zones are the nearest to the centre. Expected answers are computed from
that input with geographiclib, never with the code under test.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest
from geographiclib.geodesic import Geodesic

from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.booking_support import gql, sign_up, staff_token
from tests.graphql.test_compiled_execution import _execute
from tests.graphql.test_fleet_booking import CREATE_ORG, PRIVATE
from tests.helpers import add_provider, serve_documents, synthetic_scooter_feeds, v23_envelope

CENTRE = (52.5100, 13.3900)
HALF_SIDE_M = 500.0
PUBLIC = "pubstations"
POOL = "poolstations"
TOLERANCE_M = 0.002

STATIONS = """
query S($near: NearInput, $within: WithinInput, $first: Int) {
  stations(near: $near, within: $within, first: $first) { id distanceMeters lat lon }
}"""
ZONES = """
query Z($near: NearInput, $within: WithinInput, $first: Int) {
  geofencingZones(near: $near, within: $within, first: $first) { id distanceMeters }
}"""


def geodesic(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(Geodesic.WGS84.Inverse(*a, *b)["s12"])


def offset(north_m: float, east_m: float) -> tuple[float, float]:
    lat, lon = CENTRE
    return (
        round(lat + north_m / 111_320.0, 6),
        round(lon + east_m / (111_320.0 * math.cos(math.radians(lat))), 6),
    )


SOUTH_WEST, NORTH_EAST = offset(-HALF_SIDE_M, -HALF_SIDE_M), offset(HALF_SIDE_M, HALF_SIDE_M)
BOX = {
    "minLat": SOUTH_WEST[0],
    "minLon": SOUTH_WEST[1],
    "maxLat": NORTH_EAST[0],
    "maxLon": NORTH_EAST[1],
}
BOX_CENTRE = ((BOX["minLat"] + BOX["maxLat"]) / 2, (BOX["minLon"] + BOX["maxLon"]) / 2)
NEAR = {"lat": CENTRE[0], "lon": CENTRE[1], "radiusMeters": 2000.0}


def in_box(p: tuple[float, float]) -> bool:
    return BOX["minLat"] <= p[0] <= BOX["maxLat"] and BOX["minLon"] <= p[1] <= BOX["maxLon"]


# Stations: POOL's are all nearer the centre than any of PUBLIC's; two of PUBLIC's share a spot.
STATION_POSITIONS: dict[str, dict[str, tuple[float, float]]] = {
    POOL: {f"p{i}": offset(10 * i - 20, 15 - 5 * i) for i in range(5)},
    PUBLIC: {
        "north": offset(300, 20),
        "south": offset(-120, -60),
        "east": offset(40, 260),
        "twin-b": offset(-90, 180),
        "twin-a": offset(-90, 180),
        "west": offset(10, -410),
        "corner": offset(450, 450),
        "outside": offset(700, 0),
    },
}

# Zones as lat/lon squares (south-west corner in metres from the centre, side in metres).
# Squares wholly north-east / south-west of the point are nearest it at a corner.
ZONE_SQUARES: dict[str, list[tuple[str, float, float, float]]] = {
    POOL: [("pool-around", -50, -50, 100), ("pool-wide", -200, -200, 400)],
    PUBLIC: [
        ("around", -30, -30, 60),
        ("ne-near", 80, 90, 50),
        ("wide", -300, -300, 600),
        ("sw-far", -400, -420, 60),
        ("ne-far", 250, 200, 40),
        ("far-away", 2000, 2000, 50),
    ],
}


def _ring(south: float, west: float, side: float) -> list[list[float]]:
    corners = [
        offset(south, west),
        offset(south, west + side),
        offset(south + side, west + side),
        offset(south + side, west),
    ]
    return [[lon, lat] for lat, lon in [*corners, corners[0]]]


def _zone_distance(origin: tuple[float, float], south: float, west: float, side: float) -> float:
    """0 inside; else to the nearest corner (the squares outside sit in a diagonal quadrant)."""
    lat_lo, lon_lo = offset(south, west)
    lat_hi, lon_hi = offset(south + side, west + side)
    if lat_lo <= origin[0] <= lat_hi and lon_lo <= origin[1] <= lon_hi:
        return 0.0
    above, right = origin[0] > lat_hi, origin[1] > lon_hi
    below, left = origin[0] < lat_lo, origin[1] < lon_lo
    assert (above or below) and (left or right), "a square beside the point, not diagonal"
    corner = (lat_hi if above else lat_lo, lon_hi if right else lon_lo)
    return geodesic(origin, corner)


def _system(slug: str) -> dict[str, Any]:
    now = int(time.time())
    docs = synthetic_scooter_feeds([])
    docs["system_information"]["data"]["system_id"] = slug
    stations = STATION_POSITIONS[slug]
    docs["station_information"] = v23_envelope(
        {
            "stations": [
                {"station_id": s, "name": s, "lat": lat, "lon": lon, "capacity": 10}
                for s, (lat, lon) in stations.items()
            ]
        }
    )
    docs["station_status"] = v23_envelope(
        {
            "stations": [
                {
                    "station_id": s,
                    "num_bikes_available": 3,
                    "num_docks_available": 7,
                    "is_installed": True,
                    "is_renting": True,
                    "is_returning": True,
                    "last_reported": now,
                }
                for s in stations
            ]
        }
    )
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "MultiPolygon", "coordinates": [[_ring(s, w, side)]]},
            "properties": {
                "name": name,
                "rules": [{"ride_allowed": True, "ride_through_allowed": True}],
            },
        }
        for name, s, w, side in ZONE_SQUARES[slug]
    ]
    docs["geofencing_zones"] = v23_envelope(
        {"geofencing_zones": {"type": "FeatureCollection", "features": features}}
    )
    for doc in docs.values():
        doc["last_updated"] = now
    return docs


def expected_stations(origin: tuple[float, float], *, insider: bool, area: str) -> list[str]:
    """Station ids in the order an answer must have: (distance, id)."""
    ranked = []
    for slug in (PUBLIC, POOL) if insider else (PUBLIC,):
        for sid, position in STATION_POSITIONS[slug].items():
            distance = geodesic(origin, position)
            if (area == "within" and in_box(position)) or (
                area == "near" and distance <= NEAR["radiusMeters"]
            ):
                ranked.append((round(distance, 3), f"{slug}:{sid}"))
    return [sid for _, sid in sorted(ranked)]


def expected_zones(origin: tuple[float, float], *, insider: bool) -> dict[str, float]:
    """Zone id -> distance, for the zones reaching into the box (ids: provider:zone-<index>)."""
    out = {}
    for slug in (PUBLIC, POOL) if insider else (PUBLIC,):
        for index, (_, south, west, side) in enumerate(ZONE_SQUARES[slug]):
            if south > HALF_SIDE_M or west > HALF_SIDE_M:
                continue  # far-away: does not touch the box
            out[f"{slug}:zone-{index}"] = _zone_distance(origin, south, west, side)
    return out


async def make_private(api: httpx.AsyncClient, runtime: Runtime, provider: str) -> str:
    """Makes ``provider`` the private fleet of a new organisation; returns its owner's token."""
    owner, _ = await sign_up(api)
    org = (await gql(api, CREATE_ORG, {"name": "Pool owners"}, owner))["data"][
        "createOrganisation"
    ]["id"]
    made = await gql(api, PRIVATE, {"id": provider, "org": org}, await staff_token(runtime))
    assert "errors" not in made, made
    return owner


@pytest.fixture
async def owner(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> str:
    """Both systems synced, POOL private to an organisation; its owner's token."""
    server, base_url = feed_server
    for slug in (PUBLIC, POOL):
        await add_provider(runtime, slug, serve_documents(server, base_url, slug, _system(slug)))
        report = await runtime.sync.sync(slug)
        assert report.ok, report.error
    return await make_private(api, runtime, POOL)


@pytest.mark.parametrize("area", ["within", "near"])
async def test_private_stations_ahead_in_order_do_not_make_a_page_short(
    api: httpx.AsyncClient, owner: str, area: str
) -> None:
    variables: dict[str, Any] = {"within": BOX} if area == "within" else {"near": NEAR}
    origin = BOX_CENTRE if area == "within" else CENTRE
    outsider = expected_stations(origin, insider=False, area=area)
    insider = expected_stations(origin, insider=True, area=area)
    # The private stations are the nearest: cut after `first` and then filtered, an outsider's
    # page would be empty.
    assert all(s.startswith(POOL) for s in insider[:5])
    assert len(outsider) > 4

    for token, expected in ((None, outsider), (owner, insider)):
        page = (await gql(api, STATIONS, {**variables, "first": 4}, token))["data"]["stations"]
        assert [s["id"] for s in page] == expected[:4]
        every = (await gql(api, STATIONS, {**variables, "first": 200}, token))["data"]["stations"]
        assert [s["id"] for s in every] == expected
        for station in every:
            position = (station["lat"], station["lon"])
            assert station["distanceMeters"] == pytest.approx(
                geodesic(origin, position), abs=TOLERANCE_M
            )
    # The twins share a spot: the id decides.
    assert outsider.index(f"{PUBLIC}:twin-a") + 1 == outsider.index(f"{PUBLIC}:twin-b")


async def test_private_zones_ahead_in_order_do_not_make_a_page_short(
    api: httpx.AsyncClient, owner: str
) -> None:
    outsider = expected_zones(BOX_CENTRE, insider=False)
    insider = expected_zones(BOX_CENTRE, insider=True)
    # Several zones hold the centre (distance 0): the id orders them; POOL's sort first.
    assert sorted(z for z, d in insider.items() if d == 0)[:2] == [
        f"{POOL}:zone-0",
        f"{POOL}:zone-1",
    ]

    for token, expected in ((None, outsider), (owner, insider)):
        ranked = sorted(expected, key=lambda z: (round(expected[z], 3), z))
        page = (await gql(api, ZONES, {"within": BOX, "first": 3}, token))["data"][
            "geofencingZones"
        ]
        assert [z["id"] for z in page] == ranked[:3]
        every = (await gql(api, ZONES, {"within": BOX, "first": 200}, token))["data"][
            "geofencingZones"
        ]
        assert [z["id"] for z in every] == ranked
        for zone in every:
            # PostGIS measures to the polygon's great-circle edges, the test to its corner.
            assert zone["distanceMeters"] == pytest.approx(expected[zone["id"]], abs=0.01)


async def test_zones_by_provider_alone_keep_feed_order_without_distances(
    api: httpx.AsyncClient, owner: str
) -> None:
    query = "query($p: [ID!]) { geofencingZones(providers: $p) { id order distanceMeters } }"
    zones = (await gql(api, query, {"p": [PUBLIC]}))["data"]["geofencingZones"]
    assert [z["order"] for z in zones] == list(range(len(ZONE_SQUARES[PUBLIC])))
    assert all(z["distanceMeters"] is None for z in zones)
    # Listed by provider, the private fleet's zones are its organisation's alone.
    assert len((await gql(api, query, {"p": [POOL]}, owner))["data"]["geofencingZones"]) == 2
    # To anyone else it is an unknown provider, as one that does not exist is
    # (tests/graphql/test_visibility_rule.py checks every field for that).
    refused = await gql(api, query, {"p": [POOL]})
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["UNKNOWN_PROVIDER"]


async def test_compiled_execution_answers_stations_and_zones_as_graphql_core(
    runtime: Runtime, owner: str
) -> None:
    query = (
        "query($b: WithinInput) { stations(within: $b, first: 6) { id distanceMeters "
        "numVehiclesAvailable provider { id } } geofencingZones(within: $b, first: 6) "
        "{ id order distanceMeters rules { rideEndAllowed } provider { id } } }"
    )
    generic = await _execute(runtime, False, query, {"b": BOX})
    compiled = await _execute(runtime, True, query, {"b": BOX})
    assert generic["errors"] == []
    assert generic["data"]["stations"] and generic["data"]["geofencingZones"]
    assert compiled == generic
