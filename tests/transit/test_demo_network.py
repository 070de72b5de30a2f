"""The demo network `mobility demo` (and so `make run`) loads beside the demo operators:
`stops(near:)` and a journey with transit answer right away. Expected stops are worked out
here from the network's own description (providers/demo/transit.py's lines) with geopy."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import httpx
from geopy.distance import geodesic

from app.commands.demo import load_demo_transit
from app.runtime import Runtime
from providers.demo.transit import LINES, SLUG
from providers.demo.transit import TIMEZONE as ZONE
from tests.graphql.test_demo_search import sync_demo

HUB = (52.5219, 13.4132)


async def test_the_demo_network_answers_stops_and_journeys(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await sync_demo(runtime)
    assert await load_demo_transit(runtime.sessions, runtime.settings) == 0
    # A second run the same day finds it unchanged (make run is idempotent).
    assert await load_demo_transit(runtime.sessions, runtime.settings) == 0

    stops = {stop_id: (lat, lon) for line in LINES for stop_id, _, lat, lon in line.stops}
    within = sorted(
        (geodesic(HUB, at).meters, stop_id)
        for stop_id, at in stops.items()
        if geodesic(HUB, at).meters <= 1_000
    )
    body = (
        await api.post(
            "/graphql",
            json={
                "query": "{ stops(near: {lat: 52.5219, lon: 13.4132, radiusMeters: 1000}) "
                "{ id departures(first: 3) { scheduledTime route { shortName } } } }"
            },
        )
    ).json()
    assert "errors" not in body, body
    found = body["data"]["stops"]
    assert [s["id"] for s in found] == [f"{SLUG}:{stop_id}" for _, stop_id in within]
    # Every line runs from 05:00 to past midnight: the hub always has a next departure.
    assert len(found[0]["departures"]) == 3

    # At noon in Berlin, when the lines run (at night walking beats waiting for the first
    # train, and rightly only walking is offered).
    noon = datetime.combine(date.today() + timedelta(days=1), time(12), tzinfo=ZoneInfo(ZONE))
    body = (
        await api.post(
            "/graphql",
            json={
                "query": "query ($at: DateTime) { journeys(from: {lat: 52.5265, lon: 13.4230}, "
                "to: {lat: 52.5140, lon: 13.4810}, departAt: $at, first: 10) { journeys { "
                "departureTime arrivalTime modes legs { mode departureTime arrivalTime "
                "route { shortName } } } } }",
                "variables": {"at": noon.isoformat()},
            },
        )
    ).json()
    assert "errors" not in body, body
    journeys = body["data"]["journeys"]["journeys"]
    assert ["walk"] in [j["modes"] for j in journeys]
    transit = [j for j in journeys if "transit" in j["modes"]]
    assert transit, [j["modes"] for j in journeys]
    lines = {line.short_name for line in LINES}
    for j in transit:
        legs = j["legs"]
        assert {leg["route"]["shortName"] for leg in legs if leg["mode"] == "TRANSIT"} <= lines
        for a, b in pairwise(legs):
            assert datetime.fromisoformat(a["arrivalTime"]) <= datetime.fromisoformat(
                b["departureTime"]
            )
