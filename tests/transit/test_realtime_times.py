"""Live data applied to the timetable: Caltrain's real trip updates against its raw
stop_times.txt, and the spec's propagation rules on small timetables built here."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.transit import gtfs_realtime_pb2 as pb

from app.transit.realtime import AlertContext, RealtimeSnapshot, alerts_for
from app.transit.realtime_parse import parse_feed
from app.transit.realtime_times import (
    RealtimeView,
    expected_times,
    match_report,
)
from app.transit.timetable import (
    AgencyRow,
    CalendarRow,
    RouteRow,
    StopRow,
    StopTimeRow,
    Timetable,
    TimetableRows,
    TripRow,
    build_timetable,
)
from tests.transit.caltrain import caltrain_dir, caltrain_timetable, raw_table, scheduled_stop_times


def _day_start(day: date, zone: ZoneInfo) -> int:
    """GTFS's reference, computed here on its own: noon local time less twelve hours."""
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=zone).timestamp()) - 12 * 3600


def _raw_trip_updates() -> pb.FeedMessage:
    message = pb.FeedMessage()
    message.ParseFromString((caltrain_dir() / "ct-trip-updates.pb").read_bytes())
    return message


def _expected_from_raw(tu: pb.TripUpdate, day_start: int) -> list[tuple[int, int, int | None]]:
    """(expected arrival, expected departure, departure delay or None) per stop of the trip,
    from the raw stop times and the raw update, by the spec's rules: absolute times are
    delays against the scheduled instant; a stop without an update takes the last delay
    before it; nothing before the first update; a missing arrival takes the upstream delay
    (or the departure's), a missing departure the arrival's."""
    by_sequence = {stu.stop_sequence: stu for stu in tu.stop_time_update}
    delay: int | None = None
    out = []
    for sequence, _stop, arrival, departure in scheduled_stop_times(tu.trip.trip_id):
        stu = by_sequence.get(sequence)
        if stu is None:
            out.append((arrival + (delay or 0), departure + (delay or 0), delay))
            continue
        a = stu.arrival.time - (day_start + arrival) if stu.HasField("arrival") else None
        d = stu.departure.time - (day_start + departure) if stu.HasField("departure") else None
        if a is None:
            assert d is not None
            a = min(d if delay is None else delay, departure + d - arrival)
        if d is None:
            d = a
        delay = d
        out.append((arrival + a, departure + d, d))
    return out


def test_caltrain_trip_updates_move_the_affected_stops() -> None:
    timetable = caltrain_timetable()
    raw = _raw_trip_updates()
    snapshot = parse_feed((caltrain_dir() / "ct-trip-updates.pb").read_bytes())
    view = RealtimeView(timetable, snapshot)
    (agency,) = raw_table("agency.txt")
    zone = ZoneInfo(agency["agency_timezone"])

    moved = 0
    for entity in raw.entity:
        tu = entity.trip_update
        sd = tu.trip.start_date
        day = date(int(sd[:4]), int(sd[4:6]), int(sd[6:]))
        day_start = _day_start(day, zone)
        (index,) = timetable.trips_by_gtfs_id[tu.trip.trip_id]
        times = expected_times(timetable, index, day, snapshot)
        assert times is not None, tu.trip.trip_id
        assert view.expected(index, day) == times
        assert not times.cancelled and times.service_date == day
        assert expected_times(timetable, index, day + timedelta(days=1), snapshot) is None

        want = _expected_from_raw(tu, day_start)
        got = [(s.arrival, s.departure, s.departure_delay) for s in times.stops]
        assert got == want, tu.trip.trip_id
        # Where the feed gives an absolute time, that is the expected instant, to the second.
        positions = {
            seq: i for i, (seq, *_rest) in enumerate(scheduled_stop_times(tu.trip.trip_id))
        }
        for stu in tu.stop_time_update:
            stop = times.stops[positions[stu.stop_sequence]]
            if stu.HasField("departure"):
                assert day_start + stop.departure == stu.departure.time
            if stu.HasField("arrival"):
                assert day_start + stop.arrival == stu.arrival.time
        moved += sum(1 for s in times.stops if s.departure_delay)

    assert moved > 50  # the file really moves departures (counted here: not a fixed answer)
    report = match_report(timetable, snapshot)
    assert report.matched == 19 and report.unknown_trip_ids == () and report.unmatched_stops == 0


def test_caltrain_service_day_inferred_without_start_date() -> None:
    timetable = caltrain_timetable()
    raw = _raw_trip_updates()
    for entity in raw.entity:
        entity.trip_update.trip.ClearField("start_date")
    snapshot = parse_feed(raw.SerializeToString())
    for entity in _raw_trip_updates().entity:
        sd = entity.trip_update.trip.start_date
        given = date(int(sd[:4]), int(sd[4:6]), int(sd[6:]))
        (index,) = timetable.trips_by_gtfs_id[entity.trip_update.trip.trip_id]
        # The feed was taken on the given day's evening: that is the day the trip runs nearest.
        assert expected_times(timetable, index, given, snapshot) is not None
        assert expected_times(timetable, index, given - timedelta(days=1), snapshot) is None


# ---------------------------------------------------------------------------- small timetables

ZONE = "Europe/Berlin"
DAY = date(2024, 5, 14)
STOPS = ["A", "B", "C", "D", "E"]


def _timetable(trips: dict[str, list[tuple[str, int]]]) -> Timetable:
    """Trips as (stop, time) lists, arrival = departure, every day of 2024."""
    return build_timetable(
        TimetableRows(
            agencies=[AgencyRow("ag", "Agency", ZONE)],
            stops=[StopRow(s, s, 52.5, 13.4 + i / 100) for i, s in enumerate(STOPS)],
            routes=[RouteRow("R", "ag", "R", None, 3)],
            trips=[TripRow(t, "R", "all") for t in trips],
            stop_times=[
                StopTimeRow(t, seq, stop, at, at)
                for t, calls in trips.items()
                for seq, (stop, at) in enumerate(calls, start=1)
            ],
            calendars=[CalendarRow("all", (True,) * 7, date(2024, 1, 1), date(2024, 12, 31))],
        ),
        feed="t",
        version="1",
    )


LINE = {"T": [(s, 10 * 3600 + 600 * i) for i, s in enumerate(STOPS)]}


def _feed(*updates: pb.TripUpdate, timestamp: int | None = None) -> RealtimeSnapshot:
    message = pb.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    if timestamp is not None:
        message.header.timestamp = timestamp
    for i, update in enumerate(updates):
        entity = message.entity.add()
        entity.id = str(i)
        entity.trip_update.CopyFrom(update)
    return parse_feed(message.SerializeToString())


def _update(trip_id: str = "T", *, start_date: str | None = "20240514") -> pb.TripUpdate:
    update = pb.TripUpdate()
    update.trip.trip_id = trip_id
    if start_date:
        update.trip.start_date = start_date
    return update


def _stu(
    update: pb.TripUpdate,
    *,
    seq: int | None = None,
    stop: str | None = None,
    arrival: int | None = None,
    departure: int | None = None,
    relationship: int = 0,
) -> None:
    stu = update.stop_time_update.add()
    if seq is not None:
        stu.stop_sequence = seq
    if stop is not None:
        stu.stop_id = stop
    if arrival is not None:
        stu.arrival.delay = arrival
    if departure is not None:
        stu.departure.delay = departure
    stu.schedule_relationship = relationship


def _delays(timetable: Timetable, snapshot: RealtimeSnapshot, trip: str = "T") -> list[object]:
    (index,) = timetable.trips_by_gtfs_id[trip]
    times = expected_times(timetable, index, DAY, snapshot)
    assert times is not None
    scheduled = timetable.trips[index]
    for stop, arr, dep in zip(times.stops, scheduled.arrivals, scheduled.departures, strict=True):
        assert stop.arrival == arr + (stop.arrival_delay or 0)
        assert stop.departure == dep + (stop.departure_delay or 0)
    return [("skip" if s.skipped else "", s.arrival_delay, s.departure_delay) for s in times.stops]


def test_a_delay_propagates_to_later_stops_and_not_before() -> None:
    update = _update()
    _stu(update, seq=2, arrival=60)
    assert _delays(_timetable(LINE), _feed(update)) == [
        ("", None, None),
        ("", 60, 60),  # no departure given: it leaves as late as it came
        ("", 60, 60),
        ("", 60, 60),
        ("", 60, 60),
    ]


def test_each_update_takes_over_until_the_next() -> None:
    update = _update()
    _stu(update, seq=2, arrival=60)
    _stu(update, seq=4, departure=120)  # only a departure: the arrival keeps 60 from upstream
    _stu(update, seq=5, arrival=-30)
    assert _delays(_timetable(LINE), _feed(update)) == [
        ("", None, None),
        ("", 60, 60),
        ("", 60, 60),
        ("", 60, 120),
        ("", -30, -30),
    ]


def test_no_data_stops_propagation() -> None:
    update = _update()
    _stu(update, seq=2, arrival=60)
    _stu(update, seq=3, relationship=pb.TripUpdate.StopTimeUpdate.NO_DATA)
    _stu(update, seq=5, arrival=30)
    assert _delays(_timetable(LINE), _feed(update)) == [
        ("", None, None),
        ("", 60, 60),
        ("", None, None),
        ("", None, None),
        ("", 30, 30),
    ]


def test_a_skipped_stop_is_flagged_and_the_delay_goes_over_it() -> None:
    update = _update()
    _stu(update, seq=2, departure=90)
    _stu(update, seq=3, relationship=pb.TripUpdate.StopTimeUpdate.SKIPPED)
    assert _delays(_timetable(LINE), _feed(update)) == [
        ("", None, None),
        ("", 90, 90),
        ("skip", 90, 90),
        ("", 90, 90),
        ("", 90, 90),
    ]


def test_a_trip_wide_delay_holds_until_the_first_stop_update() -> None:
    update = _update()
    update.delay = 45
    _stu(update, seq=4, arrival=100)
    assert _delays(_timetable(LINE), _feed(update)) == [
        ("", 45, 45),
        ("", 45, 45),
        ("", 45, 45),
        ("", 100, 100),
        ("", 100, 100),
    ]


def test_a_departure_only_update_never_arrives_after_leaving() -> None:
    # 300 s late upstream, then it is said to leave D only 60 s late (it made up time):
    # the arrival at D cannot be 300 s late, it is at most the departure.
    update = _update()
    _stu(update, seq=2, arrival=300)
    _stu(update, seq=4, departure=60)
    assert _delays(_timetable(LINE), _feed(update))[3] == ("", 60, 60)


def test_stops_matched_by_stop_id_in_trip_order_on_a_loop() -> None:
    loop = {"L": [("A", 36000), ("B", 36600), ("C", 37200), ("A", 37800)]}
    update = _update("L")
    _stu(update, stop="C", arrival=30)
    _stu(update, stop="A", arrival=90)  # the second visit to A, after C
    _stu(update, stop="Z", arrival=10)  # no such stop in the trip: counted, ignored
    timetable = _timetable(loop)
    snapshot = _feed(update)
    assert _delays(timetable, snapshot, "L") == [
        ("", None, None),
        ("", None, None),
        ("", 30, 30),
        ("", 90, 90),
    ]
    assert match_report(timetable, snapshot).unmatched_stops == 1


def test_absolute_times_use_the_service_day_start_across_a_clock_change() -> None:
    # 31 March 2024: Berlin's clocks go from 02:00 to 03:00. The service day's times count
    # from noon less 12 hours, 23:00 the evening before; 10:00 on the timetable is 10:00 CEST.
    day = date(2024, 3, 31)
    timetable = _timetable(LINE)
    zone = ZoneInfo(ZONE)
    scheduled_b = datetime(2024, 3, 31, 10, 10, tzinfo=zone).timestamp()
    update = _update(start_date="20240331")
    stu = update.stop_time_update.add()
    stu.stop_sequence = 2
    stu.arrival.time = int(scheduled_b) + 45
    snapshot = _feed(update)
    (index,) = timetable.trips_by_gtfs_id["T"]
    times = expected_times(timetable, index, day, snapshot)
    assert times is not None
    assert times.stops[1].arrival_delay == 45
    assert _day_start(day, zone) + times.stops[1].arrival == int(scheduled_b) + 45
    assert times.stops[4].departure_delay == 45


def test_a_cancelled_trip_is_cancelled_at_every_stop() -> None:
    update = _update()
    update.trip.schedule_relationship = pb.TripDescriptor.CANCELED
    timetable = _timetable(LINE)
    (index,) = timetable.trips_by_gtfs_id["T"]
    times = expected_times(timetable, index, DAY, _feed(update))
    assert times is not None and times.cancelled
    assert all(s.skipped and not s.predicted for s in times.stops)
    assert [s.departure for s in times.stops] == list(timetable.trips[index].departures)


def test_a_trip_without_update_has_no_expected_times() -> None:
    timetable = _timetable({**LINE, "U": LINE["T"]})
    update = _update()
    _stu(update, seq=1, departure=10)
    (index,) = timetable.trips_by_gtfs_id["U"]
    assert expected_times(timetable, index, DAY, _feed(update)) is None


def test_unknown_trips_are_counted_and_added_ones_are_not() -> None:
    timetable = _timetable(LINE)
    unknown = _update("ghost")
    _stu(unknown, seq=1, arrival=10)
    added = _update("extra")
    added.trip.schedule_relationship = pb.TripDescriptor.ADDED
    _stu(added, stop="A", arrival=0)
    known = _update()
    _stu(known, seq=1, arrival=5)
    snapshot = _feed(unknown, added, known)
    report = match_report(timetable, snapshot)
    assert report.unknown_trip_ids == ("ghost",)
    assert (report.matched, report.added) == (1, 1)
    view = RealtimeView(timetable, snapshot)  # an unknown trip breaks nothing
    assert view.expected(timetable.trips_by_gtfs_id["T"][0], DAY) is not None


def test_service_day_inferred_for_a_trip_past_midnight() -> None:
    # 23:30 to 00:10 (24:10:00): at 00:05 on the 15th it is the 14th's trip still running.
    late = {"N": [("A", 23 * 3600 + 1800), ("B", 24 * 3600 + 600)]}
    timetable = _timetable(late)
    zone = ZoneInfo(ZONE)
    at = int(datetime(2024, 5, 15, 0, 5, tzinfo=zone).timestamp())
    update = _update("N", start_date=None)
    _stu(update, seq=2, arrival=120)
    snapshot = _feed(update, timestamp=at)
    (index,) = timetable.trips_by_gtfs_id["N"]
    assert expected_times(timetable, index, DAY, snapshot) is not None
    assert expected_times(timetable, index, date(2024, 5, 15), snapshot) is None
    # At 22:00 on the 15th, the 15th's run is nearest.
    snapshot = _feed(update, timestamp=at + 22 * 3600)
    assert expected_times(timetable, index, date(2024, 5, 15), snapshot) is not None


def _alert_feed() -> RealtimeSnapshot:
    message = pb.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    specs: list[tuple[str, dict[str, object]]] = [
        ("stop", {"stop_id": "A"}),
        ("route-at-stop", {"route_id": "R", "stop_id": "B"}),
        ("route", {"route_id": "R"}),
        ("agency", {"agency_id": "ag"}),
        ("other-route", {"route_id": "Q"}),
    ]
    for name, fields in specs:
        entity = message.entity.add()
        entity.id = name
        entity.alert.informed_entity.add(**fields)
    entity = message.entity.add()
    entity.id = "trip-later"
    entity.alert.informed_entity.add().trip.trip_id = "T"
    entity.alert.active_period.add(start=2_000_000_000)
    return parse_feed(message.SerializeToString())


def test_alerts_apply_where_every_field_of_a_selector_matches() -> None:
    snapshot = _alert_feed()
    now = 1_800_000_000

    def ids(**context: Any) -> set[str]:
        return {a.entity_id for a in alerts_for(snapshot.alerts, now, AlertContext(**context))}

    assert ids(stop_ids=["A"]) == {"stop"}
    assert ids(stop_ids=["B"]) == set()  # route R at B: not without the route
    assert ids(stop_ids=["B"], route_id="R") == {"route-at-stop", "route"}
    assert ids(route_id="R", agency_id="ag") == {"route", "agency"}
    assert ids(trip_id="T") == set()  # its period starts later
    later = alerts_for(snapshot.alerts, 2_000_000_000, AlertContext(trip_id="T"))
    assert {a.entity_id for a in later} == {"trip-later"}
    view = RealtimeView(_timetable(LINE), snapshot)
    assert {a.entity_id for a in view.alerts(now, stop_ids=["B"], trip_id="T")} == {
        "route-at-stop",
        "route",
        "agency",
    }


@pytest.mark.parametrize("trip", ["T"])
def test_expected_times_need_the_right_day(trip: str) -> None:
    update = _update()
    _stu(update, seq=1, arrival=5)
    timetable = _timetable(LINE)
    (index,) = timetable.trips_by_gtfs_id[trip]
    assert expected_times(timetable, index, DAY + timedelta(days=1), _feed(update)) is None
