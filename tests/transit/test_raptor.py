"""RAPTOR against a brute-force earliest-arrival search on small random networks.

The brute force knows nothing of patterns, binary search or the no-overtaking order: it
enumerates every trip on every date of the feed, computes each service day's start from
GTFS's definition (noon minus 12 h, local), and relaxes, level by level (level k: k transit
legs), the earliest arrival at each (stop, reached by vehicle or not), by riding every trip
instance from every stop it can board at to every later stop it can alight at. Earliest
arrival dominates at a fixed (stop, legs, how) because a rider may wait, so this is exact.
The networks have what a real feed has and the algorithm must survive: trips past 24:00,
overtaking trips of one route, zero-duration hops, stops served twice by a trip, no-pickup /
no-drop-off stops, a footpath set that is not transitively closed, several services, dates
across a daylight-saving change, realtime delays and cancellations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.transit.raptor import JourneyPlanner, planner_for
from app.transit.raptor_journey import AccessLeg, EgressLeg, Journey, TransitLeg, WalkLeg
from app.transit.timetable import (
    AgencyRow,
    CalendarDateRow,
    CalendarRow,
    FootpathRow,
    RouteRow,
    StopRow,
    StopTimeRow,
    Timetable,
    TimetableRows,
    TripRow,
    build_timetable,
)

ZONE = "Europe/Berlin"
FIRST_DAY = date(2026, 3, 26)  # the clocks go forward on 2026-03-29
LAST_DAY = date(2026, 4, 1)
INF = 1 << 62


@dataclass
class Network:
    """The rows a random network was built from: what the brute force reads."""

    stops: list[str]
    trips: dict[str, tuple[str, list[tuple[str, int, int, bool, bool]]]]
    # trip -> (service, [(stop, arrival, departure, pickup, drop_off)])
    services: dict[str, set[date]]
    footpaths: dict[str, list[tuple[str, int]]]
    timetable: Timetable


def random_network(rng: random.Random) -> Network:
    n_stops = rng.randint(4, 10)
    stops = [f"s{i}" for i in range(n_stops)]
    services = {
        "daily": {FIRST_DAY + timedelta(days=i) for i in range(7)},
        "some": {
            d for d in (FIRST_DAY + timedelta(days=i) for i in range(7)) if rng.random() < 0.5
        },
    }
    trips: dict[str, tuple[str, list[tuple[str, int, int, bool, bool]]]] = {}
    route_rows: list[RouteRow] = []
    trip_rows: list[TripRow] = []
    time_rows: list[StopTimeRow] = []
    for r in range(rng.randint(1, 5)):
        route = f"r{r}"
        route_rows.append(RouteRow(route, "a", route, None, 3))
        length = rng.randint(2, min(6, n_stops + 1))
        sequence = rng.sample(stops, min(length, n_stops))
        if rng.random() < 0.15 and len(sequence) >= 3:
            sequence.append(sequence[0])  # a loop: the first stop served again
        pickup = [rng.random() > 0.1 for _ in sequence]
        drop_off = [rng.random() > 0.1 for _ in sequence]
        for t in range(rng.randint(1, 6)):
            trip = f"{route}t{t}"
            service = rng.choice(["daily", "daily", "some"])
            clock = rng.choice([rng.randint(0, 30 * 3600), rng.randint(7 * 3600, 9 * 3600)])
            visits = []
            for i, stop in enumerate(sequence):
                if i:
                    clock += rng.choice([0, rng.randint(60, 900), rng.randint(60, 2400)])
                arrival = clock
                clock += rng.choice([0, 0, rng.randint(0, 120)])
                visits.append((stop, arrival, clock, pickup[i], drop_off[i]))
            trips[trip] = (service, visits)
            trip_rows.append(TripRow(trip, route, service))
            time_rows.extend(
                StopTimeRow(
                    trip, i + 1, s, a, d, pickup_type=0 if p else 1, drop_off_type=0 if o else 1
                )
                for i, (s, a, d, p, o) in enumerate(visits)
            )
    footpaths: dict[str, list[tuple[str, int]]] = {}
    for _ in range(rng.randint(0, 2 * n_stops)):
        a, b = rng.sample(stops, 2)
        if all(q != b for q, _ in footpaths.get(a, [])):
            footpaths.setdefault(a, []).append((b, rng.randint(30, 900)))
    calendar_dates = [
        CalendarDateRow(s, FIRST_DAY + timedelta(days=i), added=True)
        for s, days in services.items()
        for i in range(7)
        if FIRST_DAY + timedelta(days=i) in days
    ]
    timetable = build_timetable(
        TimetableRows(
            agencies=[AgencyRow("a", "A", ZONE)],
            stops=[StopRow(s, s, 52.5, 13.4) for s in stops],
            routes=route_rows,
            trips=trip_rows,
            stop_times=time_rows,
            calendars=[],
            calendar_dates=calendar_dates,
            footpaths=[FootpathRow(a, b, w) for a, ws in footpaths.items() for b, w in ws],
        ),
        feed="test",
        version="1",
    )
    return Network(stops, trips, services, footpaths, timetable)


def day_start(day: date) -> int:
    noon = datetime.combine(day, time(12), tzinfo=ZoneInfo(ZONE))
    return int(noon.timestamp()) - 12 * 3600


def brute_force(
    net: Network,
    access: dict[str, int],
    egress: dict[str, int],
    limit: int,
    max_legs: int,
    realtime: dict[tuple[str, date], list[tuple[int, int]] | None],
) -> list[int]:
    """Earliest arrival at the destination with at most k transit legs, k = 0..max_legs."""
    # Every trip instance of the feed: (absolute stop times, pickup, drop-off).
    instances = []
    for trip, (service, visits) in net.trips.items():
        for day in net.services[service]:
            off = day_start(day)
            times = [(a, d) for _, a, d, _, _ in visits]
            if (trip, day) in realtime:
                override = realtime[(trip, day)]
                if override is None:
                    continue
                times = override
            instances.append(
                [
                    (s, a + off, d + off, p, o)
                    for (s, _, _, p, o), (a, d) in zip(visits, times, strict=True)
                ]
            )
    # level[(stop, by_vehicle)] = earliest arrival with exactly this many legs.
    level: dict[tuple[str, bool], int] = {}
    for stop, t in access.items():
        if t <= limit:
            level[(stop, True)] = min(t, level.get((stop, True), INF))

    def walk(lv: dict[tuple[str, bool], int]) -> None:
        for (stop, by_vehicle), t in list(lv.items()):
            if by_vehicle:
                for q, w in net.footpaths.get(stop, []):
                    if t + w <= limit and t + w < lv.get((q, False), INF):
                        lv[(q, False)] = t + w

    def at_destination(lv: dict[tuple[str, bool], int]) -> int:
        return min(
            (t + egress[s] for (s, _), t in lv.items() if s in egress),
            default=INF,
        )

    walk(level)
    best = [at_destination(level)]
    for _ in range(max_legs):
        ready: dict[str, int] = {}
        for (stop, _), t in level.items():
            ready[stop] = min(t, ready.get(stop, INF))
        nxt: dict[tuple[str, bool], int] = {}
        for visits in instances:
            for i, (s, _, dep, pickup, _) in enumerate(visits):
                if not pickup or ready.get(s, INF) > dep:
                    continue
                for s2, arr, _, _, drop_off in visits[i + 1 :]:
                    if drop_off and arr <= limit and arr < nxt.get((s2, True), INF):
                        nxt[(s2, True)] = arr
        walk(nxt)
        # At most k legs: a stop keeps its arrival with fewer legs when that is earlier
        # (the rider may ride fewer legs and board from there in the next level).
        for key, t in level.items():
            if t < nxt.get(key, INF):
                nxt[key] = t
        level = nxt
        best.append(min(best[-1], at_destination(level)))
    return best


def check_journey(
    net: Network,
    j: Journey,
    access: dict[str, int],
    egress: dict[str, int],
    realtime: dict[tuple[str, date], list[tuple[int, int]] | None],
) -> None:
    """Each leg is what the feed offers, and the legs connect in time and place."""
    tt = net.timetable
    name = [s.gtfs_id for s in tt.stops]
    legs = j.legs
    assert isinstance(legs[0], AccessLeg) and isinstance(legs[-1], EgressLeg)
    at_stop, clock = name[legs[0].stop], int(legs[0].arrival.timestamp())
    assert access[at_stop] == clock
    transit = 0
    previous: object = legs[0]
    for leg in legs[1:-1]:
        if isinstance(leg, WalkLeg):
            assert not isinstance(previous, WalkLeg), "two footpaths in a row"
            assert name[leg.from_stop] == at_stop
            assert (name[leg.to_stop], leg.seconds) in net.footpaths[at_stop]
            assert int(leg.departure.timestamp()) == clock
            assert int(leg.arrival.timestamp()) == clock + leg.seconds
            at_stop, clock = name[leg.to_stop], clock + leg.seconds
        else:
            assert isinstance(leg, TransitLeg)
            transit += 1
            trip = tt.trips[leg.trip].gtfs_id
            service, visits = net.trips[trip]
            assert leg.service_date in net.services[service]
            times = [(a, d) for _, a, d, _, _ in visits]
            if (trip, leg.service_date) in realtime:
                override = realtime[(trip, leg.service_date)]
                assert override is not None, "rode a cancelled trip"
                times = override
            assert leg.realtime == ((trip, leg.service_date) in realtime)
            off = day_start(leg.service_date)
            b, a = leg.board_position, leg.alight_position
            assert b < a
            assert visits[b][0] == name[leg.board_stop] == at_stop and visits[b][3]
            assert visits[a][0] == name[leg.alight_stop] and visits[a][4]
            assert int(leg.departure.timestamp()) == times[b][1] + off >= clock
            clock = times[a][0] + off
            assert int(leg.arrival.timestamp()) == clock
            at_stop = name[leg.alight_stop]
        previous = leg
    end = legs[-1]
    assert name[end.stop] == at_stop and egress[at_stop] == end.seconds
    assert int(end.departure.timestamp()) == clock
    assert int(j.arrival.timestamp()) == clock + end.seconds
    assert j.transit_legs == transit


@pytest.mark.parametrize("seed", range(300))
def test_random_networks_match_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    net = random_network(rng)
    tt = net.timetable
    if not tt.trips:
        pytest.skip("no trip survived")
    day = FIRST_DAY + timedelta(days=rng.randint(1, 5))
    depart = day_start(day) + rng.randint(0, 26 * 3600)
    horizon = rng.choice([3600 * 3, 3600 * 6, 3600 * 30])
    access = {
        s: depart + rng.choice([0, rng.randint(0, 1800)])
        for s in rng.sample(net.stops, rng.randint(1, 2))
    }
    egress = {
        s: rng.choice([0, rng.randint(0, 900)]) for s in rng.sample(net.stops, rng.randint(1, 2))
    }
    realtime_rows: dict[tuple[str, date], list[tuple[int, int]] | None] = {}
    for trip, (_, visits) in net.trips.items():
        for d in (day - timedelta(days=1), day):
            roll = rng.random()
            if roll < 0.1:
                realtime_rows[(trip, d)] = None
            elif roll < 0.3:
                delay = 0
                times = []
                for _, a, dep, _, _ in visits:
                    delay = max(0, delay + rng.randint(-120, 900))
                    times.append((a + delay, dep + delay))
                realtime_rows[(trip, d)] = times
    max_transfers = rng.randint(0, 4)
    limit = depart + horizon
    expected = brute_force(net, access, egress, limit, max_transfers + 1, realtime_rows)

    by_trip = {tt.trips[t].gtfs_id: t for t in range(len(tt.trips))}
    realtime = {
        (by_trip[trip], d): None
        if times is None
        else (tuple(a for a, _ in times), tuple(dep for _, dep in times))
        for (trip, d), times in realtime_rows.items()
    }
    zone = ZoneInfo(ZONE)
    found = planner_for(tt).journeys(
        access={tt.stop_by_gtfs_id[s]: datetime.fromtimestamp(t, zone) for s, t in access.items()},
        egress={tt.stop_by_gtfs_id[s]: w for s, w in egress.items()},
        depart_at=datetime.fromtimestamp(depart, UTC),
        max_transfers=max_transfers,
        horizon=timedelta(seconds=horizon),
        realtime=realtime,
        include_walk_only=True,
    )
    for j in found:
        check_journey(net, j, access, egress, realtime_rows)
    # A Pareto set: more legs only for an earlier arrival.
    assert [j.transit_legs for j in found] == sorted({j.transit_legs for j in found})
    arrivals = [int(j.arrival.timestamp()) for j in found]
    assert arrivals == sorted(arrivals, reverse=True) and len(set(arrivals)) == len(arrivals)
    for k in range(max_transfers + 2):
        got = min((int(j.arrival.timestamp()) for j in found if j.transit_legs <= k), default=INF)
        assert got == expected[k], f"with at most {k} legs"


def test_brute_force_finds_something() -> None:
    """The random cases are not vacuous: most of them have a transit journey."""
    with_transit = 0
    for seed in range(100):
        rng = random.Random(seed)
        net = random_network(rng)
        if not net.timetable.trips:
            continue
        day = FIRST_DAY + timedelta(days=2)
        start = day_start(day) + 6 * 3600
        a, b = rng.sample(net.stops, 2)
        best = brute_force(net, {a: start}, {b: 0}, start + 30 * 3600, 3, {})
        with_transit += best[3] < best[0]
    assert with_transit >= 30


def test_simple_line_and_transfer() -> None:
    """A hand-made case: A->B by line 1, B->C by line 2 (a 5-minute connection), and a
    slower direct line 3 A->C; the answer is both, the direct one first."""
    tt = build_timetable(
        TimetableRows(
            agencies=[AgencyRow("a", "A", ZONE)],
            stops=[StopRow(s, s, 52.5, 13.4) for s in "ABC"],
            routes=[RouteRow(r, "a", r, None, 3) for r in ("1", "2", "3")],
            trips=[TripRow("t1", "1", "s"), TripRow("t2", "2", "s"), TripRow("t3", "3", "s")],
            stop_times=[
                StopTimeRow("t1", 1, "A", 8 * 3600, 8 * 3600),
                StopTimeRow("t1", 2, "B", 8 * 3600 + 600, 8 * 3600 + 600),
                StopTimeRow("t2", 1, "B", 8 * 3600 + 900, 8 * 3600 + 900),
                StopTimeRow("t2", 2, "C", 8 * 3600 + 1500, 8 * 3600 + 1500),
                StopTimeRow("t3", 1, "A", 8 * 3600 + 60, 8 * 3600 + 60),
                StopTimeRow("t3", 2, "C", 8 * 3600 + 3000, 8 * 3600 + 3000),
            ],
            calendars=[CalendarRow("s", (True,) * 7, date(2026, 1, 1), date(2026, 12, 31))],
        ),
        feed="t",
        version="1",
    )
    zone = ZoneInfo(ZONE)
    at = datetime(2026, 6, 1, 7, 55, tzinfo=zone)
    found = planner_for(tt).journeys(access={0: at}, egress={2: 120}, depart_at=at)
    assert [(j.transit_legs, j.arrival) for j in found] == [
        (1, datetime(2026, 6, 1, 8, 52, tzinfo=zone)),
        (2, datetime(2026, 6, 1, 8, 27, tzinfo=zone)),
    ]
    two = found[1].legs
    assert [type(leg) for leg in two] == [AccessLeg, TransitLeg, TransitLeg, EgressLeg]
    assert isinstance(two[1], TransitLeg) and tt.trips[two[1].trip].gtfs_id == "t1"
    assert isinstance(two[2], TransitLeg) and two[2].board_stop == 1
    assert two[2].service_date == date(2026, 6, 1)
    # Trips past midnight: at 00:30 the day's 08:00 trips are the next ones (no night trips).
    night = datetime(2026, 6, 2, 0, 30, tzinfo=zone)
    found = planner_for(tt).journeys(
        access={0: night}, egress={2: 0}, depart_at=night, horizon=timedelta(hours=12)
    )
    assert found and found[-1].arrival == datetime(2026, 6, 2, 8, 25, tzinfo=zone)
    # ... and not within a 6-hour horizon.
    assert planner_for(tt).journeys(access={0: night}, egress={2: 0}, depart_at=night) == []
    assert planner_for(tt) is planner_for(tt)
    assert isinstance(planner_for(tt), JourneyPlanner)


def test_invalid_input_is_rejected() -> None:
    rng = random.Random(1)
    tt = random_network(rng).timetable
    at = datetime(2026, 3, 27, 8, 0, tzinfo=ZoneInfo(ZONE))
    with pytest.raises(ValueError):
        planner_for(tt).journeys(access={0: at.replace(tzinfo=None)}, egress={1: 0}, depart_at=at)
    with pytest.raises(ValueError):
        planner_for(tt).journeys(access={0: at}, egress={1: 0}, depart_at=at.replace(tzinfo=None))
    with pytest.raises(ValueError):
        planner_for(tt).journeys(access={len(tt.stops): at}, egress={1: 0}, depart_at=at)
    with pytest.raises(ValueError):
        planner_for(tt).journeys(access={0: at}, egress={1: -1}, depart_at=at)
    with pytest.raises(ValueError):
        planner_for(tt).journeys(access={0: at}, egress={1: 0}, depart_at=at, max_transfers=-1)
    assert planner_for(tt).journeys(access={}, egress={1: 0}, depart_at=at) == []
