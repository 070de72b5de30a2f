"""What `make run` shows: a `within` search over the demo area answers the vehicles nearest
its centre, so the demo's cars, scooters and bikes all appear on the first page.

Ordered by id (as `within` once was), the first 200 were the alphabetically first operators'
bikes and cars, never a scooter. The demo operators (providers/demo/) are served by their own
feed server with a frozen clock and synced; what to expect is computed from the very documents
served, with geographiclib, never with the code under test.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from geographiclib.geodesic import Geodesic

from app.platform.db import transaction
from app.runtime import Runtime
from providers.demo import (
    BERLIN_BOX,
    CENTRE,
    DEMO_PROVIDERS,
    build_demo_feed_server,
    demo_documents,
)
from providers.service import register_provider
from providers.simulators.feed_server import serve_in_background

QUERY = """
query Demo($box: WithinInput!) {
  vehicles(within: $box, first: 200) { id formFactor distanceMeters vehicleEquipment }
}"""


def _available_vehicles(
    now: float, base_url: str
) -> dict[str, tuple[float, float, str, list[str] | None]]:
    """Every available vehicle of the demo operators at ``now``: id -> (lat, lon, GraphQL
    form factor, GraphQL equipment or None when the feed says none), docked bikes at their
    station's position."""
    out = {}
    for provider in DEMO_PROVIDERS:
        docs = demo_documents(provider.slug, now, base_url)
        types = {
            t["vehicle_type_id"]: t["form_factor"].upper()
            for t in docs["vehicle_types"]["data"]["vehicle_types"]
        }
        stations = {
            s["station_id"]: (s["lat"], s["lon"])
            for s in docs.get("station_information", {"data": {"stations": []}})["data"]["stations"]
        }
        feed = docs.get("vehicle_status") or docs["free_bike_status"]
        records: list[dict[str, Any]] = feed["data"].get("vehicles") or feed["data"]["bikes"]
        for v in records:
            if v["is_reserved"] or v["is_disabled"]:
                continue
            lat, lon = (v["lat"], v["lon"]) if "lat" in v else stations[v["station_id"]]
            vid = v.get("vehicle_id") or v["bike_id"]
            equipment = v.get("vehicle_equipment")
            listed = [e.upper() for e in equipment] if equipment is not None else None
            out[f"{provider.slug}:{vid}"] = (lat, lon, types[v["vehicle_type_id"]], listed)
    return out


async def _synced_demo(runtime: Runtime) -> dict[str, tuple[float, float, str, list[str] | None]]:
    """The demo operators registered and synced from their own feed server at a frozen
    moment; what their feeds served, vehicle by vehicle (:func:`_available_vehicles`)."""
    return _available_vehicles(*await sync_demo(runtime))


async def sync_demo(runtime: Runtime) -> tuple[float, str]:
    """The demo operators registered and synced from their own feed server at a frozen
    moment: that moment, and the server's base URL (what demo_documents needs to give the
    same documents again)."""
    now = time.time()  # frozen: the server and the expectation see the same moment
    base_url = ""
    server = build_demo_feed_server(lambda: base_url, clock=lambda: now)
    async with serve_in_background(server.app) as url:
        base_url = url
        for provider in DEMO_PROVIDERS:
            async with transaction(runtime.sessions) as session:
                await register_provider(
                    session,
                    slug=provider.slug,
                    name=provider.name,
                    adapter="gbfs",
                    config={"discovery_url": base_url + provider.discovery_path},
                )
            report = await runtime.sync.sync(provider.slug)
            assert report.ok, report.error
    return now, base_url


async def test_within_the_demo_area_shows_cars_scooters_and_bikes_nearest_its_centre(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    vehicles = await _synced_demo(runtime)

    box = {
        "minLat": BERLIN_BOX.min_lat,
        "minLon": BERLIN_BOX.min_lon,
        "maxLat": BERLIN_BOX.max_lat,
        "maxLon": BERLIN_BOX.max_lon,
    }
    centre = ((box["minLat"] + box["maxLat"]) / 2, (box["minLon"] + box["maxLon"]) / 2)
    inside = {
        vid: (Geodesic.WGS84.Inverse(*centre, lat, lon)["s12"], form_factor)
        for vid, (lat, lon, form_factor, _) in vehicles.items()
        if box["minLat"] <= lat <= box["maxLat"] and box["minLon"] <= lon <= box["maxLon"]
    }
    assert len(inside) > 200
    # What an order by id gave: the alphabetically first operators only (their count in the
    # area changes as the demo fleet moves, but bikes and cars are always more than 200), no
    # scooter at all.
    assert not any(inside[vid][1].startswith("SCOOTER") for vid in sorted(inside)[:200])
    # The nearest 200; vehicles at one spot (docked bikes) tie, and the id decides.
    ranked = sorted(inside, key=lambda vid: (round(inside[vid][0], 3), vid))
    cut, after_cut = inside[ranked[199]][0], inside[ranked[200]][0]
    assert cut == after_cut or after_cut - cut > 0.002, "a near-tie at the cut: ambiguous"
    expected_form_factors = {inside[vid][1] for vid in ranked[:200]}
    assert {"CAR", "BICYCLE"} <= expected_form_factors
    assert any(f.startswith("SCOOTER") for f in expected_form_factors)

    body = (await api.post("/graphql", json={"query": QUERY, "variables": {"box": box}})).json()

    assert "errors" not in body, body
    answer = body["data"]["vehicles"]
    assert [v["id"] for v in answer] == ranked[:200]
    assert {v["formFactor"] for v in answer} == expected_form_factors
    for v in answer:
        assert v["distanceMeters"] == pytest.approx(inside[v["id"]][0], abs=0.002)
        # What each vehicle has on board, as its operator's feed said (the demo cars list it).
        assert v["vehicleEquipment"] == vehicles[v["id"]][3]
    assert any(v["vehicleEquipment"] for v in answer if v["formFactor"] == "CAR")


async def test_the_equipment_filter_keeps_the_cars_that_have_all_of_it(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    vehicles = await _synced_demo(runtime)
    wanted = ["CHILD_SEAT_A", "WINTER_TIRES"]
    equipped = {vid for vid, v in vehicles.items() if v[3] is not None and set(wanted) <= set(v[3])}
    reported_otherwise = {vid for vid, v in vehicles.items() if v[3] is not None} - equipped
    assert equipped and reported_otherwise  # the demo feeds tell the filter's cases apart
    near = {"lat": CENTRE[0], "lon": CENTRE[1], "radiusMeters": 5000.0}
    query = """query Equipped($near: NearInput!, $equipment: [VehicleEquipment!]) {
      vehicles(near: $near, first: 200, filter: {equipment: $equipment}) { id vehicleEquipment }
    }"""
    answers = {}
    for equipment in (wanted, None):
        body = (
            await api.post(
                "/graphql",
                json={"query": query, "variables": {"near": near, "equipment": equipment}},
            )
        ).json()
        assert "errors" not in body, body
        answers[equipment is None] = body["data"]["vehicles"]
    within = {
        vid
        for vid, (lat, lon, _, _) in vehicles.items()
        if Geodesic.WGS84.Inverse(*CENTRE, lat, lon)["s12"] <= 5000.0
    }
    assert 0 < len(equipped & within) < 200  # all of them fit in one answer
    assert {v["id"] for v in answers[False]} == equipped & within
    assert all(set(wanted) <= set(v["vehicleEquipment"]) for v in answers[False])
    # Without the filter the nearest include vehicles the filter leaves out.
    assert {v["id"] for v in answers[True]} - equipped
