"""An independent reading of a GTFS zip, for tests: the departures at a stop from an instant,
computed straight from the text files with the csv module and the spec's rules, sharing no
code with app/transit/. Simple on purpose: every day, every row, no indexes."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo


def _rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    if name not in archive.namelist():
        return []
    text = archive.read(name).decode("utf-8-sig")
    return [
        {k.strip(): (v or "").strip() for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(text))
    ]


def _seconds(hms: str) -> int:
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + int(s)


def _day(yyyymmdd: str) -> date:
    return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))


@dataclass(frozen=True)
class RefDeparture:
    instant: datetime  # UTC
    trip_id: str
    stop_id: str
    route_id: str


class GtfsReference:
    def __init__(self, path: Path) -> None:
        with zipfile.ZipFile(path) as archive:
            agency = _rows(archive, "agency.txt")
            self.zone = ZoneInfo(agency[0]["agency_timezone"])
            self.stops = {r["stop_id"]: r for r in _rows(archive, "stops.txt")}
            self.trips = {r["trip_id"]: r for r in _rows(archive, "trips.txt")}
            self.calendar = _rows(archive, "calendar.txt")
            self.calendar_dates = _rows(archive, "calendar_dates.txt")
            self.stop_times = _rows(archive, "stop_times.txt")
            frequencies = _rows(archive, "frequencies.txt")
        self.last_sequence: dict[str, int] = defaultdict(int)
        for r in self.stop_times:
            seq = int(r["stop_sequence"])
            self.last_sequence[r["trip_id"]] = max(self.last_sequence[r["trip_id"]], seq)
        self._fill_times()
        self._expand(frequencies)
        self.max_seconds = max(
            _seconds(r["arrival_time"]) for r in self.stop_times if r["arrival_time"]
        )

    def _fill_times(self) -> None:
        """Stops between timepoints get no time in the file; the spec leaves them to the
        consumer, who interpolates: here by position between the nearest given times."""
        by_trip: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in self.stop_times:
            by_trip[r["trip_id"]].append(r)
        for rows in by_trip.values():
            rows.sort(key=lambda r: int(r["stop_sequence"]))
            given = [i for i, r in enumerate(rows) if r["departure_time"] or r["arrival_time"]]
            for i, r in enumerate(rows):
                if r["departure_time"] or r["arrival_time"]:
                    r["departure_time"] = r["departure_time"] or r["arrival_time"]
                    r["arrival_time"] = r["arrival_time"] or r["departure_time"]
                    continue
                lo = max(k for k in given if k < i)
                hi = min(k for k in given if k > i)
                t0 = _seconds(rows[lo]["departure_time"] or rows[lo]["arrival_time"])
                t1 = _seconds(rows[hi]["arrival_time"] or rows[hi]["departure_time"])
                t = t0 + round((t1 - t0) * (i - lo) / (hi - lo))
                r["departure_time"] = r["arrival_time"] = (
                    f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"
                )

    def _expand(self, frequencies: list[dict[str, str]]) -> None:
        """A trip in frequencies.txt is a template: one run starts at each start_time +
        k * headway_secs before end_time, its times shifted by that start less the template's
        first departure. Each run is a trip of its own here (id "T@start")."""
        by_trip: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in self.stop_times:
            by_trip[r["trip_id"]].append(r)
        for f in frequencies:
            template = sorted(by_trip.pop(f["trip_id"], []), key=lambda r: int(r["stop_sequence"]))
            if not template:
                continue
            first = _seconds(template[0]["departure_time"])
            start, end = _seconds(f["start_time"]), _seconds(f["end_time"])
            while start < end:
                run = f"{f['trip_id']}@{start}"
                self.trips[run] = self.trips[f["trip_id"]]
                self.last_sequence[run] = self.last_sequence[f["trip_id"]]
                for r in template:
                    shifted = dict(r, trip_id=run)
                    for column in ("arrival_time", "departure_time"):
                        t = _seconds(r[column]) + start - first
                        shifted[column] = f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"
                    self.stop_times.append(shifted)
                start += int(f["headway_secs"])
        templates = {f["trip_id"] for f in frequencies}
        self.stop_times = [r for r in self.stop_times if r["trip_id"] not in templates]
        self.max_seconds = max(
            _seconds(r["arrival_time"]) for r in self.stop_times if r["arrival_time"]
        )

    def runs(self, service_id: str, day: date) -> bool:
        for r in self.calendar_dates:
            if r["service_id"] == service_id and _day(r["date"]) == day:
                return r["exception_type"] == "1"
        weekday = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        for r in self.calendar:
            if r["service_id"] != service_id:
                continue
            if (
                _day(r["start_date"]) <= day <= _day(r["end_date"])
                and r[weekday[day.weekday()]] == "1"
            ):
                return True
        return False

    def day_start(self, day: date) -> datetime:
        # The spec: "noon minus 12h" in the agency's zone.
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=self.zone)
        return noon.astimezone(UTC) - timedelta(hours=12)

    def departures(self, stop_id: str, after: datetime, first: int) -> list[RefDeparture]:
        platforms = {stop_id}
        if self.stops[stop_id].get("location_type") == "1":
            platforms |= {s for s, r in self.stops.items() if r.get("parent_station") == stop_id}
        local = after.astimezone(self.zone).date()
        back = -(-self.max_seconds // 86400)
        found = []
        for offset in range(-back, 4):
            day = local + timedelta(days=offset)
            start = self.day_start(day)
            for r in self.stop_times:
                if r["stop_id"] not in platforms or not r["departure_time"]:
                    continue
                trip = self.trips.get(r["trip_id"])
                if trip is None or int(r["stop_sequence"]) == self.last_sequence[r["trip_id"]]:
                    continue
                if r.get("pickup_type") == "1" or not self.runs(trip["service_id"], day):
                    continue
                instant = start + timedelta(seconds=_seconds(r["departure_time"]))
                if instant >= after:
                    found.append(
                        RefDeparture(instant, r["trip_id"], r["stop_id"], trip["route_id"])
                    )
        found.sort(key=lambda d: (d.instant, d.route_id, d.trip_id))
        return found[:first]
