"""The TOMP operator simulator: its GBFS 2.3 feeds (official schemas, our own GBFS adapter),
its TOMP state machine and header checks, its control path, and running as its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft7Validator
from shapely.geometry import Point, shape

from adapters.base import FetchContext
from adapters.booking import BookingContext, OperatorBookingState, ReservationRequest
from adapters.gbfs import GbfsAdapter
from adapters.gbfs.parse import parse_snapshot
from adapters.http import FeedCache
from adapters.tomp import TompBookingOperator
from providers.simulators.feed_server import serve_in_background
from providers.simulators.tomp_fleet import GBFS_FEEDS, FleetName
from providers.simulators.tomp_server import TompSimulator
from tests.conftest import require_conformance
from tests.processes import free_port, kill_group, wait_for

HEADERS = {"Api": "TOMP", "Api-Version": "1.6.1", "maas-id": "sim-test", "Accept-Language": "en"}
ZONE_NAME = "Harbour no-parking zone"


async def _serve(sim: TompSimulator) -> AsyncIterator[tuple[TompSimulator, httpx.AsyncClient]]:
    async with (
        serve_in_background(sim.app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=HEADERS, timeout=5.0) as client,
    ):
        yield sim, client


@pytest.fixture
async def scooters() -> AsyncIterator[tuple[TompSimulator, httpx.AsyncClient]]:
    async for pair in _serve(TompSimulator(fleet="scooter", seed=3, vehicles=8)):
        yield pair


async def _offer(client: httpx.AsyncClient, vehicle_id: str, lat: float, lon: float) -> str:
    planning = await client.post(
        "/planning/offers",
        json={"from": {"coordinates": {"lat": lat, "lng": lon}}, "useAssets": [vehicle_id]},
    )
    assert planning.status_code == 201, planning.text
    (option,) = planning.json()["options"]
    return str(option["id"])


async def _confirmed(sim: TompSimulator, client: httpx.AsyncClient, index: int = 0) -> str:
    vehicle = sim.vehicles[index]
    offer_id = await _offer(client, vehicle.vehicle_id, vehicle.lat, vehicle.lon)
    assert (await client.post("/bookings", json={"id": offer_id})).status_code == 201
    commit = await client.post(f"/bookings/{offer_id}/events", json={"operation": "COMMIT"})
    assert commit.json()["state"] == "CONFIRMED"
    return offer_id


# -- GBFS -------------------------------------------------------------------------------------


def _schema_errors(feed: str, document: Any) -> list[str]:
    path = require_conformance() / "gbfs" / "schemas" / "v2.3" / f"{feed}.json"
    schema = json.loads(path.read_text())
    validator = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
    return [
        f"{feed}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


@pytest.mark.parametrize("fleet", ["car", "scooter"])
async def test_published_gbfs_feeds_follow_the_v2_3_schemas(fleet: FleetName) -> None:
    async for sim, client in _serve(TompSimulator(fleet=fleet, seed=5, vehicles=10)):
        reserved = await _confirmed(sim, client)
        discovery = (await client.get("/gbfs/gbfs.json")).json()
        errors = _schema_errors("gbfs", discovery)
        listed = {feed["name"]: feed["url"] for feed in discovery["data"]["en"]["feeds"]}
        assert set(listed) == set(GBFS_FEEDS)
        documents = {}
        for name, url in listed.items():
            response = await client.get(url)
            assert response.status_code == 200
            documents[name] = response.json()
            errors += _schema_errors(name, documents[name])
        assert errors == []
        bikes = documents["free_bike_status"]["data"]["bikes"]
        assert len(bikes) == 10
        held = sim.state.bookings[reserved].vehicle_id
        assert [b["bike_id"] for b in bikes if b["is_reserved"]] == [held]


async def test_our_gbfs_adapter_reads_the_simulator_without_findings(
    scooters: tuple[TompSimulator, httpx.AsyncClient],
) -> None:
    sim, client = scooters
    adapter = GbfsAdapter.from_config(
        {"discovery_url": f"{str(client.base_url).rstrip('/')}/gbfs/gbfs.json"}
    )
    async with httpx.AsyncClient(timeout=5.0) as http:
        snapshot = await adapter.fetch_snapshot(FetchContext(http=http, cache=FeedCache()))
    assert snapshot.findings == []
    assert snapshot.version == "2.3"
    assert sorted(v.external_id for v in snapshot.vehicles) == sorted(
        v.vehicle_id for v in sim.vehicles
    )
    (plan,) = snapshot.pricing_plans
    assert (plan.currency, plan.price_minor) == ("EUR", 100)
    (zone,) = snapshot.zones
    assert zone.name == ZONE_NAME
    (rule,) = zone.rules
    assert (rule.ride_start_allowed, rule.ride_end_allowed, rule.ride_through_allowed) == (
        False,
        False,
        True,
    )
    # The simulator never parks a vehicle inside its no-parking zone.
    polygon = shape(zone.geometry)
    assert not any(polygon.contains(Point(v.lon, v.lat)) for v in snapshot.vehicles)
    # The pure parser agrees on the documents as served.
    documents = {
        name: (await client.get(f"/gbfs/{name}.json")).json() for name in ("gbfs", *GBFS_FEEDS)
    }
    assert parse_snapshot(documents).findings == []


async def test_a_vehicle_in_use_leaves_free_bike_status_and_returns_where_it_ended(
    scooters: tuple[TompSimulator, httpx.AsyncClient],
) -> None:
    sim, client = scooters
    booking_id = await _confirmed(sim, client)
    booking = (await client.get(f"/bookings/{booking_id}")).json()
    leg_id = booking["legs"][0]["id"]
    vehicle_id = booking["legs"][0]["asset"]["id"]
    event = {"time": "2025-06-01T10:00:00Z", "event": "SET_IN_USE"}
    assert (await client.post(f"/legs/{leg_id}/events", json=event)).status_code == 200

    async def bikes() -> dict[str, Any]:
        document = (await client.get("/gbfs/free_bike_status.json")).json()
        return {b["bike_id"]: b for b in document["data"]["bikes"]}

    assert vehicle_id not in await bikes()  # GBFS 2.3: no vehicle of an active rental
    sim.list_vehicles_in_use = True
    assert (await bikes())[vehicle_id]["is_reserved"] is True

    finish = {
        "time": "2025-06-01T10:10:00Z",
        "event": "FINISH",
        "userLocation": {"coordinates": {"lat": 52.38, "lng": 4.91}},
    }
    finished = await client.post(f"/legs/{leg_id}/events", json=finish)
    assert finished.json()["state"] == "FINISHED"
    assert finished.json()["pricing"]["estimated"] is False
    after = (await bikes())[vehicle_id]
    assert (after["lat"], after["lon"], after["is_reserved"]) == (52.38, 4.91, False)


def test_the_fleet_is_a_function_of_the_seed() -> None:
    def positions(seed: int) -> list[tuple[str, float, float]]:
        sim = TompSimulator(fleet="car", seed=seed, vehicles=5)
        return [(v.vehicle_id, v.lat, v.lon) for v in sim.vehicles]

    assert positions(11) == positions(11)
    assert positions(11) != positions(12)


# -- TOMP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", sorted(HEADERS))
async def test_a_request_without_a_tomp_header_is_a_400_with_an_error_body(
    scooters: tuple[TompSimulator, httpx.AsyncClient], missing: str
) -> None:
    sim, _ = scooters
    headers = {k: v for k, v in HEADERS.items() if k != missing}
    async with serve_in_background(sim.app) as base_url, httpx.AsyncClient() as client:
        response = await client.get(f"{base_url}/bookings/anything", headers=headers)
    assert response.status_code == 400
    assert response.json()["errorcode"] == 3001
    assert missing in response.json()["detail"]


async def test_an_unsupported_api_version_is_refused(
    scooters: tuple[TompSimulator, httpx.AsyncClient],
) -> None:
    _, client = scooters
    response = await client.post("/planning/offers", json={}, headers={"Api-Version": "2.0.0"})
    assert (response.status_code, response.json()["errorcode"]) == (400, 2008)


async def test_duplicate_create_is_409_without_body_and_illegal_commit_is_403_3004(
    scooters: tuple[TompSimulator, httpx.AsyncClient],
) -> None:
    sim, client = scooters
    booking_id = await _confirmed(sim, client)
    duplicate = await client.post("/bookings", json={"id": booking_id})
    assert (duplicate.status_code, duplicate.content) == (409, b"")
    again = await client.post(f"/bookings/{booking_id}/events", json={"operation": "COMMIT"})
    assert again.status_code == 403
    assert again.json()["errorcode"] == 3004
    assert again.json()["title"] == "Operation COMMIT is illegal in current status."


async def test_pending_and_reserved_bookings_expire_and_free_the_vehicle(
    scooters: tuple[TompSimulator, httpx.AsyncClient],
) -> None:
    sim, client = scooters
    pending_vehicle = sim.vehicles[1]
    pending_id = await _offer(
        client, pending_vehicle.vehicle_id, pending_vehicle.lat, pending_vehicle.lon
    )
    assert (await client.post("/bookings", json={"id": pending_id})).status_code == 201
    reserved_id = await _confirmed(sim, client, index=2)

    sim.advance(301)  # past the 300 s of PENDING, not the 900 s of a reservation
    assert (await client.get(f"/bookings/{pending_id}")).json()["state"] == "EXPIRED"
    assert (await client.get(f"/bookings/{reserved_id}")).json()["state"] == "CONFIRMED"
    late = await client.post(f"/bookings/{pending_id}/events", json={"operation": "COMMIT"})
    assert (late.status_code, late.json()["errorcode"]) == (403, 3004)

    sim.advance(900)
    assert (await client.get(f"/bookings/{reserved_id}")).json()["state"] == "EXPIRED"
    document = (await client.get("/gbfs/free_bike_status.json")).json()
    assert not any(b["is_reserved"] for b in document["data"]["bikes"])


async def test_meta_describes_the_implemented_endpoints(
    scooters: tuple[TompSimulator, httpx.AsyncClient],
) -> None:
    _, client = scooters
    assert (await client.get("/operator/ping")).status_code == 200
    (implementation,) = (await client.get("/operator/meta")).json()
    assert implementation["version"] == "1.6.1"
    events = {
        e["eventType"] for e in implementation["endpoints"] if e["path"] == "/legs/{id}/events"
    }
    assert events == {"SET_IN_USE", "PAUSE", "FINISH", "CANCEL"}


# -- control path -----------------------------------------------------------------------------


async def test_the_control_path_injects_faults_and_shows_the_journal(
    scooters: tuple[TompSimulator, httpx.AsyncClient],
) -> None:
    sim, client = scooters
    fault = {"route": "POST /planning/offers", "mode": "error", "status": 503, "times": 2}
    assert (await client.post("/_sim/faults", json=fault)).status_code == 204
    vehicle = sim.vehicles[0]
    body = {"from": {"coordinates": {"lat": vehicle.lat, "lng": vehicle.lon}}}
    statuses = [(await client.post("/planning/offers", json=body)).status_code for _ in range(3)]
    assert statuses == [503, 503, 201]
    bad = await client.post("/_sim/faults", json={"route": "POST /nowhere", "mode": "hang"})
    assert bad.status_code == 400

    journal = (await client.get("/_sim/journal")).json()
    assert [(e["route"], e["status"]) for e in journal] == [
        ("POST /planning/offers", 503),
        ("POST /planning/offers", 503),
        ("POST /planning/offers", 201),
    ]
    assert journal[0]["request_body"] == body
    assert journal[0]["request_headers"]["maas-id"] == "sim-test"
    clock = await client.post("/_sim/clock", json={"advance_seconds": 60})
    assert clock.json()["now"] >= sim.now() - 1
    assert (await client.get("/_sim/bookings")).json() == []


# -- as its own process -----------------------------------------------------------------------


def _start_simulator(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m providers.simulators.tomp_server ARGS`` in its own process group."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "providers.simulators.tomp_server", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def test_the_simulator_runs_as_its_own_process(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "tomp-sim.log"
    base_url = f"http://127.0.0.1:{port}"
    args = ["--port", str(port), "--fleet", "car", "--seed", "4", "--vehicles", "3"]
    proc = _start_simulator(args, log)
    try:
        async with httpx.AsyncClient(timeout=3.0) as http:

            async def up() -> bool:
                try:
                    ping = await http.get(f"{base_url}/operator/ping", headers=HEADERS)
                except httpx.TransportError:
                    return False
                return ping.status_code == 200

            await wait_for(up, 20, "the TOMP simulator to answer", [log])
            feed = (await http.get(f"{base_url}/gbfs/free_bike_status.json")).json()
            vehicle = feed["data"]["bikes"][0]
            operator = TompBookingOperator.from_config({"base_url": base_url})
            ctx = BookingContext(http=http)
            request = ReservationRequest(
                idempotency_key="k",
                vehicle_external_id=vehicle["bike_id"],
                lat=vehicle["lat"],
                lon=vehicle["lon"],
            )
            offer = await operator.prepare(ctx, request)
            booking = await operator.reserve(ctx, offer, request)
            assert booking.state is OperatorBookingState.CONFIRMED
            # A compensating cancel, as the aggregator sends when its own side fails.
            cancelled = await operator.cancel(ctx, booking, idempotency_key="k")
            assert cancelled.state is OperatorBookingState.CANCELLED

            journal = (await http.get(f"{base_url}/_sim/journal")).json()
            cancels = [
                e
                for e in journal
                if e["route"] == "POST /bookings/{id}/events"
                and e["request_body"] == {"operation": "CANCEL"}
            ]
            assert [(e["path"], e["status"]) for e in cancels] == [
                (f"/bookings/{booking.reference}/events", 200)
            ]
            states = (await http.get(f"{base_url}/_sim/bookings")).json()
            assert [(b["id"], b["state"]) for b in states] == [(booking.reference, "CANCELLED")]
    finally:
        kill_group(proc)
