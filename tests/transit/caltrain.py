"""The real Caltrain material of ../shared/conformance/transit/gtfs/caltrain, read at run time:
its GTFS zip's raw rows (csv, no project code) and a timetable built from them."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from functools import cache
from pathlib import Path

from app.transit.timetable import (
    AgencyRow,
    CalendarDateRow,
    CalendarRow,
    RouteRow,
    StopRow,
    StopTimeRow,
    Timetable,
    TripRow,
    build_timetable,
)
from tests.conftest import require_conformance

FEED = "caltrain"


def caltrain_dir() -> Path:
    return require_conformance() / "transit" / "gtfs" / "caltrain"


@cache
def raw_table(name: str) -> tuple[dict[str, str], ...]:
    with zipfile.ZipFile(caltrain_dir() / "ct.zip") as archive:
        text = archive.read(name).decode("utf-8-sig")
    return tuple(csv.DictReader(io.StringIO(text)))


def _seconds(value: str) -> int | None:
    if not value.strip():
        return None
    h, m, s = (int(p) for p in value.strip().split(":"))
    return h * 3600 + m * 60 + s


def _day(value: str) -> date:
    return date(int(value[:4]), int(value[4:6]), int(value[6:]))


@cache
def caltrain_timetable() -> Timetable:
    """The timetable from the zip's rows through the production builder (the GTFS reader,
    app/transit/gtfs.py, is another helper's; this reads only what these tests need)."""
    return build_timetable(
        feed=FEED,
        version="test",
        agencies=[
            AgencyRow(r["agency_id"], r["agency_name"], r["agency_timezone"])
            for r in raw_table("agency.txt")
        ],
        stops=[
            StopRow(
                r["stop_id"],
                r["stop_name"],
                float(r["stop_lat"]),
                float(r["stop_lon"]),
                int(r["location_type"] or 0),
                r["parent_station"] or None,
            )
            for r in raw_table("stops.txt")
        ],
        routes=[
            RouteRow(
                r["route_id"],
                r["agency_id"],
                r["route_short_name"] or None,
                r["route_long_name"] or None,
                int(r["route_type"]),
            )
            for r in raw_table("routes.txt")
        ],
        trips=[
            TripRow(r["trip_id"], r["route_id"], r["service_id"], r["trip_headsign"] or None)
            for r in raw_table("trips.txt")
        ],
        stop_times=[
            StopTimeRow(
                r["trip_id"],
                int(r["stop_sequence"]),
                r["stop_id"],
                _seconds(r["arrival_time"]),
                _seconds(r["departure_time"]),
            )
            for r in raw_table("stop_times.txt")
        ],
        calendars=[
            CalendarRow(
                r["service_id"],
                tuple(  # type: ignore[arg-type]
                    r[d] == "1"
                    for d in (
                        "monday",
                        "tuesday",
                        "wednesday",
                        "thursday",
                        "friday",
                        "saturday",
                        "sunday",
                    )
                ),
                _day(r["start_date"]),
                _day(r["end_date"]),
            )
            for r in raw_table("calendar.txt")
        ],
        calendar_dates=[
            CalendarDateRow(r["service_id"], _day(r["date"]), r["exception_type"] == "1")
            for r in raw_table("calendar_dates.txt")
        ],
    )


def scheduled_stop_times(trip_id: str) -> list[tuple[int, str, int, int]]:
    """(stop_sequence, stop_id, arrival, departure) of a trip, straight from stop_times.txt
    (Caltrain gives every time)."""
    rows = [r for r in raw_table("stop_times.txt") if r["trip_id"] == trip_id]
    out = []
    for r in sorted(rows, key=lambda r: int(r["stop_sequence"])):
        arrival, departure = _seconds(r["arrival_time"]), _seconds(r["departure_time"])
        assert arrival is not None and departure is not None
        out.append((int(r["stop_sequence"]), r["stop_id"], arrival, departure))
    return out
