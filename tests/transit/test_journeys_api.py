"""`journeys` over GraphQL: a shared scooter for the first mile, a train, a walk for the last,
against real PostgreSQL and Redis, a GBFS operator served over HTTP and a GTFS feed loaded by
the loader. What the answer must hold is computed here from the inputs (geopy distances, the
settings' speeds, the plan's prices, the timetable written below), not read from the code."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from geopy.distance import geodesic

from app.booking.offers import verify_offer
from app.runtime import Runtime
from app.transit.feeds import TransitFeeds
from providers.simulators.feed_server import FeedServer
from tests.helpers import add_provider, scooter, serve_documents, synthetic_scooter_feeds
from tests.transit.gtfs_support import make_zip

ZONE = ZoneInfo("Europe/Berlin")
A = (52.5000, 13.4000)  # the line's first stop
B = (52.5000, 13.5000)  # its last, 6.8 km east
ORIGIN = (52.5000, 13.3705)  # 2 km west of A: too far to walk to a stop (1 km)
SCOOTER = (52.5004, 13.3705)  # 45 m from the origin
DESTINATION = (52.5000, 13.5044)  # 300 m east of B
HEADWAY = 600  # a train every 10 minutes, all day, every day
RUN = 480  # A to B in 8 minutes
# synthetic_scooter_feeds' plan: 1 EUR to unlock, 0.25 EUR per started minute.
UNLOCK, PER_MINUTE = 100, 25

QUERY = """
query ($from: LatLonInput!, $to: LatLonInput!) {
  journeys(from: $from, to: $to, first: 10) {
    vehiclesConsidered
    journeys {
      departureTime arrivalTime boardings modes transitFaresIncluded
      price { amountMinor currency }
      legs {
        mode departureTime arrivalTime
        from { lat lon stopId } to { lat lon stopId }
        vehicle { id } offer { id price { amountMinor currency } rideMinutes }
        route { id shortName mode } trip { id }
      }
    }
  }
}"""


def _gtfs(today: date) -> bytes:
    start, end = today - timedelta(days=2), today + timedelta(days=2)
    trips = ["route_id,service_id,trip_id"]
    times = ["trip_id,arrival_time,departure_time,stop_id,stop_sequence"]
    for k in range(86_400 // HEADWAY):
        t = k * HEADWAY
        trips.append(f"L1,daily,t{k}")
        times.append(f"t{k},{_hms(t)},{_hms(t)},A,1")
        times.append(f"t{k},{_hms(t + RUN)},{_hms(t + RUN)},B,2")
    return make_zip(
        {
            "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
            "X,Express,https://x.example,Europe/Berlin\n",
            "stops.txt": f"stop_id,stop_name,stop_lat,stop_lon\nA,Aplatz,{A[0]},{A[1]}\n"
            f"B,Bhof,{B[0]},{B[1]}\n",
            "routes.txt": "route_id,agency_id,route_short_name,route_type\nL1,X,S1,2\n",
            "trips.txt": "\n".join(trips) + "\n",
            "stop_times.txt": "\n".join(times) + "\n",
            "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,"
            f"sunday,start_date,end_date\ndaily,1,1,1,1,1,1,1,{start:%Y%m%d},{end:%Y%m%d}\n",
        }
    )


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _next_train(at: datetime) -> datetime:
    """The first departure from A at or after `at`: every HEADWAY seconds from local
    midnight (a day without a clock change in the test's window, or one with: the service
    day starts at noon minus 12 h, which the test computes the same way)."""
    day = at.astimezone(ZONE).date() - timedelta(days=1)
    while True:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=ZONE).astimezone(UTC)
        start = noon - timedelta(hours=12)
        k = max(0, math.ceil((at - start).total_seconds() / HEADWAY))
        if k < 86_400 // HEADWAY:
            return start + timedelta(seconds=k * HEADWAY)
        day += timedelta(days=1)


def _minutes(metres: float, kmh: float) -> float:
    return metres / 1000 / kmh * 60


@pytest.fixture
async def world(runtime: Runtime, feed_server: tuple[FeedServer, str], tmp_path: Path) -> None:
    server, base_url = feed_server
    documents = synthetic_scooter_feeds([scooter("s1", *SCOOTER)])
    await add_provider(runtime, "syn", serve_documents(server, base_url, "syn", documents))
    assert (await runtime.sync.sync("syn")).ok
    path = tmp_path / "express.zip"
    path.write_bytes(_gtfs(datetime.now(UTC).date()))
    feeds = TransitFeeds(runtime.sessions, runtime.settings)
    await feeds.add("express", str(path), allow_path=True)
    await feeds.sync("express")


def _dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def price(j: dict[str, Any]) -> int:
        return j["price"]["amountMinor"] if j["price"] else 0

    at_least = (
        a["arrivalTime"] <= b["arrivalTime"]
        and a["boardings"] <= b["boardings"]
        and price(a) <= price(b)
    )
    better = (
        a["arrivalTime"] < b["arrivalTime"]
        or a["boardings"] < b["boardings"]
        or price(a) < price(b)
    )
    return at_least and better


async def test_a_scooter_to_the_train_then_a_walk(
    runtime: Runtime, api: httpx.AsyncClient, world: None
) -> None:
    response = await api.post(
        "/graphql",
        json={
            "query": QUERY,
            "variables": {
                "from": {"lat": ORIGIN[0], "lon": ORIGIN[1]},
                "to": {"lat": DESTINATION[0], "lon": DESTINATION[1]},
            },
        },
    )
    body = response.json()
    assert "errors" not in body, body
    plan = body["data"]["journeys"]
    assert plan["vehiclesConsidered"] is True
    found = plan["journeys"]
    s = runtime.settings
    depart = datetime.fromisoformat(found[0]["departureTime"])
    assert all(datetime.fromisoformat(j["departureTime"]) == depart for j in found)

    # Walking the whole way is there, at the walking speed.
    walk = [j for j in found if j["modes"] == ["walk"]]
    assert len(walk) == 1
    walk_minutes = _minutes(geodesic(ORIGIN, DESTINATION).meters, s.walking_speed_kmh)
    assert abs(
        datetime.fromisoformat(walk[0]["arrivalTime"]) - (depart + timedelta(minutes=walk_minutes))
    ) < timedelta(seconds=1)

    # Scooter to A, the next train, walk from B: arrival and price worked out here.
    to_scooter = _minutes(geodesic(ORIGIN, SCOOTER).meters, s.walking_speed_kmh)
    ride_m = geodesic(SCOOTER, A).meters * s.detour_factor
    ride_minutes = _minutes(ride_m, s.ride_speed_kmh["scooter_standing"])
    # Parked and on the platform after the handover allowance.
    handover = s.transit_vehicle_handover_minutes
    assert handover > 0
    at_a = depart + timedelta(minutes=to_scooter + ride_minutes + handover)
    train = _next_train(at_a)
    from_b = _minutes(geodesic(B, DESTINATION).meters, s.walking_speed_kmh)
    expected_arrival = train + timedelta(seconds=RUN) + timedelta(minutes=from_b)
    combined = [j for j in found if j["modes"] == ["scooter_standing", "transit"]]
    assert len(combined) == 1, [j["modes"] for j in found]
    j = combined[0]
    assert [leg["mode"] for leg in j["legs"]] == ["WALK", "VEHICLE", "TRANSIT", "WALK"]
    assert abs(datetime.fromisoformat(j["arrivalTime"]) - expected_arrival) < timedelta(seconds=1)
    ride, transit = j["legs"][1], j["legs"][2]
    assert ride["vehicle"]["id"] == "syn:s1"
    assert ride["to"]["stopId"] == "express:A"
    price = UNLOCK + PER_MINUTE * math.ceil(round(ride_minutes, 6))
    assert ride["offer"]["price"] == {"amountMinor": price, "currency": "EUR"}
    assert j["price"] == {"amountMinor": price, "currency": "EUR"}
    assert j["transitFaresIncluded"] is False and j["boardings"] == 2
    offer = verify_offer(s, ride["offer"]["id"], datetime.now(UTC))
    assert offer.vehicle_id == "syn:s1" and offer.price is not None
    assert offer.price.total_minor == price
    assert datetime.fromisoformat(transit["departureTime"]) == train
    assert datetime.fromisoformat(transit["arrivalTime"]) == train + timedelta(seconds=RUN)
    assert (transit["from"]["stopId"], transit["to"]["stopId"]) == ("express:A", "express:B")
    assert transit["route"] == {"id": "express:L1", "shortName": "S1", "mode": "RAIL"}
    # Legs follow each other: none starts before the previous one ended.
    for leg, following in pairwise(j["legs"]):
        assert leg["arrivalTime"] <= following["departureTime"]

    # Nothing returned is beaten by another answer.
    for a in found:
        for b in found:
            assert a is b or not _dominates(a, b), (a["modes"], b["modes"])


async def test_journeys_refuse_what_they_cannot_answer(
    runtime: Runtime, api: httpx.AsyncClient, world: None
) -> None:
    async def codes(query: str) -> list[str]:
        body = (await api.post("/graphql", json={"query": query})).json()
        return [e["extensions"]["code"] for e in body.get("errors", [])]

    base = "from: {lat: 52.5, lon: 13.37}, to: {lat: 52.5, lon: 13.5}"
    both = 'departAt: "2026-01-01T10:00:00Z", arriveBy: "2026-01-01T11:00:00Z"'
    assert await codes(f"{{ journeys({base}, {both}) {{ vehiclesConsidered }} }}") == [
        "INVALID_TIME"
    ]
    assert await codes(
        "{ journeys(from: {lat: 95, lon: 13.37}, to: {lat: 52.5, lon: 13.5}) "
        "{ vehiclesConsidered } }"
    ) == ["INVALID_COORDINATES"]
    assert await codes(f"{{ journeys({base}, first: 0) {{ vehiclesConsidered }} }}") == [
        "INVALID_FIRST"
    ]


NEAR_A = (52.5000, 13.3960)  # 270 m west of A: the station is walked to


async def test_arrive_by_leaves_as_late_as_the_last_train_allows(
    runtime: Runtime, api: httpx.AsyncClient, world: None
) -> None:
    """Arriving by noon tomorrow (no shared vehicles: that is not soon): the latest train
    whose arrival plus the walk from B makes it, and walking the whole way leaving just in
    time, both worked out here."""
    s = runtime.settings
    tomorrow = datetime.now(UTC).astimezone(ZONE).date() + timedelta(days=1)
    deadline = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 12, 3, tzinfo=ZONE)
    response = await api.post(
        "/graphql",
        json={
            "query": QUERY.replace("first: 10", "arriveBy: $by, first: 10").replace(
                "$to: LatLonInput!", "$to: LatLonInput!, $by: DateTime"
            ),
            "variables": {
                "from": {"lat": NEAR_A[0], "lon": NEAR_A[1]},
                "to": {"lat": DESTINATION[0], "lon": DESTINATION[1]},
                "by": deadline.isoformat(),
            },
        },
    )
    body = response.json()
    assert "errors" not in body, body
    plan = body["data"]["journeys"]
    assert plan["vehiclesConsidered"] is False
    found = plan["journeys"]
    assert all(datetime.fromisoformat(j["arrivalTime"]) <= deadline for j in found)

    to_a = _minutes(geodesic(NEAR_A, A).meters, s.walking_speed_kmh)
    from_b = _minutes(geodesic(B, DESTINATION).meters, s.walking_speed_kmh)
    # The latest train with arrival + the walk from B no later than the deadline: trains
    # leave A every HEADWAY from the service day's start (noon minus 12 h, local).
    noon = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 12, tzinfo=ZONE)
    day_start = noon.astimezone(UTC) - timedelta(hours=12)
    latest = max(
        day_start + timedelta(seconds=k * HEADWAY)
        for k in range(86_400 // HEADWAY)
        if day_start + timedelta(seconds=k * HEADWAY + RUN, minutes=from_b) <= deadline
    )
    (by_train,) = [j for j in found if j["modes"] == ["transit"]]
    assert [leg["mode"] for leg in by_train["legs"]] == ["WALK", "TRANSIT", "WALK"]
    train = by_train["legs"][1]
    assert datetime.fromisoformat(train["departureTime"]) == latest
    leave = latest - timedelta(minutes=to_a)
    assert abs(datetime.fromisoformat(by_train["departureTime"]) - leave) < timedelta(seconds=1)
    assert abs(
        datetime.fromisoformat(by_train["arrivalTime"])
        - (latest + timedelta(seconds=RUN, minutes=from_b))
    ) < timedelta(seconds=1)

    (walk,) = [j for j in found if j["modes"] == ["walk"]]
    walking = _minutes(geodesic(NEAR_A, DESTINATION).meters, s.walking_speed_kmh)
    assert datetime.fromisoformat(walk["arrivalTime"]) == deadline
    assert abs(
        datetime.fromisoformat(walk["departureTime"]) - (deadline - timedelta(minutes=walking))
    ) < timedelta(seconds=1)
    # Latest departure first.
    assert found == sorted(found, key=lambda j: j["departureTime"], reverse=True)
