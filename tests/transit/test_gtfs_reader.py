"""The GTFS reader (app/transit/gtfs.py): the real feeds read whole, counts checked against
plain csv; each finding kind shown on a small zip built for it; the footpath rule checked
against a brute-force pass over every pair of stops."""

from __future__ import annotations

import csv
import io
import math
import random
from pathlib import Path
from typing import Any

import pytest

from app.transit.footpaths import nearby_stop_pairs
from app.transit.gtfs import GtfsFeedUnusable, read_gtfs, timetable_from_zip
from app.transit.gtfs_feed import GtfsFeed, GtfsHead, StopTimeColumns
from geo.distance import geodesic_meters
from tests.transit.gtfs_support import BASE, make_zip, raw_counts, raw_rows, real_feed, rewrite_zip


def _seconds(value: str) -> int | None:
    if not value.strip():
        return None  # between timepoints
    h, m, s = (int(x) for x in value.strip().split(":"))
    return h * 3600 + m * 60 + s


def _codes(feed: GtfsFeed) -> dict[tuple[str, str, str], int]:
    return {(f.severity, f.code, f.file): f.count for f in feed.findings}


@pytest.mark.parametrize("name", ["caltrain", "cairns"])
def test_real_feeds_read_whole(name: str) -> None:
    path = real_feed(name)
    feed = read_gtfs(path)
    assert not feed.fatal
    # Both feeds are clean: nothing is skipped, so every row of each file is kept.
    assert not [f for f in feed.findings if f.severity in ("error", "fatal")], feed.findings
    expected = raw_counts(path)
    counts = feed.counts()
    assert {k: counts[k] for k in expected} == expected
    # Each stop time's times are its text's seconds, past 24:00:00 included.
    raw = {(r["trip_id"], int(r["stop_sequence"])): r for r in raw_rows(path, "stop_times.txt")}
    late = 0
    for st in feed.stop_times:
        r = raw[(st.trip_id, st.stop_sequence)]
        assert st.arrival == _seconds(r["arrival_time"])
        assert st.departure == _seconds(r["departure_time"])
        assert st.stop_id == r["stop_id"].strip()
        late += (st.arrival or 0) >= 86_400
    past = sum(f.count for f in feed.findings if f.code == "TIME_PAST_MIDNIGHT")
    late_trips = {
        r["trip_id"]
        for r in raw.values()
        if max(_seconds(r["arrival_time"]) or 0, _seconds(r["departure_time"]) or 0) >= 86_400
    }
    assert past == len(late_trips) and (late > 0) == (past > 0)


def test_caltrain_quirks() -> None:
    path = real_feed("caltrain")
    feed = read_gtfs(path)
    route_ids = {r["route_id"] for r in raw_rows(path, "routes.txt")}
    assert any(" " in r for r in route_ids)
    assert {r.route_id for r in feed.routes} == route_ids
    info = [f for f in feed.findings if f.code == "EXTENSION_FILE"]
    # 511's own files: neither GTFS's nor used, reported and ignored.
    assert {f.file for f in info} >= {"directions.txt", "farezone_attributes.txt"}
    assert feed.feed_version == raw_rows(path, "feed_info.txt")[0]["feed_version"]
    parents = {s.stop_id: s.parent_station for s in feed.stops}
    for r in raw_rows(path, "stops.txt"):
        assert parents[r["stop_id"]] == (r["parent_station"] or None)


def test_cairns_without_agency_id_or_feed_info() -> None:
    feed = read_gtfs(real_feed("cairns"))
    assert feed.agencies[0].agency_id == ""
    assert {r.agency_id for r in feed.routes} == {""}
    assert feed.feed_version is None
    assert ("info", "MISSING_OPTIONAL_FILE", "feed_info.txt") in _codes(feed)


def _with(**changes: str | None) -> bytes:
    files: dict[str, str | bytes] = dict(BASE)
    for key, change in changes.items():
        name = key.replace("__", ".")
        if change is None:
            files.pop(name, None)
        else:
            files[name] = change
    return make_zip(files)


def test_the_base_zip_is_clean() -> None:
    feed = read_gtfs(_with())
    assert [f.severity for f in feed.findings] == ["info"] * len(feed.findings)
    assert feed.counts()["stop_times"] == 3


def test_missing_required_file_is_fatal() -> None:
    feed = read_gtfs(_with(stops__txt=None))
    assert feed.fatal
    assert ("fatal", "MISSING_REQUIRED_FILE", "stops.txt") in _codes(feed)
    assert feed.stops == () and feed.stop_times == ()
    with pytest.raises(GtfsFeedUnusable):
        timetable_from_zip(_with(stops__txt=None), feed="x")
    no_calendar = read_gtfs(_with(calendar__txt=None))
    assert no_calendar.fatal


def test_missing_optional_files_are_info() -> None:
    codes = _codes(read_gtfs(_with()))
    for name in ("calendar_dates.txt", "frequencies.txt", "transfers.txt", "feed_info.txt"):
        assert codes[("info", "MISSING_OPTIONAL_FILE", name)] == 1


def test_not_a_zip_and_unknown_time_zone_are_fatal() -> None:
    assert ("fatal", "NOT_A_ZIP", "") in _codes(read_gtfs(b"stop_id,stop_name\n"))
    bad_zone = BASE["agency.txt"].replace("Europe/Oslo", "Europe/Atlantis")
    assert ("fatal", "UNKNOWN_TIMEZONE", "agency.txt") in _codes(
        read_gtfs(_with(agency__txt=bad_zone))
    )
    no_column = "agency_id,agency_name\nA,Agency\n"
    assert ("fatal", "UNREADABLE_FILE", "agency.txt") in _codes(
        read_gtfs(_with(agency__txt=no_column))
    )


def test_unknown_references_are_counted_and_skipped() -> None:
    trips = BASE["trips.txt"] + "R9,WK,T2\nR1,NOPE,T3\nR1,WK,T4\n"
    stop_times = (
        BASE["stop_times.txt"]
        + "T9,09:00:00,09:00:00,S1,1\nT9,09:05:00,09:05:00,S2,2\n"  # unknown trip, twice
        + "T4,09:00:00,09:00:00,S1,1\nT4,09:03:00,09:03:00,S9,2\n"  # unknown stop
        + "T4,09:05:00,09:05:00,S2,3\n"
    )
    feed = read_gtfs(_with(trips__txt=trips, stop_times__txt=stop_times))
    errors = [f for f in feed.findings if f.code == "UNKNOWN_REFERENCE"]
    by_file = {(f.file, f.message): f for f in errors}
    assert by_file[("trips.txt", "refers to an unknown route (row skipped)")].count == 1
    assert by_file[("trips.txt", "refers to an unknown service (row skipped)")].count == 1
    unknown_trip = by_file[("stop_times.txt", "refers to an unknown trip (row skipped)")]
    assert unknown_trip.count == 2 and unknown_trip.examples == ["T9", "T9"]
    assert by_file[("stop_times.txt", "refers to an unknown stop (row skipped)")].count == 1
    assert not feed.fatal
    assert {t.trip_id for t in feed.trips} == {"T1", "T4"}
    assert [(s.trip_id, s.stop_id) for s in feed.stop_times if s.trip_id == "T4"] == [
        ("T4", "S1"),
        ("T4", "S2"),
    ]


def test_times_past_midnight_are_allowed() -> None:
    trips = BASE["trips.txt"] + "R1,WK,N1\n"
    stop_times = BASE["stop_times.txt"] + "N1,23:50:00,23:50:00,S1,1\nN1,24:10:30,24:11:00,S3,2\n"
    feed = read_gtfs(_with(trips__txt=trips, stop_times__txt=stop_times))
    assert _codes(feed)[("info", "TIME_PAST_MIDNIGHT", "stop_times.txt")] == 1
    last = [s for s in feed.stop_times if s.trip_id == "N1"][-1]
    assert (last.arrival, last.departure) == (24 * 3600 + 10 * 60 + 30, 24 * 3600 + 11 * 60)


def test_bad_times_and_coordinates_skip_rows() -> None:
    stops = BASE["stops.txt"] + "S4,Four,95.0,10.75\nS5,Five,,\nS6,Six,0,0\n"
    stop_times = BASE["stop_times.txt"].replace("T1,08:05:00,08:05:00,S2,2", "T1,8:5:00,,S2,2")
    feed = read_gtfs(_with(stops__txt=stops, stop_times__txt=stop_times))
    codes = _codes(feed)
    assert codes[("error", "INVALID_COORDINATES", "stops.txt")] == 3
    assert codes[("error", "INVALID_TIME", "stop_times.txt")] == 1
    assert {s.stop_id for s in feed.stops} == {"S1", "S2", "S3"}
    assert [s.stop_id for s in feed.stop_times] == ["S1", "S3"]


def test_byte_order_marks_extension_and_stray_files() -> None:
    feed = read_gtfs(
        _with(
            stops__txt="\ufeff" + BASE["stops.txt"],
            directions__txt="route_id,direction_id,direction\nR1,0,North\n",
            notes__md="# hello\n",
        )
    )
    codes = _codes(feed)
    assert codes[("info", "BYTE_ORDER_MARK", "stops.txt")] == 1
    assert codes[("info", "EXTENSION_FILE", "directions.txt")] == 1
    assert codes[("info", "STRAY_FILE", "notes.md")] == 1
    # The mark is not part of the first column's name: the stops are all there.
    assert len(feed.stops) == 3


def test_duplicates_are_skipped() -> None:
    stops = BASE["stops.txt"] + "S2,Two again,59.0,10.0\n"
    stop_times = BASE["stop_times.txt"] + "T1,08:06:00,08:06:00,S3,2\n"
    feed = read_gtfs(_with(stops__txt=stops, stop_times__txt=stop_times))
    codes = _codes(feed)
    assert codes[("error", "DUPLICATE_KEY", "stops.txt")] == 1
    assert codes[("error", "DUPLICATE_KEY", "stop_times.txt")] == 1
    assert next(s for s in feed.stops if s.stop_id == "S2").name == "Two"
    assert len(feed.stop_times) == 3


def test_short_trips_and_trips_without_end_times_are_skipped() -> None:
    trips = BASE["trips.txt"] + "R1,WK,ONE\nR1,WK,OPEN\n"
    stop_times = (
        BASE["stop_times.txt"]
        + "ONE,09:00:00,09:00:00,S1,1\n"
        + "OPEN,09:00:00,09:00:00,S1,1\nOPEN,,,S2,2\n"
    )
    feed = read_gtfs(_with(trips__txt=trips, stop_times__txt=stop_times))
    codes = _codes(feed)
    assert codes[("error", "TRIP_TOO_SHORT", "trips.txt")] == 1
    assert codes[("error", "TRIP_WITHOUT_END_TIMES", "trips.txt")] == 1
    assert {t.trip_id for t in feed.trips} == {"T1"}
    assert {s.trip_id for s in feed.stop_times} == {"T1"}


def test_nearby_pairs_equal_a_brute_force_pass() -> None:
    feed = read_gtfs(real_feed("cairns"))
    radius = 400.0
    stops = [s for s in feed.stops if s.location_type == 0]
    expected = {
        (a.stop_id, b.stop_id)
        for a in stops
        for b in stops
        if a.stop_id != b.stop_id and geodesic_meters(a.lat, a.lon, b.lat, b.lon) <= radius
    }
    found = {(a, b) for a, b, _ in nearby_stop_pairs(feed.stops, radius)}
    assert found == expected
    assert len(expected) > 100


def test_timetable_from_zip_footpaths_follow_the_rule() -> None:
    path = real_feed("caltrain")
    timetable = timetable_from_zip(path, feed="caltrain", walking_speed_kmh=3.6)
    stops = {r["stop_id"]: r for r in raw_rows(path, "stops.txt")}
    transfers = {(r["from_stop_id"], r["to_stop_id"]): r for r in raw_rows(path, "transfers.txt")}
    seen = 0
    for a, walks in timetable.footpaths.items():
        for b, seconds in walks:
            ida, idb = timetable.stops[a].gtfs_id, timetable.stops[b].gtfs_id
            ra, rb = stops[ida], stops[idb]
            meters = geodesic_meters(
                float(ra["stop_lat"]), float(ra["stop_lon"]),
                float(rb["stop_lat"]), float(rb["stop_lon"]),
            )  # fmt: skip
            given = transfers.get((ida, idb))
            if given and given["min_transfer_time"]:
                assert seconds == int(given["min_transfer_time"])
            else:
                # 3.6 km/h is a metre a second.
                assert seconds == math.ceil(meters) or abs(seconds - meters) < 1.001
                assert given is not None or meters <= 400.0 + 0.01
            seen += 1
    assert seen > 0


def _expected_stop_times(path: Path | bytes) -> list[tuple[str, int, str, int | None, int | None]]:
    """Cairns' stop times as the reader must give them, worked out with plain csv: grouped by
    trip in trips.txt's order, each in stop-sequence order."""
    trips = {r["trip_id"].strip(): i for i, r in enumerate(raw_rows(path, "trips.txt"))}
    rows = [
        (
            r["trip_id"].strip(),
            int(r["stop_sequence"]),
            r["stop_id"].strip(),
            _seconds(r["arrival_time"]),
            _seconds(r["departure_time"]),
        )
        for r in raw_rows(path, "stop_times.txt")
        if r["trip_id"].strip() in trips
    ]
    return sorted(rows, key=lambda r: (trips[r[0]], r[1]))


def _as_tuples(feed: GtfsFeed) -> list[tuple[str, int, str, int | None, int | None]]:
    return [
        (s.trip_id, s.stop_sequence, s.stop_id, s.arrival, s.departure) for s in feed.stop_times
    ]


def _variant(path: Path, rows: list[dict[str, str]], **writer: Any) -> bytes:
    buffer = io.StringIO()
    out = csv.DictWriter(buffer, fieldnames=list(rows[0]), **writer)
    out.writeheader()
    out.writerows(rows)
    return rewrite_zip(path, {"stop_times.txt": buffer.getvalue()})


def test_every_way_of_reading_stop_times_gives_the_same_rows() -> None:
    # The reader splits clean, quote-free text whole (columns as slices), hands blocks already
    # in order to a listener, and falls back to the csv module (quotes), to sorting (rows out of
    # order) and to the rules row by row (a row to skip): every path must give the same rows.
    path = real_feed("cairns")
    expected = _expected_stop_times(path)
    raw = raw_rows(path, "stop_times.txt")
    told: list[object] = []
    plain = read_gtfs(path, listener=told.append)
    assert _as_tuples(plain) == expected and plain.stop_times_streamed
    assert isinstance(told[0], GtfsHead) and len(told[0].trips) == len(plain.trips)
    blocks = [p for p in told[1:] if isinstance(p, StopTimeColumns)]
    assert len(blocks) > 1  # several blocks, so their seams are crossed
    assert [r for b in blocks for r in b.rows()] == list(plain.stop_times)

    shuffled = list(raw)
    random.Random(7).shuffle(shuffled)
    quoted = _variant(path, raw, quoting=csv.QUOTE_ALL, lineterminator="\n")
    spaced = _variant(
        path, [{k: f" {v} " for k, v in r.items()} for r in raw], lineterminator="\r\n"
    )
    unknown = _variant(path, [*raw, {**raw[0], "trip_id": "NOPE"}], lineterminator="\n")
    for data, streamed in (
        (_variant(path, shuffled, lineterminator="\n"), False),
        (quoted, True),
        (spaced, True),
        (unknown, False),
    ):
        told.clear()
        feed = read_gtfs(data, listener=told.append)
        assert _as_tuples(feed) == expected
        assert feed.stop_times_streamed is streamed
        if not streamed:  # what was handed over is not taken for the rows
            continue
        assert [r for p in told[1:] if isinstance(p, StopTimeColumns) for r in p.rows()] == list(
            feed.stop_times
        )
    assert _codes(read_gtfs(unknown))[("error", "UNKNOWN_REFERENCE", "stop_times.txt")] == 1


def test_blank_short_and_crlf_lines() -> None:
    stop_times = (
        "trip_id,arrival_time,departure_time,stop_id,stop_sequence,stop_headsign\r\n"
        "T1,08:00:00,08:00:00,S1,1,North\r\n"
        "\r\n"
        "   \r\n"
        "T1,08:05:00,08:05:00,S2,2\r\n"  # short: no headsign
        "T1,08:10:00,08:10:00,S3,3,\r\n"
    )
    feed = read_gtfs(_with(stop_times__txt=stop_times))
    assert [(s.stop_id, s.headsign) for s in feed.stop_times] == [
        ("S1", "North"),
        ("S2", None),
        ("S3", None),
    ]
    assert not [f for f in feed.findings if f.severity in ("error", "fatal")]
