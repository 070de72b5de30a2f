"""RAPTOR on the real feeds against the independent Connection Scan (reference_csa.py): the
earliest arrival for random origin/destination stop pairs at random weekday times must be the
same to the second, and every journey RAPTOR returns must be what the raw GTFS files offer."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest

from app.transit.gtfs import timetable_from_zip
from app.transit.raptor import planner_for
from app.transit.raptor_journey import AccessLeg, EgressLeg, Journey, TransitLeg, WalkLeg
from app.transit.timetable import Timetable
from tests.conftest import require_conformance
from tests.transit.reference_csa import ConnectionScan

FEEDS = {
    # slug: (zip under conformance/transit/gtfs, first and last weekday to draw from, pairs)
    "cairns": ("cairns-sunbus/cairns_gtfs.zip", date(2014, 6, 2), date(2014, 12, 19), 300),
    "caltrain": ("caltrain/ct.zip", date(2023, 10, 2), date(2024, 5, 31), 200),
}
HORIZON = timedelta(hours=8)


@cache
def feed(slug: str) -> tuple[Timetable, ConnectionScan]:
    path: Path = require_conformance() / "transit" / "gtfs" / FEEDS[slug][0]
    tt = timetable_from_zip(path, feed=slug)
    footpaths = {
        tt.stops[a].gtfs_id: [(tt.stops[b].gtfs_id, w) for b, w in walks]
        for a, walks in tt.footpaths.items()
    }
    return tt, ConnectionScan(path, footpaths)


def queries(tt: Timetable, slug: str, seed: int) -> list[tuple[int, int, datetime]]:
    """(origin stop, destination stop, departure instant): stops some trip serves, weekdays."""
    _, first, last, count = FEEDS[slug]
    rng = random.Random(seed)
    served = sorted({s for t in tt.trips for s in t.stops})
    weekdays = [
        first + timedelta(days=i)
        for i in range((last - first).days + 1)
        if (first + timedelta(days=i)).weekday() < 5
    ]
    out = []
    for _ in range(count):
        a, b = rng.sample(served, 2)
        day = rng.choice(weekdays)
        start = tt.service_day_start(day) + timedelta(seconds=rng.randint(4 * 3600, 23 * 3600))
        out.append((a, b, start))
    return out


def check_against_gtfs(
    tt: Timetable, ref: ConnectionScan, j: Journey, origin: int, destination: int
) -> None:
    """The legs are the raw files' trips at their times, and they connect."""
    legs = j.legs
    assert isinstance(legs[0], AccessLeg) and legs[0].stop == origin
    assert isinstance(legs[-1], EgressLeg) and legs[-1].stop == destination
    where, clock = origin, legs[0].arrival
    for leg in legs[1:-1]:
        if isinstance(leg, WalkLeg):
            walks = ref.footpaths[tt.stops[where].gtfs_id]
            assert leg.from_stop == where and leg.departure == clock
            assert (tt.stops[leg.to_stop].gtfs_id, leg.seconds) in walks
            where, clock = leg.to_stop, leg.arrival
            assert leg.arrival - leg.departure == timedelta(seconds=leg.seconds)
            continue
        assert isinstance(leg, TransitLeg)
        service, visits = ref.trips[tt.trips[leg.trip].gtfs_id]
        assert leg.service_date in ref.runs[service]
        off = ref.day_start(leg.service_date)
        board, alight = visits[leg.board_position], visits[leg.alight_position]
        assert board[0] == tt.stops[where].gtfs_id == tt.stops[leg.board_stop].gtfs_id
        assert alight[0] == tt.stops[leg.alight_stop].gtfs_id
        assert board[3] and alight[4] and leg.board_position < leg.alight_position
        assert int(leg.departure.timestamp()) == off + board[2] >= int(clock.timestamp())
        assert int(leg.arrival.timestamp()) == off + alight[1]
        where, clock = leg.alight_stop, leg.arrival
    assert where == destination and legs[-1].departure == clock == j.arrival


@pytest.mark.parametrize("slug", sorted(FEEDS))
def test_earliest_arrivals_match_connection_scan(slug: str) -> None:
    tt, ref = feed(slug)
    planner = planner_for(tt)
    compared = reachable = multi_leg = 0
    for origin, destination, start in queries(tt, slug, seed=20261207):
        epoch = int(start.timestamp())
        expected = ref.earliest_arrival(
            {tt.stops[origin].gtfs_id: epoch},
            {tt.stops[destination].gtfs_id: 0},
            epoch,
            epoch + int(HORIZON.total_seconds()),
        )
        found = planner.journeys(
            access={origin: start},
            egress={destination: 0},
            depart_at=start,
            max_transfers=30,  # enough: the earliest arrival with unlimited transfers
            horizon=HORIZON,
            include_walk_only=True,
        )
        got = int(found[-1].arrival.timestamp()) if found else None
        assert got == expected, (
            f"{tt.stops[origin].gtfs_id} -> {tt.stops[destination].gtfs_id} at "
            f"{start.astimezone(UTC).isoformat()}: raptor {got}, reference {expected}"
        )
        for j in found:
            check_against_gtfs(tt, ref, j, origin, destination)
        compared += 1
        reachable += got is not None
        multi_leg += bool(found) and found[-1].transit_legs >= 2
    # The comparison is not vacuous: most pairs are connected, many need a transfer.
    assert compared == FEEDS[slug][3]
    assert reachable >= compared // 2
    assert multi_leg >= compared // 10


def test_default_transfer_bound_keeps_the_answers_on_cairns() -> None:
    """With the default bound (4 transfers) the fastest journey of most pairs is kept, and each
    journey of the Pareto set is valid; fewer legs never arrive earlier."""
    tt, ref = feed("cairns")
    planner = planner_for(tt)
    same = 0
    sample = queries(tt, "cairns", seed=7)[:100]
    for origin, destination, start in sample:
        epoch = int(start.timestamp())
        expected = ref.earliest_arrival(
            {tt.stops[origin].gtfs_id: epoch},
            {tt.stops[destination].gtfs_id: 0},
            epoch,
            epoch + int(HORIZON.total_seconds()),
        )
        found = planner.journeys(
            access={origin: start}, egress={destination: 0}, depart_at=start, horizon=HORIZON
        )
        for j in found:
            check_against_gtfs(tt, ref, j, origin, destination)
            assert expected is not None and int(j.arrival.timestamp()) >= expected
        legs = [j.transit_legs for j in found]
        assert legs == sorted(set(legs)) and all(1 <= k <= 5 for k in legs)
        same += bool(found) and int(found[-1].arrival.timestamp()) == expected
    assert same >= len(sample) // 2
