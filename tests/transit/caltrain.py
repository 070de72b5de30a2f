"""The real Caltrain material of ../shared/conformance/transit/gtfs/caltrain, read at run time:
its GTFS zip's raw rows (csv, no project code, for the expected values) and its timetable as
the app reads it."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from functools import cache
from pathlib import Path

from app.transit.gtfs import timetable_from_zip
from app.transit.timetable import Timetable
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
    """The timetable as the app builds it from the zip (app/transit/gtfs.py)."""
    return timetable_from_zip(caltrain_dir() / "ct.zip", feed=FEED)


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
