"""`stops`, `stop` and a stop's `departures` over GraphQL, with the real feeds loaded through the
loader into PostGIS: answers checked against an independent reading of the raw files
(tests/transit/gtfs_reference.py) and geodesic distances computed here."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.runtime import Runtime
from app.transit.feeds import TransitFeeds
from geo.distance import geodesic_meters
from tests.transit.gtfs_reference import GtfsReference
from tests.transit.gtfs_support import raw_rows, real_feed

STOP_QUERY = """
query ($id: ID!, $from: DateTime, $first: Int) {
  stop(id: $id) {
    id name lat lon feed
    departures(from: $from, first: $first) {
      scheduledTime expectedTime delaySeconds cancelled headsign platform stopId
      route { id shortName longName color mode }
      trip { id serviceDate }
    }
  }
}"""


async def _gql(api: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await api.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _load(runtime: Runtime, slug: str, zip_name: str) -> None:
    feeds = TransitFeeds(runtime.sessions, runtime.settings)
    await feeds.add(slug, str(real_feed(zip_name)), allow_path=True)
    await feeds.sync(slug)


async def test_departures_over_graphql_match_the_files(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _load(runtime, "caltrain", "caltrain")
    await _load(runtime, "cairns", "cairns")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for slug, zip_name, day in (
        ("caltrain", "caltrain", datetime(2023, 11, 8, tzinfo=UTC)),
        ("cairns", "cairns", datetime(2014, 6, 10, tzinfo=UTC)),
    ):
        reference = GtfsReference(real_feed(zip_name))
        stops = [s for s, r in reference.stops.items() if r.get("location_type") in ("", "0")]
        routes = {r["route_id"]: r for r in raw_rows(real_feed(zip_name), "routes.txt")}
        for _ in range(6):
            stop_id = rng.choice(stops)
            instant = day + timedelta(seconds=rng.randrange(86_400))
            body = await _gql(
                api, STOP_QUERY, id=f"{slug}:{stop_id}", **{"from": instant.isoformat()}, first=5
            )
            assert "errors" not in body, body
            stop = body["data"]["stop"]
            raw = reference.stops[stop_id]
            assert (stop["name"], stop["lat"], stop["lon"], stop["feed"]) == (
                raw["stop_name"],
                float(raw["stop_lat"]),
                float(raw["stop_lon"]),
                slug,
            )
            want = reference.departures(stop_id, instant, 5)
            got = stop["departures"]
            context = f"seed {seed}: {slug}:{stop_id} from {instant.isoformat()}"
            assert [(datetime.fromisoformat(d["scheduledTime"]), d["trip"]["id"]) for d in got] == [
                (w.instant, f"{slug}:{w.trip_id}") for w in want
            ], context
            for d, w in zip(got, want, strict=True):
                # ISO 8601 with the agency's offset at that instant.
                shown = datetime.fromisoformat(d["scheduledTime"])
                assert shown.utcoffset() == w.instant.astimezone(reference.zone).utcoffset()
                route = routes[w.route_id]
                assert d["route"]["id"] == f"{slug}:{w.route_id}"
                assert d["route"]["shortName"] == (route.get("route_short_name") or None)
                assert d["route"]["color"] == (route.get("route_color") or None)
                assert d["route"]["mode"] == {"2": "RAIL", "3": "BUS"}[route["route_type"]]
                assert d["stopId"] == f"{slug}:{w.stop_id}"
                assert (d["expectedTime"], d["delaySeconds"], d["cancelled"]) == (
                    None,
                    None,
                    False,
                )


async def test_stops_near_a_point_nearest_first(runtime: Runtime, api: httpx.AsyncClient) -> None:
    await _load(runtime, "cairns", "cairns")
    rows = raw_rows(real_feed("cairns"), "stops.txt")
    centre = (-16.9237, 145.7710)  # Cairns city centre
    expected = sorted(
        (geodesic_meters(*centre, float(r["stop_lat"]), float(r["stop_lon"])), r["stop_id"])
        for r in rows
    )
    within = [(d, s) for d, s in expected if d <= 600]
    assert len(within) >= 5
    body = await _gql(
        api,
        "query ($lat: Float!, $lon: Float!) { stops(near: {lat: $lat, lon: $lon, "
        "radiusMeters: 600}, first: 100) { id distanceMeters } }",
        lat=centre[0],
        lon=centre[1],
    )
    got = body["data"]["stops"]
    assert [s["id"] for s in got] == [f"cairns:{s}" for _, s in within]
    for s, (d, _) in zip(got, within, strict=True):
        assert abs(s["distanceMeters"] - d) < 0.5


async def test_bad_stop_arguments_get_clear_errors(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _load(runtime, "caltrain", "caltrain")
    missing = await _gql(api, STOP_QUERY, id="caltrain:no-such-stop")
    assert missing["data"]["stop"] is None and "errors" not in missing
    unscoped = await _gql(api, STOP_QUERY, id="70021")
    assert [e["extensions"]["code"] for e in unscoped["errors"]] == ["INVALID_STOP_ID"]
    too_many = await _gql(api, STOP_QUERY, id="caltrain:70021", first=1000)
    assert [e["extensions"]["code"] for e in too_many["errors"]] == ["INVALID_FIRST"]
    no_area = await _gql(api, "{ stops { id } }")
    assert [e["extensions"]["code"] for e in no_area["errors"]] == ["INVALID_AREA"]
