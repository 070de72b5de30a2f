"""Private fleets (issue 6) where test_fleet_booking.py does not look: the `vehicleUpdates`
subscription (snapshot and deltas), `tripOptions`, `stations` and GBFS re-publishing; and a
vehicle type's `g_CO2_km` carried from the operator's feed into a usage report's CO2.

Two synthetic GBFS systems near one point: POOL (made private to organisation A) and PUBLIC
(everyone's, the control that shows each check is not vacuous). Outsiders: an anonymous caller,
a rider in no organisation, organisation B's owner and B's API key; insiders: A's RIDER member
and A's API key."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import websockets
from geographiclib.geodesic import Geodesic
from sqlalchemy import text
from websockets.asyncio.client import ClientConnection

from app.main import create_app
from app.platform.db import transaction
from app.runtime import Runtime
from providers.admin import set_booking
from providers.service import register_provider
from providers.simulators.feed_server import FeedServer, serve_in_background
from providers.simulators.tomp_server import TompSimulator
from tests.booking_support import (
    END,
    START,
    SharedClock,
    clock_of,
    gql,
    key,
    sign_up,
    staff_token,
)
from tests.graphql.test_fleet_booking import PRIVATE, Org
from tests.helpers import scooter, serve_documents, synthetic_scooter_feeds, v23_envelope
from tests.trip_support import FREE, Candidate, pareto_front

CENTER = (59.9139, 10.7522)
RADIUS = 1000.0
POOL = "poolfleet"
PUBLIC = "pubfleet"

SUBSCRIPTION = """
subscription Live($near: NearInput) {
  vehicleUpdates(near: $near, first: 100) {
    kind created { id } updated { id lat lon } removed
  }
}"""

TRIP_OPTIONS = """
query T($from: LatLonInput!, $to: LatLonInput!) {
  tripOptions(from: $from, to: $to, first: 50) { vehicle { id } }
}"""

STATIONS = """
query S($lat: Float!, $lon: Float!) {
  stations(near: {lat: $lat, lon: $lon, radiusMeters: 2000}, first: 100) { id }
}"""


def _offset(north_m: float, east_m: float) -> tuple[float, float]:
    lat, lon = CENTER
    return (
        round(lat + north_m / 111_320.0, 6),
        round(lon + east_m / (111_320.0 * math.cos(math.radians(lat))), 6),
    )


def _system(slug: str, vehicles: dict[str, tuple[float, float]], stations: dict[str, Any]) -> Any:
    """A GBFS 2.3 system of free-floating scooters and docking stations, built here."""
    now = int(time.time())
    docs = synthetic_scooter_feeds(
        [scooter(v, lat, lon, last_reported=now) for v, (lat, lon) in vehicles.items()]
    )
    docs["system_information"]["data"]["system_id"] = slug
    docs["system_information"]["data"]["name"] = slug
    docs["station_information"] = v23_envelope(
        {
            "stations": [
                {"station_id": s, "name": f"{slug} {s}", "lat": lat, "lon": lon, "capacity": 10}
                for s, (lat, lon) in stations.items()
            ]
        }
    )
    docs["station_status"] = v23_envelope(
        {
            "stations": [
                {
                    "station_id": s,
                    "num_bikes_available": 0,
                    "num_docks_available": 10,
                    "is_installed": True,
                    "is_renting": True,
                    "is_returning": True,
                    "last_reported": now,
                }
                for s in stations
            ]
        }
    )
    for doc in docs.values():
        doc["last_updated"] = now
    return docs


@dataclass
class World:
    org_a: Org
    org_b: Org
    key_a: str
    key_b: str
    loner: str  # a rider in no organisation
    staff: str
    # feed documents by provider, mutable: the next sync reads the change
    docs: dict[str, dict[str, Any]]
    vehicles: dict[str, dict[str, tuple[float, float]]]  # provider -> external id -> position
    stations: dict[str, dict[str, tuple[float, float]]]

    def ids(self, provider: str) -> set[str]:
        return {f"{provider}:{v}" for v in self.vehicles[provider]}

    def station_ids(self, provider: str) -> set[str]:
        return {f"{provider}:{s}" for s in self.stations[provider]}

    def outsiders(self) -> dict[str, str | None]:
        return {
            "anonymous": None,
            "rider in no organisation": self.loner,
            "owner of B": self.org_b.owner,
            "API key of B": self.key_b,
        }

    def insiders(self) -> dict[str, str]:
        return {"RIDER of A": self.org_a.rider, "API key of A": self.key_a}

    async def make_private(self, api: httpx.AsyncClient) -> None:
        made = await gql(api, PRIVATE, {"id": POOL, "org": self.org_a.id}, self.staff)
        assert "errors" not in made, made

    def move(self, provider: str, vehicle: str, position: tuple[float, float]) -> None:
        """Change (or add) a vehicle in the provider's feed; the next sync picks it up."""
        self.vehicles[provider][vehicle] = position
        later = int(time.time()) + 5
        bikes = self.docs[provider]["free_bike_status"]["data"]["bikes"]
        bikes[:] = [b for b in bikes if b["bike_id"] != vehicle]
        bikes.append(scooter(vehicle, *position, last_reported=later))
        for doc in self.docs[provider].values():
            doc["last_updated"] = later


async def _sync(runtime: Runtime, slug: str) -> None:
    report = await runtime.sync.sync(slug)
    assert report.ok, report.error


@pytest.fixture
async def world(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> World:
    server, base_url = feed_server
    vehicles = {
        POOL: {"p1": _offset(100, 0), "p2": _offset(-150, 80), "p3": _offset(0, -220)},
        PUBLIC: {"u1": _offset(60, 60), "u2": _offset(-90, -40), "u3": _offset(200, 150)},
    }
    stations = {POOL: {"ps1": _offset(30, -30)}, PUBLIC: {"us1": _offset(-30, 30)}}
    docs = {slug: _system(slug, vehicles[slug], stations[slug]) for slug in (POOL, PUBLIC)}
    for slug in (POOL, PUBLIC):
        feeds = serve_documents(server, base_url, slug, docs[slug])
        async with transaction(runtime.sessions) as session:
            await register_provider(
                session, slug=slug, name=slug, adapter="gbfs", config={"feeds": feeds}
            )
        await _sync(runtime, slug)
    org_a = await Org.build(api, "Acme")
    org_b = await Org.build(api, "Bravo")
    loner, _ = await sign_up(api)
    return World(
        org_a=org_a,
        org_b=org_b,
        key_a=await org_a.key(api, "VEHICLES_READ"),
        key_b=await org_b.key(api, "VEHICLES_READ"),
        loner=loner,
        staff=await staff_token(runtime),
        docs=docs,
        vehicles=vehicles,
        stations=stations,
    )


# ---------------------------------------------------------------- vehicleUpdates


class Socket:
    """A graphql-transport-ws client that answers pings and keeps every update it got."""

    def __init__(self, name: str, ws: ClientConnection) -> None:
        self.name = name
        self.ws = ws
        self.updates: list[dict[str, Any]] = []

    async def next_update(self, within_seconds: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within_seconds):
            while True:
                message = json.loads(await self.ws.recv())
                if message["type"] == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                    continue
                assert message["type"] == "next", (self.name, message)
                assert "errors" not in message["payload"], (self.name, message)
                update: dict[str, Any] = message["payload"]["data"]["vehicleUpdates"]
                self.updates.append(update)
                return update

    def seen_ids(self) -> set[str]:
        """Every vehicle id any update sent to this socket named."""
        return {
            i
            for u in self.updates
            for i in [v["id"] for v in u["created"] + u["updated"]] + u["removed"]
        }


@asynccontextmanager
async def subscribed(base_url: str, name: str, token: str | None) -> AsyncIterator[Socket]:
    url = base_url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init: dict[str, Any] = {"type": "connection_init"}
        if token is not None:
            init["payload"] = {"Authorization": f"Bearer {token}"}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        near = {"lat": CENTER[0], "lon": CENTER[1], "radiusMeters": RADIUS}
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIPTION, "variables": {"near": near}},
                }
            )
        )
        yield Socket(name, ws)


async def test_vehicle_updates_show_a_private_fleet_and_its_changes_to_its_organisation_only(
    runtime: Runtime, api: httpx.AsyncClient, world: World
) -> None:
    await world.make_private(api)
    pool, public = world.ids(POOL), world.ids(PUBLIC)
    app = create_app(runtime.settings)
    app.state.runtime = runtime
    async with serve_in_background(app) as base_url, AsyncExitStack() as stack:
        outsiders = [
            await stack.enter_async_context(subscribed(base_url, name, token))
            for name, token in world.outsiders().items()
        ]
        insiders = [
            await stack.enter_async_context(subscribed(base_url, name, token))
            for name, token in world.insiders().items()
        ]
        for socket in outsiders + insiders:
            snapshot = await socket.next_update()
            assert snapshot["kind"] == "SNAPSHOT", (socket.name, snapshot)
            wanted = public | pool if socket in insiders else public
            assert {v["id"] for v in snapshot["created"]} == wanted, socket.name

        # The pool changes first (p1 moves, p4 appears), then the public fleet (u1 moves).
        # Deltas reach every socket in publication order, so an outsider that has heard of
        # u1's move would already have heard of the pool's change, had it leaked.
        world.move(POOL, "p1", _offset(130, 20))
        world.move(POOL, "p4", _offset(-40, 120))
        await _sync(runtime, POOL)
        world.move(PUBLIC, "u1", _offset(70, 90))
        await _sync(runtime, PUBLIC)
        moved_pool, new_pool = f"{POOL}:p1", f"{POOL}:p4"
        moved_public = f"{PUBLIC}:u1"

        for socket in insiders:
            created: set[str] = set()
            updated: dict[str, dict[str, Any]] = {}
            while (
                new_pool not in created or moved_pool not in updated or moved_public not in updated
            ):
                delta = await socket.next_update()
                assert delta["kind"] == "DELTA", (socket.name, delta)
                created |= {v["id"] for v in delta["created"]}
                updated.update({v["id"]: v for v in delta["updated"]})
            position = (updated[moved_pool]["lat"], updated[moved_pool]["lon"])
            assert position == pytest.approx(world.vehicles[POOL]["p1"]), socket.name

        for socket in outsiders:
            updated_ids: set[str] = set()
            while moved_public not in updated_ids:
                update = await socket.next_update()
                updated_ids |= {v["id"] for v in update["updated"]}
                if update["kind"] == "SNAPSHOT":  # a resync must not show the pool either
                    updated_ids |= {v["id"] for v in update["created"]}
            assert socket.seen_ids() & (pool | {new_pool}) == set(), socket.name
            assert moved_public in socket.seen_ids()


# ---------------------------------------------------------------- tripOptions, stations


def _unbeaten(
    runtime: Runtime, world: World, visible: set[str], to: tuple[float, float]
) -> set[str]:
    """Which of the ``visible`` vehicles trip options from CENTER to ``to`` keep: those
    neither walking nor another visible vehicle beats (tests/trip_support.py), worked out from
    the positions and the synthetic plan (1 EUR, 0.25 EUR per started minute)."""
    settings = runtime.settings

    def meters(a: tuple[float, float], b: tuple[float, float]) -> float:
        distance: float = Geodesic.WGS84.Inverse(a[0], a[1], b[0], b[1])["s12"]
        return distance

    candidates = [
        Candidate("walk", meters(CENTER, to) / 1000 / settings.walking_speed_kmh * 60, 0, FREE)
    ]
    for provider, vehicles in world.vehicles.items():
        for vid, at in vehicles.items():
            if f"{provider}:{vid}" not in visible:
                continue
            walk = meters(CENTER, at) / 1000 / settings.walking_speed_kmh * 60
            ride_m = meters(at, to) * settings.detour_factor
            ride = ride_m / 1000 / settings.ride_speed_kmh["scooter_standing"] * 60
            price = ("EUR", 100 + 25 * math.ceil(round(ride, 6)))
            candidates.append(Candidate(f"{provider}:{vid}", walk + ride, 1, price))
    return pareto_front(candidates) - {"walk"}


async def test_trip_options_and_stations_show_a_private_fleet_to_its_organisation_only(
    api: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await world.make_private(api)
    pool, public = world.ids(POOL), world.ids(PUBLIC)
    destination = _offset(1500, -800)
    # Trip options keep only what walking or another option does not beat, among what the
    # viewer may see: a hidden vehicle must not crowd out a visible one either. Towards this
    # destination a pool scooter beats the public ones, which outsiders are offered instead.
    for_insiders = _unbeaten(runtime, world, pool | public, destination)
    for_outsiders = _unbeaten(runtime, world, public, destination)
    assert for_insiders & pool and for_outsiders - for_insiders
    pool_stations, public_stations = world.station_ids(POOL), world.station_ids(PUBLIC)
    trip = {
        "from": {"lat": CENTER[0], "lon": CENTER[1]},
        "to": dict(zip(("lat", "lon"), destination, strict=True)),
    }
    here = {"lat": CENTER[0], "lon": CENTER[1]}
    viewers: dict[str, str | None] = {**world.outsiders(), **world.insiders()}
    for name, token in viewers.items():
        options = await gql(api, TRIP_OPTIONS, trip, token)
        assert "errors" not in options, (name, options)
        offered = {o["vehicle"]["id"] for o in options["data"]["tripOptions"] if o["vehicle"]}
        found = await gql(api, STATIONS, here, token)
        assert "errors" not in found, (name, found)
        listed = {s["id"] for s in found["data"]["stations"]}
        if name in world.insiders():
            assert offered == for_insiders, name
            assert listed == pool_stations | public_stations, name
        else:
            assert offered == for_outsiders, name
            assert listed == public_stations, name


# ---------------------------------------------------------------- GBFS re-publishing


async def test_a_private_fleet_is_not_republished_as_gbfs(
    api: httpx.AsyncClient, world: World
) -> None:
    async def manifest_ids() -> set[str]:
        response = await api.get("/gbfs/v3/manifest.json")
        assert response.status_code == 200, response.text
        return {d["system_id"] for d in response.json()["data"]["datasets"]}

    async def files_of(provider: str) -> dict[str, str]:
        response = await api.get(f"/gbfs/v3/{provider}/gbfs.json")
        assert response.status_code == 200, response.text
        return {f["name"]: f["url"] for f in response.json()["data"]["feeds"]}

    # While public, the pool is published like any provider: the refusals below are the
    # private flag's doing, not a provider that could not be published anyway.
    assert await manifest_ids() >= {POOL, PUBLIC}
    pool_files = await files_of(POOL)
    assert {"vehicle_status", "station_information", "station_status"} <= pool_files.keys()
    for name in pool_files:
        served = await api.get(f"/gbfs/v3/{POOL}/{name}.json")
        assert served.status_code == 200, (name, served.text)
    published = (await api.get(f"/gbfs/v3/{POOL}/vehicle_status.json")).json()
    assert {v["vehicle_id"] for v in published["data"]["vehicles"]} == world.ids(POOL)

    await world.make_private(api)
    listed = await manifest_ids()
    assert POOL not in listed and PUBLIC in listed
    manifest_text = (await api.get("/gbfs/v3/manifest.json")).text
    assert POOL not in manifest_text
    for name in ["gbfs", *pool_files]:
        refused = await api.get(f"/gbfs/v3/{POOL}/{name}.json")
        assert refused.status_code == 404, (name, refused.text)
        assert refused.json()["error"]["code"] == "PROVIDER_NOT_FOUND", name
        assert not any(v in refused.text for v in world.ids(POOL))
    # The public fleet is still published, file by file.
    for name in await files_of(PUBLIC):
        served = await api.get(f"/gbfs/v3/{PUBLIC}/{name}.json")
        assert served.status_code == 200, (name, served.text)


# ---------------------------------------------------------------- CO2 in usage reports


REPORT = """
query R($org: ID, $month: String!) {
  usageReport(organisationId: $org, month: $month, groupBy: PROVIDER) {
    rows { groupKey trips kilometres co2Grams tripsWithoutCo2 }
  }
}"""

BIKES = "free_bike_status"
VEHICLE_TYPE = "query V($id: ID!) { vehicle(id: $id) { vehicleType { id co2GramsPerKm } } }"

RESERVE = """
mutation R($v: ID!, $k: String!, $org: ID) {
  reserveVehicle(vehicleId: $v, idempotencyKey: $k, organisationId: $org) {
    __typename ... on BookingSuccess { booking { id } }
  }
}"""


async def test_a_vehicle_types_g_co2_km_reaches_the_usage_report_of_a_finished_ride(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    grams_per_km = 41.7
    slug = "co2scoot"
    sim = TompSimulator(fleet="scooter", vehicles=4, system_id=f"sim-{slug}")
    server, feeds_url = feed_server
    async with serve_in_background(sim.app) as sim_url:

        def document(feed: str) -> Any:
            doc = sim.gbfs_documents(sim_url)[feed]
            if feed == "vehicle_types":
                for vehicle_type in doc["data"]["vehicle_types"]:
                    vehicle_type["g_CO2_km"] = grams_per_km
            return doc

        feeds = {}
        for feed in ("system_information", "vehicle_types", "system_pricing_plans", BIKES):
            server.add_dynamic(f"/{slug}/{feed}.json", partial(document, feed))
            feeds[feed] = f"{feeds_url}/{slug}/{feed}.json"
        async with transaction(runtime.sessions) as session:
            await register_provider(
                session, slug=slug, name=slug, adapter="gbfs", config={"feeds": feeds}
            )
            await set_booking(session, slug, {"operator": "tomp", "config": {"base_url": sim_url}})
        await _sync(runtime, slug)

        # Ingested into the type's column, and shown on the vehicle.
        async with runtime.sessions() as session:
            stored = (
                await session.execute(
                    text("SELECT co2_grams_per_km FROM vehicle_types WHERE provider_id = :p"),
                    {"p": slug},
                )
            ).scalars()
            assert list(stored) == [pytest.approx(grams_per_km)]
        target = sim.vehicles[0]
        vehicle_id = f"{slug}:{target.vehicle_id}"
        start = (target.lat, target.lon)  # the simulator moves its vehicle when the ride ends
        shown = (await gql(api, VEHICLE_TYPE, {"id": vehicle_id}))["data"]["vehicle"]
        assert shown["vehicleType"]["co2GramsPerKm"] == pytest.approx(grams_per_km)

        org = await Org.build(api, "Acme")
        async with clock_of(runtime, SharedClock(sim)) as clock:
            booked = await gql(
                api, RESERVE, {"v": vehicle_id, "k": key(), "org": org.id}, org.rider
            )
            assert booked["data"]["reserveVehicle"]["__typename"] == "BookingSuccess", booked
            booking_id = booked["data"]["reserveVehicle"]["booking"]["id"]
            started = await gql(api, START, {"bookingId": booking_id, "key": key()}, org.rider)
            assert started["data"]["startTrip"]["__typename"] == "BookingSuccess", started
            clock.advance(9 * 60)
            # 1.3 km south-west of where the vehicle stood, away from the no-parking zone.
            end = Geodesic.WGS84.Direct(*start, 225.0, 1300.0)
            ended = await gql(
                api,
                END,
                {"bookingId": booking_id, "key": key(), "lat": end["lat2"], "lon": end["lon2"]},
                org.rider,
            )
        result = ended["data"]["endTrip"]
        assert result["__typename"] == "BookingSuccess", ended
        booking = result["booking"]
        assert booking["state"] == "FINISHED"
        metres = booking["distanceMeters"]
        # The operator measured the ride from the vehicle's position to the end point.
        travelled = Geodesic.WGS84.Inverse(*start, end["lat2"], end["lon2"])
        assert metres == pytest.approx(travelled["s12"], abs=1.0)

        ended_at = datetime.fromisoformat(booking["endedAt"])
        month = ended_at.astimezone(ZoneInfo("Europe/Amsterdam")).strftime("%Y-%m")
        body = await gql(api, REPORT, {"org": org.id, "month": month}, org.owner)
        assert "errors" not in body, body
        [row] = body["data"]["usageReport"]["rows"]
        expected_grams = int(
            (Decimal(str(metres)) / 1000 * Decimal(str(grams_per_km))).quantize(
                Decimal(1), rounding=ROUND_HALF_UP
            )
        )
        assert expected_grams > 0
        assert row == {
            "groupKey": slug,
            "trips": 1,
            "kilometres": float(round(Decimal(str(metres)) / 1000, 3)),
            "co2Grams": expected_grams,
            "tripsWithoutCo2": 0,
        }
