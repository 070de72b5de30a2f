"""Departures from the real feeds, against an independent reading of the raw GTFS files
(tests/transit/gtfs_reference.py): random stops at random instants across each feed's
service period, and the instants that are hard (around midnight, the daylight-saving days)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.transit.departures import departures
from app.transit.gtfs import timetable_from_zip
from app.transit.timetable import Timetable
from providers.demo.transit import demo_gtfs
from tests.conftest import require_conformance
from tests.transit.gtfs_reference import GtfsReference

FEEDS = {
    # slug: (zip, a day range of the feed's service, days whose clocks change)
    "caltrain": (
        "transit/gtfs/caltrain/ct.zip",
        (date(2023, 9, 23), date(2024, 6, 1)),
        [date(2023, 11, 5), date(2024, 3, 10)],
    ),
    "cairns": (
        "transit/gtfs/cairns-sunbus/cairns_gtfs.zip",
        (date(2014, 5, 26), date(2014, 12, 26)),
        [],  # Queensland keeps standard time all year
    ),
}


def _feed(slug: str) -> tuple[Timetable, GtfsReference, Path]:
    path = require_conformance() / FEEDS[slug][0]
    return timetable_from_zip(path, feed=slug), GtfsReference(path), path


def _instants(slug: str, zone: ZoneInfo, rng: random.Random, n: int) -> list[datetime]:
    (first_day, last_day), dst_days = FEEDS[slug][1], FEEDS[slug][2]
    span = (last_day - first_day).days
    out = []
    for _ in range(n):
        day = first_day + timedelta(days=rng.randrange(span))
        local = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(
            seconds=rng.randrange(86_400)
        )
        out.append(local.astimezone(UTC))
    for day in dst_days:  # every hour of the day the clocks change, and the night before
        start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        out += [start + timedelta(hours=h) for h in range(-3, 24)]
    for _ in range(5):  # just before and after midnight, where trips past 24:00 run
        day = first_day + timedelta(days=rng.randrange(span))
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        out += [midnight - timedelta(minutes=20), midnight + timedelta(minutes=20)]
    return out


@pytest.mark.parametrize("slug", sorted(FEEDS))
def test_departures_match_an_independent_reading_of_the_files(slug: str) -> None:
    timetable, reference, _ = _feed(slug)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    stops = [s for s in timetable.stops if s.location_type in (0, 1)]
    checked = 0
    for instant in _instants(slug, timetable.zone, rng, 40):
        stop = rng.choice(stops)
        got = departures(timetable, stop, after=instant, first=8)
        want = reference.departures(stop.gtfs_id, instant, 8)
        assert [(d.scheduled_time, d.trip.gtfs_id, d.stop.gtfs_id) for d in got] == [
            (w.instant, w.trip_id, w.stop_id) for w in want
        ], f"seed {seed}: {slug} stop {stop.gtfs_id} at {instant.isoformat()}"
        for d in got:
            assert d.expected_time is None and d.delay_seconds is None
        checked += len(got)
    assert checked > 100, f"seed {seed}: only {checked} departures compared"


def test_a_station_answers_for_its_platforms() -> None:
    timetable, reference, _ = _feed("caltrain")
    station = next(s for s in timetable.stops if s.location_type == 1)
    platforms = {s.gtfs_id for s in timetable.stops if s.parent_station == station.gtfs_id}
    assert len(platforms) >= 2
    instant = datetime(2023, 11, 8, 16, 0, tzinfo=UTC)
    got = departures(timetable, station, after=instant, first=10)
    assert {d.stop.gtfs_id for d in got} == platforms  # both directions' platforms
    assert [(d.scheduled_time, d.trip.gtfs_id) for d in got] == [
        (w.instant, w.trip_id) for w in reference.departures(station.gtfs_id, instant, 10)
    ]


def test_frequency_based_trips_match_the_files(tmp_path: Path) -> None:
    """The demo network is written as frequencies.txt templates (exact times, runs past
    midnight): every run's departures, against the reference's own expansion."""
    path = tmp_path / "demo.zip"
    day = date(2026, 3, 29)  # Europe/Berlin's clocks go forward that night
    path.write_bytes(demo_gtfs(day))
    timetable = timetable_from_zip(path, feed="demo")
    reference = GtfsReference(path)
    zone = ZoneInfo("Europe/Berlin")
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    for stop in timetable.stops:
        for hours in (-2, 0, 1, 2, 4, 5, 12, 23, 24, 25):
            instant = start + timedelta(hours=hours, minutes=7)
            got = departures(timetable, stop, after=instant, first=6)
            want = reference.departures(stop.gtfs_id, instant, 6)
            assert [(d.scheduled_time, d.trip.gtfs_id) for d in got] == [
                (w.instant, w.trip_id.split("@")[0]) for w in want
            ], f"{stop.gtfs_id} at {instant.isoformat()}"
