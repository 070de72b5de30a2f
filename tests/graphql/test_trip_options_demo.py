"""The README's `tripOptions` example on the demo operators (1.4 km across the demo city).

Ranked by price alone, its top ten were one operator's docked bikes, each a 13-minute walk for
a 3-minute ride, and no scooter or car. Now walking the whole way is an option, nothing that
arrives no earlier than walking is offered, and the answer spans operators and modes. What to
expect is worked out here from the very documents served (geographiclib, the settings' speeds),
never with the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from geographiclib.geodesic import Geodesic

from app.runtime import Runtime
from providers.demo import DEMO_PROVIDERS, demo_documents
from tests.graphql.test_demo_search import sync_demo
from tests.trip_support import FREE, Candidate, pareto_front

# The README's example.
ORIGIN = (52.5265, 13.4230)
DESTINATION = (52.5200, 13.4050)

QUERY = """
query Trip($first: Int!, $rank: TripOptionRanking!) {
  tripOptions(from: {lat: 52.5265, lon: 13.4230}, to: {lat: 52.5200, lon: 13.4050},
              first: $first, rankBy: $rank) {
    mode vehicle { id formFactor provider { id } } arrivalTime price { amountMinor currency }
  }
}"""


def _meters(a: tuple[float, float], b: tuple[float, float]) -> float:
    distance: float = Geodesic.WGS84.Inverse(a[0], a[1], b[0], b[1])["s12"]
    return distance


def _minutes_riding(runtime: Runtime, now: float, base_url: str) -> dict[str, tuple[str, float]]:
    """Every available demo vehicle within the trip options' radius of ORIGIN: id ->
    (provider, minutes from now to DESTINATION: walk there, ride on)."""
    settings = runtime.settings
    out = {}
    for provider in DEMO_PROVIDERS:
        docs = demo_documents(provider.slug, now, base_url)
        form_factors = {
            t["vehicle_type_id"]: t["form_factor"]
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
            at = (v["lat"], v["lon"]) if "lat" in v else stations[v["station_id"]]
            walk = _meters(ORIGIN, at)
            if walk > settings.trip_options_radius_meters:
                continue
            ride = _meters(at, DESTINATION) * settings.detour_factor
            speed = settings.ride_speed_kmh[form_factors[v["vehicle_type_id"]]]
            minutes = walk / 1000 / settings.walking_speed_kmh * 60 + ride / 1000 / speed * 60
            out[f"{provider.slug}:{v.get('vehicle_id') or v['bike_id']}"] = (provider.slug, minutes)
    return out


async def test_the_readme_example_offers_walking_and_what_beats_it_across_operators(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    now, base_url = await sync_demo(runtime)
    asked_at = datetime.now(UTC)
    nearby = _minutes_riding(runtime, now, base_url)
    walk_minutes = _meters(ORIGIN, DESTINATION) / 1000 / runtime.settings.walking_speed_kmh * 60
    assert 1390 < _meters(ORIGIN, DESTINATION) < 1430  # the README's 1.4 km
    faster = {vid for vid, (_, minutes) in nearby.items() if minutes < walk_minutes - 0.05}
    slower = {vid for vid, (_, minutes) in nearby.items() if minutes > walk_minutes + 0.05}
    # The demo has what the rule is about: vehicles slower than walking, and faster ones of
    # more than one operator.
    assert slower and len({nearby[vid][0] for vid in faster}) > 1

    answers = {}
    for first, rank in ((10, "TOTAL_PRICE"), (200, "TOTAL_PRICE"), (10, "ARRIVAL_TIME")):
        body = (
            await api.post(
                "/graphql", json={"query": QUERY, "variables": {"first": first, "rank": rank}}
            )
        ).json()
        assert "errors" not in body, body
        answers[first, rank] = body["data"]["tripOptions"]
    answered_by = datetime.now(UTC)

    for options in answers.values():
        walks = [o for o in options if o["mode"] == "WALK"]
        assert len(walks) == 1 and walks[0]["vehicle"] is None
        walk_arrival = datetime.fromisoformat(walks[0]["arrivalTime"])
        expected = asked_at + timedelta(minutes=walk_minutes)
        assert expected - timedelta(seconds=1) <= walk_arrival
        assert walk_arrival <= expected + (answered_by - asked_at) + timedelta(seconds=1)
        rides = [o for o in options if o["mode"] == "VEHICLE"]
        # Nothing that arrives no earlier than walking (and costs more, as every ride does).
        assert all(datetime.fromisoformat(o["arrivalTime"]) < walk_arrival for o in rides)
        assert {o["vehicle"]["id"] for o in rides} <= faster
        # More than one operator, and more than one kind of vehicle.
        assert len({o["vehicle"]["provider"]["id"] for o in rides}) > 1
        assert len({o["vehicle"]["formFactor"] for o in rides}) > 1
        # No option in the answer is beaten by another one of it.
        candidates = [
            Candidate(
                key=o["vehicle"]["id"] if o["vehicle"] else "walk",
                arrival=datetime.fromisoformat(o["arrivalTime"]).timestamp(),
                transfers=0 if o["mode"] == "WALK" else 1,
                price=FREE
                if o["mode"] == "WALK"
                else (o["price"]["currency"], o["price"]["amountMinor"])
                if o["price"]
                else None,
            )
            for o in options
        ]
        assert pareto_front(candidates) == {c.key for c in candidates}

    # The fastest way there is offered first when asked for arrival time.
    fastest = min(faster, key=lambda vid: nearby[vid][1])
    second = sorted(nearby[vid][1] for vid in faster)[1]
    if second - nearby[fastest][1] > 0.05:  # not a near-tie
        assert answers[10, "ARRIVAL_TIME"][0]["vehicle"]["id"] == fastest
    # Ten places, and the everything-answer: each operator in it is in the ten.
    everything = answers[200, "TOTAL_PRICE"]
    top = answers[10, "TOTAL_PRICE"]
    providers = {o["vehicle"]["provider"]["id"] for o in everything if o["vehicle"]}
    assert {o["vehicle"]["provider"]["id"] for o in top if o["vehicle"]} == providers
    assert top[0]["mode"] == "WALK"  # free, so the cheapest
