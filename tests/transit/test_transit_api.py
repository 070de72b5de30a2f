"""`stops`, `stop` and a stop's `departures` over GraphQL, with the real feeds loaded through the
loader into PostGIS: answers checked against an independent reading of the raw files
(tests/transit/gtfs_reference.py) and geodesic distances computed here."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from google.transit import gtfs_realtime_pb2 as pb

from app.runtime import Runtime
from app.transit.feeds import TransitFeeds
from geo.distance import geodesic_meters
from providers.simulators.feed_server import FeedServer
from tests.transit.caltrain import caltrain_dir
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
    ancient = await _gql(api, STOP_QUERY, id="caltrain:70021", **{"from": "0001-01-01T00:00:00Z"})
    assert [e["extensions"]["code"] for e in ancient["errors"]] == ["INVALID_TIME"]
    # Twenty departure boards in one operation, then no more: the 21st is refused.
    boards = " ".join(
        f'b{i}: stop(id: "caltrain:70021") {{ departures(first: 1) {{ trip {{ id }} }} }}'
        for i in range(21)
    )
    many = await _gql(api, f"{{ {boards} }}")
    assert [e["extensions"]["code"] for e in many["errors"]] == ["TOO_MANY_DEPARTURE_BOARDS"]
    assert sum(1 for v in many["data"].values() if v is not None) == 20


async def test_caltrains_live_data_moves_the_affected_departures(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    """The real trip updates, polled over HTTP by the realtime poller: each departure they
    predict shows the predicted instant, and its delay against the timetable's own time."""
    server, base = feed_server
    body = (caltrain_dir() / "ct-trip-updates.pb").read_bytes()
    server.set_body("/ct/trip-updates.pb", body, content_type="application/x-protobuf")
    feeds = TransitFeeds(runtime.sessions, runtime.settings)
    await feeds.add(
        "caltrain",
        str(real_feed("caltrain")),
        allow_path=True,
        realtime={"trip_updates": base + "/ct/trip-updates.pb"},
    )
    await feeds.sync("caltrain")
    report = await runtime.transit_realtime.poll("caltrain")
    assert report.ok, report

    # Expected from the protobuf (decoded here) and the raw stop_times.txt.
    message = pb.FeedMessage()
    message.ParseFromString(body)
    zone = ZoneInfo("America/Los_Angeles")
    times = {
        (r["trip_id"], int(r["stop_sequence"])): r
        for r in raw_rows(real_feed("caltrain"), "stop_times.txt")
    }
    checked = moved = 0
    for entity in message.entity:
        update = entity.trip_update
        day = datetime.strptime(update.trip.start_date, "%Y%m%d").date()
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=zone).astimezone(UTC)
        day_start = noon - timedelta(hours=12)
        for stu in update.stop_time_update:
            if not stu.HasField("departure") or not stu.departure.time:
                continue
            row = times[(update.trip.trip_id, stu.stop_sequence)]
            h, m, s = (int(x) for x in row["departure_time"].split(":"))
            scheduled = day_start + timedelta(seconds=h * 3600 + m * 60 + s)
            expected = datetime.fromtimestamp(stu.departure.time, UTC)
            found = await _gql(
                api,
                STOP_QUERY,
                id=f"caltrain:{stu.stop_id}",
                **{"from": (min(scheduled, expected) - timedelta(minutes=1)).isoformat()},
                first=20,
            )
            (departure,) = [
                d
                for d in found["data"]["stop"]["departures"]
                if d["trip"]["id"] == f"caltrain:{update.trip.trip_id}"
                and d["trip"]["serviceDate"] == day.isoformat()
            ]
            assert datetime.fromisoformat(departure["scheduledTime"]) == scheduled
            assert datetime.fromisoformat(departure["expectedTime"]) == expected
            delay = round((expected - scheduled).total_seconds())
            assert departure["delaySeconds"] == delay
            assert departure["cancelled"] is False
            checked += 1
            moved += delay != 0
    assert checked >= 20 and moved >= 5, (checked, moved)


def _alerts_feed(now: int) -> bytes:
    message = pb.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    message.header.timestamp = now

    def alert(entity_id: str, start: int, end: int, **informed: str) -> None:
        entity = message.entity.add()
        entity.id = entity_id
        entity.alert.active_period.add(start=start, end=end)
        entity.alert.informed_entity.add(**informed)
        text = entity.alert.header_text.translation.add()
        text.text, text.language = f"header of {entity_id}", "en"
        entity.alert.effect = pb.Alert.Effect.Value("DETOUR")

    alert("on-route", now - 3600, now + 7200, route_id="L1")
    alert("at-stop", now - 3600, now + 7200, stop_id="70021")
    alert("at-station", now - 3600, now + 7200, stop_id="22nd_street")  # 70021's parent
    alert("over", now - 7200, now - 3600, route_id="L1")  # ended an hour ago
    return bytes(message.SerializeToString())


async def test_alerts_that_apply_to_a_stop_and_its_departures(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base = feed_server
    at = datetime(2023, 11, 8, 16, 0, tzinfo=UTC)
    server.set_body(
        "/ct/alerts.pb", _alerts_feed(int(at.timestamp())), content_type="application/x-protobuf"
    )
    feeds = TransitFeeds(runtime.sessions, runtime.settings)
    await feeds.add(
        "caltrain",
        str(real_feed("caltrain")),
        allow_path=True,
        realtime={"service_alerts": base + "/ct/alerts.pb"},
    )
    await feeds.sync("caltrain")
    assert (await runtime.transit_realtime.poll("caltrain")).ok
    body = await _gql(
        api,
        """query ($from: DateTime) { stop(id: "caltrain:70021") {
             alerts(at: $from, language: "en") { id header effect }
             departures(from: $from, first: 10) {
               scheduledTime route { id } alerts { id } } } }""",
        **{"from": (at + timedelta(minutes=30)).isoformat()},
    )
    assert "errors" not in body, body
    stop = body["data"]["stop"]
    assert sorted(stop["alerts"], key=lambda a: a["id"]) == [
        {"id": f"at-{where}", "header": f"header of at-{where}", "effect": "DETOUR"}
        for where in ("station", "stop")
    ]
    routes = {d["route"]["id"] for d in stop["departures"]}
    assert "caltrain:L1" in routes and len(routes) > 1  # both kinds of departure are checked
    until = at + timedelta(hours=2)  # both alerts in force end then
    assert any(datetime.fromisoformat(d["scheduledTime"]) < until for d in stop["departures"])
    for d in stop["departures"]:
        expected = set()
        if datetime.fromisoformat(d["scheduledTime"]) < until:
            expected = {"at-stop", "at-station"}
            expected |= {"on-route"} if d["route"]["id"] == "caltrain:L1" else set()
        assert {a["id"] for a in d["alerts"]} == expected, d
