"""An independent earliest-arrival search over a GTFS zip, for tests and the journey benchmark:
the Connection Scan Algorithm (Dibbelt, Pajor, Strasser, Wagner, 2013), reading the text files
itself with the csv module, sharing no code with app/transit/.

It answers one question: the earliest arrival at a destination, unlimited transfers, from
stops the rider is at (instants) to stops the destination is reached from (seconds), under
the model app/transit/raptor.py documents: no minimum transfer time at a stop, a trip boarded
only where pickup is allowed and left only where drop-off is, at most one footpath after each
ride (or after the access), nothing at a stop later than the search's limit.

What is shared with the app is only the footpath *set* (which stops are within walking
distance, and how long the walk is): it is an input here, because in production it comes from
PostGIS, not from the zip, and the question under test is the routing over it.

The connections of each service day are built once (a trip of date d at time t runs at noon
minus 12 h of d, local, plus t), and a query merges the days its window needs. pyraptor (PyPI)
was the first candidate for an independent implementation and is not usable here: it needs
pandas < 2 (this environment has numpy 2), reads only calendar_dates.txt (Cairns schedules
with calendar.txt), filters agencies by name and drops every stop without a parent station
(all of Cairns').
"""

from __future__ import annotations

import csv
import heapq
import io
import zipfile
from bisect import bisect_left
from collections import OrderedDict, defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

INF = 1 << 62
KEPT_DAYS = 6
KEPT_WINDOWS = 2
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# (departure, arrival, from stop, to stop, trip instance, pickup at from, drop-off at to)
Connection = tuple[int, int, str, str, int, bool, bool]


def _rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    if name not in archive.namelist():
        return []
    text = archive.read(name).decode("utf-8-sig")
    return [
        {k.strip(): (v or "").strip() for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(text))
    ]


def _seconds(hms: str) -> int | None:
    if not hms:
        return None
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + int(s)


def _day(yyyymmdd: str) -> date:
    return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))


def _fill(times: list[int | None]) -> list[int]:
    """Stops between timepoints: linear by position between the nearest given times."""
    given = [i for i, t in enumerate(times) if t is not None]
    out = []
    for i, t in enumerate(times):
        if t is not None:
            out.append(t)
            continue
        lo = max(k for k in given if k < i)
        hi = min(k for k in given if k > i)
        t0, t1 = times[lo], times[hi]
        assert t0 is not None and t1 is not None
        out.append(t0 + round((t1 - t0) * (i - lo) / (hi - lo)))
    return out


class ConnectionScan:
    def __init__(self, path: Path, footpaths: dict[str, list[tuple[str, int]]]) -> None:
        with zipfile.ZipFile(path) as archive:
            agency = _rows(archive, "agency.txt")
            self.zone = ZoneInfo(agency[0]["agency_timezone"])
            stops = _rows(archive, "stops.txt")
            trips = _rows(archive, "trips.txt")
            calendar = _rows(archive, "calendar.txt")
            calendar_dates = _rows(archive, "calendar_dates.txt")
            stop_times = _rows(archive, "stop_times.txt")
        self.stop_ids = [s["stop_id"] for s in stops]
        self.footpaths = footpaths
        self.runs: dict[str, set[date]] = defaultdict(set)
        for r in calendar:
            d, end = _day(r["start_date"]), _day(r["end_date"])
            while d <= end:
                if r[WEEKDAYS[d.weekday()]] == "1":
                    self.runs[r["service_id"]].add(d)
                d += timedelta(days=1)
        for r in calendar_dates:
            if r["exception_type"] == "1":
                self.runs[r["service_id"]].add(_day(r["date"]))
            else:
                self.runs[r["service_id"]].discard(_day(r["date"]))
        by_trip: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in stop_times:
            by_trip[r["trip_id"]].append(r)
        # trip id -> (service, [(stop, arrival, departure, pickup, drop_off)])
        self.trips: dict[str, tuple[str, list[tuple[str, int, int, bool, bool]]]] = {}
        for trip in trips:
            rows = sorted(by_trip.get(trip["trip_id"], []), key=lambda r: int(r["stop_sequence"]))
            if len(rows) < 2:
                continue
            arrivals = _fill([_seconds(r["arrival_time"] or r["departure_time"]) for r in rows])
            departures = _fill([_seconds(r["departure_time"] or r["arrival_time"]) for r in rows])
            self.trips[trip["trip_id"]] = (
                trip["service_id"],
                [
                    (
                        r["stop_id"],
                        a,
                        d,
                        r.get("pickup_type", "") != "1",
                        r.get("drop_off_type", "") != "1",
                    )
                    for r, a, d in zip(rows, arrivals, departures, strict=True)
                ],
            )
        self.max_seconds = max(v[-1][1] for _, v in self.trips.values())
        # The last few days' and windows' connections (a day's are about 6 MB for Cairns:
        # every date of a feed's validity would take gigabytes).
        self._days: OrderedDict[date, list[Connection]] = OrderedDict()
        self._merged: OrderedDict[tuple[date, ...], tuple[list[Connection], list[int]]] = (
            OrderedDict()
        )
        self._instances = 0

    def day_start(self, day: date) -> int:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=self.zone)
        return int((noon.astimezone(UTC) - timedelta(hours=12)).timestamp())

    def _connections_of(self, day: date) -> list[Connection]:
        if day not in self._days:
            off = self.day_start(day)
            out: list[Connection] = []
            for service, visits in self.trips.values():
                if day not in self.runs.get(service, ()):
                    continue
                self._instances += 1
                key = self._instances
                for (s, _, dep, pick, _), (s2, arr, _, _, drop) in pairwise(visits):
                    out.append((dep + off, arr + off, s, s2, key, pick, drop))
            # Stable sort: a trip's own connections keep their order among equal times.
            out.sort(key=lambda c: (c[0], c[1]))
            self._days[day] = out
            while len(self._days) > KEPT_DAYS:
                self._days.popitem(last=False)
        self._days.move_to_end(day)
        return self._days[day]

    def _window(self, start: int, limit: int) -> tuple[list[Connection], list[int]]:
        local = datetime.fromtimestamp(start, self.zone).date()
        last = datetime.fromtimestamp(limit, self.zone).date() + timedelta(days=1)
        day = local - timedelta(days=self.max_seconds // 86400 + 1)
        days = []
        while day <= last:
            if self.day_start(day) <= limit and self.day_start(day) + self.max_seconds >= start:
                days.append(day)
            day += timedelta(days=1)
        key = tuple(days)
        if key not in self._merged:
            merged = list(
                heapq.merge(*(self._connections_of(d) for d in days), key=lambda c: (c[0], c[1]))
            )
            self._merged[key] = (merged, [c[0] for c in merged])
            while len(self._merged) > KEPT_WINDOWS:
                self._merged.popitem(last=False)
        self._merged.move_to_end(key)
        return self._merged[key]

    def earliest_arrival(
        self, sources: dict[str, int], targets: dict[str, int], start: int, limit: int
    ) -> int | None:
        """Epoch second of the earliest arrival at the destination, or None within `limit`."""
        connections, departures = self._window(start, limit)
        footpaths = self.footpaths
        reached: dict[str, int] = {}  # any means
        by_vehicle: dict[str, int] = {}
        best = INF
        for s, t in sources.items():
            if t <= limit:
                reached[s] = min(t, reached.get(s, INF))
                by_vehicle[s] = min(t, by_vehicle.get(s, INF))
        for s, t in list(by_vehicle.items()):
            for q, w in footpaths.get(s, ()):
                if t + w <= limit and t + w < reached.get(q, INF):
                    reached[q] = t + w
        for s, t in reached.items():
            if s in targets:
                best = min(best, t + targets[s])
        min_egress = min(targets.values())
        boarded: set[int] = set()

        def scan(c: Connection) -> bool:
            """Takes the connection if it can; says whether anything changed."""
            nonlocal best
            dep, arr, u, v, trip, pick, drop = c
            changed = False
            if trip not in boarded:
                if not pick or reached.get(u, INF) > dep:
                    return False
                boarded.add(trip)
                changed = True
            if not drop or arr > limit or arr >= by_vehicle.get(v, INF):
                return changed
            by_vehicle[v] = arr
            if arr < reached.get(v, INF):
                reached[v] = arr
                if v in targets and arr + targets[v] < best:
                    best = arr + targets[v]
            for q, w in footpaths.get(v, ()):
                t = arr + w
                if t <= limit and t < reached.get(q, INF):
                    reached[q] = t
                    if q in targets and t + targets[q] < best:
                        best = t + targets[q]
            return True

        i = bisect_left(departures, start)
        n = len(connections)
        while i < n:
            c = connections[i]
            if c[0] > limit or c[0] + min_egress >= best:
                break
            if c[0] != c[1]:
                scan(c)
                i += 1
                continue
            # Connections of no duration at one instant can feed each other in any order
            # (trip A reaches a stop at 10:00 where trip B leaves at 10:00): scan them until
            # nothing changes. They sort before the others of their instant.
            j = i
            while j < n and connections[j][0] == c[0] and connections[j][1] == c[0]:
                j += 1
            while any([scan(connections[k]) for k in range(i, j)]):
                pass
            i = j
        return None if best >= INF else best
