"""Reading a GTFS zip into the typed rows of `app/transit/timetable.py`, with findings.

The zip's members are read a block of lines at a time (UTF-8; a byte-order mark is dropped,
and reported); nothing but the parsed rows is held. A block without quotes is split on commas
whole, the ``csv`` module reads the rest (`app/transit/gtfs_zip.py`). The stop times, the large
file, are checked column by column, and row by row only when some row breaks a rule
(`app/transit/gtfs_stop_times.py`); a listener may be handed the blocks as they are read
(`read_gtfs`), which the loader copies into PostgreSQL meanwhile. Like the GBFS side
(`adapters/gbfs/findings.py`), what deviates from the spec is reported as *findings*
(`app/transit/gtfs_feed.py`), tallied per (severity, code, file, description) with a count and
a few example ids, so a feed that repeats one deviation on 100,000 rows stays readable:

- ``fatal``: the feed cannot be loaded (a required file or column missing, not a zip, an
  unknown time zone); nothing of it is used.
- ``error``: rows skipped (a bad time, coordinates, a duplicate key, a reference to something
  unknown, a trip with fewer than two stop times or without a first or last time). The rest
  of the feed loads.
- ``warning``: accepted as best understood (a parent station that is not in the feed).
- ``info``: allowed and noted (a time past 24:00:00, a byte-order mark, a missing optional
  file, an extension file such as 511's ``farezone_attributes.txt``).

Footpaths: `app/transit/footpaths.py`; `timetable_from_zip` here applies them and needs no
database.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.transit.footpaths import (
    DEFAULT_FOOTPATH_RADIUS_M,
    DEFAULT_WALKING_SPEED_KMH,
    footpath_rows,
    nearby_stop_pairs,
)
from app.transit.gtfs_feed import (
    Fatal,
    Findings,
    GtfsFeed,
    GtfsFinding,
    GtfsHead,
    Listener,
    StopTimeColumns,
    TransferRow,
)
from app.transit.gtfs_stop_times import StopTimesReader
from app.transit.gtfs_zip import (
    READ_OPTIONAL,
    REQUIRED_COLUMNS,
    REQUIRED_FILES,
    GtfsZip,
    Table,
    feed_sha256,
    flag,
    int_or,
    optional,
    parse_date,
    parse_time,
)
from app.transit.timetable import (
    AgencyRow,
    CalendarDateRow,
    CalendarRow,
    FrequencyRow,
    RouteRow,
    StopRow,
    Timetable,
    TimetableRows,
    TripRow,
    build_timetable,
)

__all__ = [
    "GtfsFeedUnusable",
    "read_gtfs",
    "timetable_from_feed",
    "timetable_from_zip",
]


# ---------------------------------------------------------------------------- the reader


def read_gtfs(
    source: str | Path | bytes, *, sha256: str | None = None, listener: Listener | None = None
) -> GtfsFeed:
    """Read a GTFS zip (a path or its bytes; ``sha256``, its digest when the caller has it).
    Never raises for what is in the zip: a feed that cannot be used comes back with a
    ``fatal`` finding and no rows. An unreadable path raises OSError.

    ``listener``, when given, is told as soon as they are read the `GtfsHead` (everything but
    the stop times and frequencies), then the stop times in blocks, while they are clean and
    in the order of the result: a loader writes them while the rest is read. Whether the
    blocks were the whole stop times: `GtfsFeed.stop_times_streamed`."""
    digest = sha256 or feed_sha256(source)
    findings = Findings()
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except zipfile.BadZipFile:
        findings.add("fatal", "NOT_A_ZIP", "", "the source is not a zip file")
        return _empty(digest, findings)
    with archive:
        try:
            return _Reader(GtfsZip(archive, findings), findings, digest, listener).read()
        except Fatal:
            return _empty(digest, findings)


def _empty(sha256: str, findings: Findings) -> GtfsFeed:
    return GtfsFeed(
        sha256,
        None,
        (),
        (),
        (),
        (),
        StopTimeColumns.of(()),
        (),
        (),
        (),
        (),
        findings=tuple(findings.all()),
    )


@dataclass(slots=True, eq=False)  # a reader: compared by identity, like any object
class _Reader:
    zf: GtfsZip
    f: Findings
    sha256: str
    listener: Listener | None

    def read(self) -> GtfsFeed:
        missing = [n for n in REQUIRED_FILES if not self.zf.has(n)]
        if not self.zf.has("calendar.txt") and not self.zf.has("calendar_dates.txt"):
            missing.append("calendar.txt or calendar_dates.txt")
        for name in missing:
            self.f.add("fatal", "MISSING_REQUIRED_FILE", name, f"{name} is required", name)
        if missing:
            raise Fatal("missing files")
        for name in READ_OPTIONAL:
            if not self.zf.has(name):
                self.f.add("info", "MISSING_OPTIONAL_FILE", name, f"no {name} (optional)")

        agencies = self._agencies()
        stops = self._stops()
        routes = self._routes({a.agency_id for a in agencies}, agencies)
        calendars = self._calendars()
        calendar_dates = self._calendar_dates()
        services = {c.service_id for c in calendars} | {d.service_id for d in calendar_dates}
        trips = self._trips({r.route_id for r in routes}, services)
        stop_ids = {s.stop_id for s in stops}
        transfers = self._transfers(stop_ids)
        feed_version = self._feed_version()
        if self.listener is not None:
            self.listener(
                GtfsHead(
                    feed_version,
                    tuple(agencies),
                    tuple(stops),
                    tuple(routes),
                    tuple(trips),
                    tuple(calendars),
                    tuple(calendar_dates),
                    tuple(transfers),
                )
            )
        stop_times, trips, streamed = StopTimesReader(self.zf, self.f, self.listener).read(
            trips, stop_ids
        )
        trip_ids = {t.trip_id for t in trips}
        frequencies = self._frequencies(trip_ids)
        return GtfsFeed(
            sha256=self.sha256,
            feed_version=feed_version,
            agencies=tuple(agencies),
            stops=tuple(stops),
            routes=tuple(routes),
            trips=tuple(trips),
            stop_time_columns=stop_times,
            calendars=tuple(calendars),
            calendar_dates=tuple(calendar_dates),
            frequencies=tuple(frequencies),
            transfers=tuple(transfers),
            findings=tuple(self.f.all()),
            stop_times_streamed=streamed,
        )

    def _table(self, name: str, columns: tuple[str, ...]) -> Table | None:
        """An optional file's table; None when it is absent or cannot be read."""
        return self.zf.table(name, columns, required=False)

    def _required_table(self, name: str, columns: tuple[str, ...]) -> Table:
        """A required file's table (its absence was checked; unreadable, it is fatal)."""
        table = self.zf.table(name, columns, required=True)
        assert table is not None
        return table

    # -- files

    def _agencies(self) -> list[AgencyRow]:
        table = self._required_table("agency.txt", ("agency_id", "agency_name", "agency_timezone"))
        by_id: dict[str, AgencyRow] = {}
        for agency_id, name, zone in table:
            if agency_id in by_id:
                self.f.duplicate("agency.txt", agency_id)
                continue
            by_id[agency_id] = AgencyRow(agency_id, name, zone)
        out = list(by_id.values())
        if not out:
            self.f.add("fatal", "NO_AGENCY", "agency.txt", "agency.txt has no agency")
            raise Fatal("no agency")
        for a in out:
            try:
                ZoneInfo(a.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                self.f.add(
                    "fatal",
                    "UNKNOWN_TIMEZONE",
                    "agency.txt",
                    f"agency_timezone {a.timezone!r} is not a known time zone",
                    a.agency_id or a.name,
                )
                raise Fatal("time zone") from None
        if len({a.timezone for a in out}) > 1:
            self.f.add(
                "warning",
                "TIMEZONES_DIFFER",
                "agency.txt",
                f"agencies name different time zones; the first, {out[0].timezone}, is used",
            )
        if len(out) > 1 and any(not a.agency_id for a in out):
            self.f.add(
                "warning",
                "MISSING_AGENCY_ID",
                "agency.txt",
                "a feed with several agencies needs agency_id on each",
            )
        return out

    def _stops(self) -> list[StopRow]:
        table = self._required_table(
            "stops.txt",
            (
                "stop_id",
                "stop_name",
                "stop_lat",
                "stop_lon",
                "location_type",
                "parent_station",
                "platform_code",
                "stop_code",
            ),
        )
        out: dict[str, StopRow] = {}
        for stop_id, name, lat_text, lon_text, kind_text, parent, platform, code in table:
            if not stop_id:
                self.f.invalid("stops.txt", "stop_id (empty)", "")
                continue
            if stop_id in out:
                self.f.duplicate("stops.txt", stop_id)
                continue
            try:
                kind = int_or(kind_text, 0)
            except ValueError:
                self.f.invalid("stops.txt", "location_type", stop_id)
                continue
            try:
                lat, lon = float(lat_text), float(lon_text)
                if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
                    raise ValueError
                if math.isnan(lat) or math.isnan(lon):
                    raise ValueError
            except ValueError:
                self.f.add(
                    "error",
                    "INVALID_COORDINATES",
                    "stops.txt",
                    "missing or impossible coordinates (stop skipped)",
                    stop_id,
                )
                continue
            out[stop_id] = StopRow(
                stop_id,
                name,
                lat,
                lon,
                kind,
                optional(parent),
                optional(platform),
                optional(code),
            )
        for s in list(out.values()):
            if s.parent_station is not None and s.parent_station not in out:
                self.f.add(
                    "warning",
                    "UNKNOWN_PARENT_STATION",
                    "stops.txt",
                    "parent_station is not a stop of the feed (dropped)",
                    s.stop_id,
                )
                out[s.stop_id] = replace(s, parent_station=None)
        return list(out.values())

    def _routes(self, agency_ids: set[str], agencies: list[AgencyRow]) -> list[RouteRow]:
        table = self._required_table(
            "routes.txt",
            (
                "route_id",
                "agency_id",
                "route_short_name",
                "route_long_name",
                "route_type",
                "route_color",
                "route_text_color",
            ),
        )
        single = agencies[0].agency_id if len(agencies) == 1 else None
        out: dict[str, RouteRow] = {}
        for route_id, agency_id, short, long_, type_text, color, text_color in table:
            if route_id in out:
                self.f.duplicate("routes.txt", route_id)
                continue
            if not agency_id and single is not None:
                agency_id = single
            if agency_id not in agency_ids:
                self.f.unknown("routes.txt", "agency", route_id)
                continue
            try:
                route_type = int(type_text)
            except ValueError:
                self.f.invalid("routes.txt", "route_type", route_id)
                continue
            out[route_id] = RouteRow(
                route_id,
                agency_id,
                optional(short),
                optional(long_),
                route_type,
                optional(color.lstrip("#")),
                optional(text_color.lstrip("#")),
            )
        return list(out.values())

    def _calendars(self) -> list[CalendarRow]:
        table = self._table(
            "calendar.txt",
            REQUIRED_COLUMNS["calendar.txt"],
        )
        out: dict[str, CalendarRow] = {}
        for row in table or ():
            service_id = row[0]
            if service_id in out:
                self.f.duplicate("calendar.txt", service_id)
                continue
            try:
                days = tuple(flag(v) for v in row[1:8])
                start, end = parse_date(row[8]), parse_date(row[9])
            except ValueError:
                self.f.invalid("calendar.txt", "weekday flag or date", service_id)
                continue
            out[service_id] = CalendarRow(service_id, days, start, end)  # type: ignore[arg-type]
        return list(out.values())

    def _calendar_dates(self) -> list[CalendarDateRow]:
        table = self._table("calendar_dates.txt", ("service_id", "date", "exception_type"))
        out: dict[tuple[str, date], CalendarDateRow] = {}
        for service_id, day_text, kind in table or ():
            try:
                day = parse_date(day_text)
                if kind not in ("1", "2"):
                    raise ValueError(kind)
            except ValueError:
                self.f.invalid("calendar_dates.txt", "date or exception_type", service_id)
                continue
            if (service_id, day) in out:
                self.f.duplicate("calendar_dates.txt", f"{service_id} {day_text}")
                continue
            out[(service_id, day)] = CalendarDateRow(service_id, day, kind == "1")
        return list(out.values())

    def _trips(self, route_ids: set[str], services: set[str]) -> list[TripRow]:
        table = self._required_table(
            "trips.txt",
            (
                "trip_id",
                "route_id",
                "service_id",
                "trip_headsign",
                "direction_id",
                "trip_short_name",
            ),
        )
        out: dict[str, TripRow] = {}
        for trip_id, route_id, service_id, headsign, direction, short in table:
            if trip_id in out:
                self.f.duplicate("trips.txt", trip_id)
                continue
            if route_id not in route_ids:
                self.f.unknown("trips.txt", "route", trip_id)
                continue
            if service_id not in services:
                self.f.unknown("trips.txt", "service", trip_id)
                continue
            try:
                direction_id = int(direction) if direction else None
            except ValueError:
                self.f.invalid("trips.txt", "direction_id", trip_id)
                continue
            out[trip_id] = TripRow(
                trip_id,
                route_id,
                service_id,
                optional(headsign),
                direction_id,
                optional(short),
            )
        return list(out.values())

    def _frequencies(self, trip_ids: set[str]) -> list[FrequencyRow]:
        table = self._table(
            "frequencies.txt",
            ("trip_id", "start_time", "end_time", "headway_secs", "exact_times"),
        )
        out: dict[tuple[str, int], FrequencyRow] = {}
        for trip_id, start_text, end_text, headway_text, exact in table or ():
            if trip_id not in trip_ids:
                self.f.unknown("frequencies.txt", "trip", trip_id)
                continue
            try:
                start, end = parse_time(start_text), parse_time(end_text)
                headway = int(headway_text)
                if start is None or end is None or headway <= 0 or end <= start:
                    raise ValueError
            except ValueError:
                self.f.add(
                    "error",
                    "INVALID_TIME",
                    "frequencies.txt",
                    "a window or headway is not valid (row skipped)",
                    trip_id,
                )
                continue
            if (trip_id, start) in out:
                self.f.duplicate("frequencies.txt", f"{trip_id} {start_text}")
                continue
            out[(trip_id, start)] = FrequencyRow(trip_id, start, end, headway, exact == "1")
        return list(out.values())

    def _transfers(self, stop_ids: set[str]) -> list[TransferRow]:
        table = self._table(
            "transfers.txt",
            (
                "from_stop_id",
                "to_stop_id",
                "transfer_type",
                "min_transfer_time",
                "from_route_id",
                "to_route_id",
                "from_trip_id",
                "to_trip_id",
            ),
        )
        out: dict[tuple[str, str], TransferRow] = {}
        for a, b, kind_text, min_text, *specific in table or ():
            key = f"{a}>{b}"
            if any(specific):
                self.f.add(
                    "info",
                    "SPECIFIC_TRANSFER",
                    "transfers.txt",
                    "a transfer for given routes or trips (not used: footpaths are between stops)",
                    key,
                )
                continue
            if a not in stop_ids or b not in stop_ids:
                self.f.unknown("transfers.txt", "stop", key)
                continue
            try:
                kind = int_or(kind_text, 0)
                minimum = int(min_text) if min_text else None
                if minimum is not None and minimum < 0:
                    raise ValueError
            except ValueError:
                self.f.invalid("transfers.txt", "transfer_type or min_transfer_time", key)
                continue
            if (a, b) in out:
                self.f.duplicate("transfers.txt", key)
                continue
            out[(a, b)] = TransferRow(a, b, kind, minimum)
        return list(out.values())

    def _feed_version(self) -> str | None:
        table = self._table("feed_info.txt", ("feed_version",))
        version: str | None = None
        for (value,) in table or ():
            version = version or optional(value)
        return version


# ---------------------------------------------------------------------------- convenience


class GtfsFeedUnusable(ValueError):
    """The zip has a fatal finding; `findings` says which."""

    def __init__(self, findings: Iterable[GtfsFinding]) -> None:
        self.findings = [f for f in findings if f.severity == "fatal"]
        super().__init__("; ".join(f.message for f in self.findings) or "unusable feed")


def timetable_from_feed(
    gtfs: GtfsFeed,
    *,
    feed: str,
    footpath_radius_m: float = DEFAULT_FOOTPATH_RADIUS_M,
    walking_speed_kmh: float = DEFAULT_WALKING_SPEED_KMH,
) -> Timetable:
    if gtfs.fatal:
        raise GtfsFeedUnusable(gtfs.findings)
    footpaths = footpath_rows(
        nearby_stop_pairs(gtfs.stops, footpath_radius_m),
        gtfs.transfers,
        gtfs.stops,
        walking_speed_kmh,
    )
    rows = TimetableRows(
        agencies=gtfs.agencies,
        stops=gtfs.stops,
        routes=gtfs.routes,
        trips=gtfs.trips,
        stop_times=gtfs.stop_times,
        calendars=gtfs.calendars,
        calendar_dates=gtfs.calendar_dates,
        frequencies=gtfs.frequencies,
        footpaths=footpaths,
    )
    return build_timetable(rows, feed=feed, version=gtfs.sha256[:12])


def timetable_from_zip(
    source: str | Path | bytes,
    *,
    feed: str,
    footpath_radius_m: float = DEFAULT_FOOTPATH_RADIUS_M,
    walking_speed_kmh: float = DEFAULT_WALKING_SPEED_KMH,
) -> Timetable:
    """A GTFS zip's timetable without a database: the same rows and footpath rule as a feed
    loaded by `app/transit/loader.py` (its version here: the zip's sha256, first 12 digits).
    Raises `GtfsFeedUnusable` for a zip with a fatal finding."""
    return timetable_from_feed(
        read_gtfs(source),
        feed=feed,
        footpath_radius_m=footpath_radius_m,
        walking_speed_kmh=walking_speed_kmh,
    )
