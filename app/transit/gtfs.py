"""Reading a GTFS zip into the typed rows of `app/transit/timetable.py`, with findings.

The zip's members are streamed through the ``csv`` module (``utf-8-sig``, so a byte-order mark
is dropped, and reported); nothing but the parsed rows is held. Like the GBFS side
(`adapters/gbfs/findings.py`), what deviates from the spec is reported as *findings*, tallied
per (severity, code, file, description) with a count and a few example ids, so a feed that
repeats one deviation on 100,000 rows stays readable:

- ``fatal``: the feed cannot be loaded (a required file or column missing, not a zip, an
  unknown time zone); nothing of it is used.
- ``error``: rows skipped (a bad time, coordinates, a duplicate key, a reference to something
  unknown, a trip with fewer than two stop times or without a first or last time). The rest
  of the feed loads.
- ``warning``: accepted as best understood (a parent station that is not in the feed).
- ``info``: allowed and noted (a time past 24:00:00, a byte-order mark, a missing optional
  file, an extension file such as 511's ``farezone_attributes.txt``).

Footpaths (`footpath_rows`): every pair of distinct stops (``location_type`` 0) within the
radius, both ways, at the walking speed; then ``transfers.txt``: a general transfer between
two stops (no route or trip given) is a footpath of its ``min_transfer_time``, or of the walk
between them when it gives none; ``transfer_type`` 3 (not possible) removes the pair. The
loader computes the same with PostGIS (`app/transit/loader.py`); `timetable_from_zip` here
needs no database.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.transit.timetable import (
    AgencyRow,
    CalendarDateRow,
    CalendarRow,
    FootpathRow,
    FrequencyRow,
    RouteRow,
    StopRow,
    StopTimeRow,
    Timetable,
    TripRow,
    build_timetable,
)
from geo.distance import short_geodesic_meters

__all__ = [
    "DEFAULT_FOOTPATH_RADIUS_M",
    "DEFAULT_WALKING_SPEED_KMH",
    "GtfsFeed",
    "GtfsFinding",
    "Severity",
    "TransferRow",
    "footpath_rows",
    "nearby_stop_pairs",
    "read_gtfs",
    "timetable_from_zip",
    "walking_seconds",
]

Severity = Literal["fatal", "error", "warning", "info"]

# The defaults of the settings the loader reads (app/platform/settings/transit.py).
DEFAULT_FOOTPATH_RADIUS_M = 400.0
DEFAULT_WALKING_SPEED_KMH = 4.8  # QuoteSettings.walking_speed_kmh, the walking model's speed

_REQUIRED_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
_READ_OPTIONAL = (
    "calendar.txt",
    "calendar_dates.txt",
    "frequencies.txt",
    "transfers.txt",
    "feed_info.txt",
)
# Files of the GTFS Schedule reference this reader does not need: present, they are fine.
_SPEC_FILES = frozenset(
    {
        *_REQUIRED_FILES,
        *_READ_OPTIONAL,
        "shapes.txt",
        "fare_attributes.txt",
        "fare_rules.txt",
        "fare_media.txt",
        "fare_products.txt",
        "fare_leg_rules.txt",
        "fare_leg_join_rules.txt",
        "fare_transfer_rules.txt",
        "rider_categories.txt",
        "timeframes.txt",
        "areas.txt",
        "stop_areas.txt",
        "networks.txt",
        "route_networks.txt",
        "location_groups.txt",
        "location_group_stops.txt",
        "locations.geojson",
        "booking_rules.txt",
        "pathways.txt",
        "levels.txt",
        "translations.txt",
        "attributions.txt",
    }
)
_REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "agency.txt": ("agency_name", "agency_timezone"),
    "stops.txt": ("stop_id",),
    "routes.txt": ("route_id", "route_type"),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id", "stop_id", "stop_sequence"),
    "calendar.txt": (
        "service_id",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "start_date",
        "end_date",
    ),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
    "frequencies.txt": ("trip_id", "start_time", "end_time", "headway_secs"),
    "transfers.txt": ("from_stop_id", "to_stop_id"),
    "feed_info.txt": (),
}
_EXAMPLES = 3
_BOM = b"\xef\xbb\xbf"
_DAY_SECONDS = 86_400


@dataclass(slots=True)
class GtfsFinding:
    """One kind of deviation in one file, with how many rows showed it and a few of them."""

    severity: Severity
    code: str  # stable, e.g. "UNKNOWN_REFERENCE", "TIME_PAST_MIDNIGHT"
    file: str  # the GTFS file, e.g. "stop_times.txt"; "" for the zip itself
    message: str
    count: int = 1
    examples: list[str] = field(default_factory=list)  # record ids

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "file": self.file,
            "message": self.message,
            "count": self.count,
            "examples": list(self.examples),
        }

    def line(self) -> str:
        """One line for a terminal: severity, code, file, message, count, examples."""
        times = f" ({self.count} times)" if self.count > 1 else ""
        shown = f"; e.g. {', '.join(self.examples)}" if self.examples else ""
        where = f" {self.file}" if self.file else ""
        return f"{self.severity:<7} {self.code:<26}{where}: {self.message}{times}{shown}"


class _Findings:
    """Tallies findings in first-seen order (``description`` must not carry row values)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str, str], GtfsFinding] = {}

    def add(
        self, severity: Severity, code: str, file: str, message: str, record: str | None = None
    ) -> None:
        key = (severity, code, file, message)
        found = self._by_key.get(key)
        if found is None:
            found = GtfsFinding(severity, code, file, message, count=0)
            self._by_key[key] = found
        found.count += 1
        if record is not None and len(found.examples) < _EXAMPLES:
            found.examples.append(record)

    def all(self) -> list[GtfsFinding]:
        return list(self._by_key.values())


class _Fatal(Exception):
    """The feed cannot be used; the finding is already recorded."""


@dataclass(frozen=True, slots=True)
class TransferRow:
    """A general ``transfers.txt`` row (between two stops, no route or trip given)."""

    from_stop_id: str
    to_stop_id: str
    transfer_type: int
    min_transfer_time: int | None


@dataclass(frozen=True, slots=True)
class GtfsFeed:
    """A feed's usable rows (those skipped are in `findings`), checked and cross-referenced:
    every trip's route and service, every stop time's trip and stop exist; stop times are
    grouped by trip, in stop-sequence order, and every trip has at least two, the first and
    last with a time."""

    sha256: str
    feed_version: str | None
    agencies: tuple[AgencyRow, ...]
    stops: tuple[StopRow, ...]
    routes: tuple[RouteRow, ...]
    trips: tuple[TripRow, ...]
    stop_times: tuple[StopTimeRow, ...]
    calendars: tuple[CalendarRow, ...]
    calendar_dates: tuple[CalendarDateRow, ...]
    frequencies: tuple[FrequencyRow, ...]
    transfers: tuple[TransferRow, ...]
    findings: tuple[GtfsFinding, ...]

    @property
    def fatal(self) -> bool:
        return any(f.severity == "fatal" for f in self.findings)

    @property
    def timezone(self) -> str | None:
        return self.agencies[0].timezone if self.agencies else None

    def counts(self) -> dict[str, int]:
        return {
            "agencies": len(self.agencies),
            "stops": len(self.stops),
            "routes": len(self.routes),
            "trips": len(self.trips),
            "stop_times": len(self.stop_times),
            "calendars": len(self.calendars),
            "calendar_dates": len(self.calendar_dates),
            "frequencies": len(self.frequencies),
            "transfers": len(self.transfers),
        }

    def severity_counts(self) -> dict[str, int]:
        out = {"fatal": 0, "error": 0, "warning": 0, "info": 0}
        for f in self.findings:
            out[f.severity] += f.count
        return out


# ---------------------------------------------------------------------------- values


def parse_time(text: str) -> int | None:
    """``H:MM:SS`` (hours may pass 24) to seconds; None for an empty value. Raises ValueError."""
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(text)
    h, m, s = (int(p) for p in parts)
    if h < 0 or not 0 <= m < 60 or not 0 <= s < 60 or len(parts[1]) != 2 or len(parts[2]) != 2:
        raise ValueError(text)
    return h * 3600 + m * 60 + s


def _parse_date(text: str) -> date:
    if len(text) != 8 or not text.isdigit():
        raise ValueError(text)
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _int(text: str, default: int) -> int:
    return int(text) if text else default


def _optional(text: str) -> str | None:
    return text or None


# ---------------------------------------------------------------------------- the zip


class _Zip:
    """The zip's members by GTFS file name, wherever one folder level put them."""

    def __init__(self, archive: zipfile.ZipFile, findings: _Findings) -> None:
        self.archive = archive
        self.findings = findings
        self.members: dict[str, str] = {}
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        at_root = {n for n in names if "/" not in n}
        nested = [n for n in names if "/" in n]
        if not any(n in at_root for n in _REQUIRED_FILES) and nested:
            # A common packaging slip: the files in one folder inside the zip.
            folders = {n.rsplit("/", 1)[0] for n in nested}
            best = max(folders, key=lambda d: sum(f"{d}/{r}" in names for r in _REQUIRED_FILES))
            if any(f"{best}/{r}" in names for r in _REQUIRED_FILES):
                findings.add(
                    "warning",
                    "FILES_IN_FOLDER",
                    "",
                    "the GTFS files are in a folder inside the zip, not at its root",
                    best,
                )
                for n in nested:
                    folder, _, base = n.rpartition("/")
                    if folder == best:
                        self.members[base] = n
                nested = [n for n in nested if n.rsplit("/", 1)[0] != best]
        for n in sorted(at_root):
            self.members.setdefault(n, n)
        for n in nested:
            findings.add("info", "STRAY_FILE", "", "a file in a folder of the zip (ignored)", n)
        for base in sorted(self.members):
            if base in _SPEC_FILES:
                continue
            if base.endswith(".txt"):
                findings.add(
                    "info",
                    "EXTENSION_FILE",
                    base,
                    "a file GTFS does not define (an extension; ignored)",
                )
            else:
                findings.add("info", "STRAY_FILE", base, "not a GTFS file (ignored)")

    def has(self, name: str) -> bool:
        return name in self.members

    def table(self, name: str, columns: tuple[str, ...], *, required: bool) -> _Table | None:
        """The file's header checked and its rows streamed, or None when it cannot be read
        (a fatal finding for a required file, an error for an optional one)."""
        member = self.members.get(name)
        if member is None:
            return None
        with self.archive.open(member) as raw:
            if raw.read(3) == _BOM:
                self.findings.add(
                    "info", "BYTE_ORDER_MARK", name, "starts with a byte-order mark (ignored)"
                )
        stream = io.TextIOWrapper(self.archive.open(member), encoding="utf-8-sig", newline="")
        reader = csv.reader(stream)
        try:
            header = next(reader, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            self._unreadable(name, stream, required, f"cannot be read ({exc.__class__.__name__})")
            return None
        if header is None:
            self._unreadable(name, stream, required, "is empty (no header)")
            return None
        index = {h.strip(): i for i, h in enumerate(header)}
        missing = [c for c in _REQUIRED_COLUMNS.get(name, ()) if c not in index]
        if missing:
            self._unreadable(
                name, stream, required, f"lacks the required column(s) {', '.join(missing)}"
            )
            return None
        return _Table(name, stream, reader, [index.get(c, -1) for c in columns], self.findings)

    def _unreadable(self, name: str, stream: IO[str], required: bool, why: str) -> None:
        stream.close()
        if required:
            self.findings.add("fatal", "UNREADABLE_FILE", name, f"{name} {why}")
            raise _Fatal(name)
        self.findings.add("error", "UNREADABLE_FILE", name, f"{name} {why}; the file is ignored")


class _Table:
    """One file's rows, each a list of the asked-for columns' values (stripped; "" when the
    column is absent or the row short)."""

    def __init__(
        self,
        name: str,
        stream: IO[str],
        reader: Any,
        positions: list[int],
        findings: _Findings,
    ) -> None:
        self.name = name
        self._stream = stream
        self._reader = reader
        self._positions = positions
        self._findings = findings

    def __iter__(self) -> Iterator[list[str]]:
        positions = self._positions
        try:
            for row in self._reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                n = len(row)
                yield [row[p].strip() if 0 <= p < n else "" for p in positions]
        except (UnicodeDecodeError, csv.Error) as exc:
            self._findings.add(
                "error",
                "UNREADABLE_FILE",
                self.name,
                f"reading stopped at a malformed line ({exc.__class__.__name__}); "
                "the rows after it are ignored",
            )
        finally:
            self._stream.close()


# ---------------------------------------------------------------------------- the reader


def _sha256_of(source: str | Path | bytes) -> str:
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_gtfs(source: str | Path | bytes) -> GtfsFeed:
    """Read a GTFS zip (a path or its bytes). Never raises for what is in the zip: a feed that
    cannot be used comes back with a ``fatal`` finding and no rows. An unreadable path
    raises OSError."""
    sha256 = _sha256_of(source)
    findings = _Findings()
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except zipfile.BadZipFile:
        findings.add("fatal", "NOT_A_ZIP", "", "the source is not a zip file")
        return _empty(sha256, findings)
    with archive:
        try:
            return _Reader(_Zip(archive, findings), findings, sha256).read()
        except _Fatal:
            return _empty(sha256, findings)


def _empty(sha256: str, findings: _Findings) -> GtfsFeed:
    return GtfsFeed(
        sha256, None, (), (), (), (), (), (), (), (), (), findings=tuple(findings.all())
    )


class _Reader:
    def __init__(self, zf: _Zip, findings: _Findings, sha256: str) -> None:
        self.zf = zf
        self.f = findings
        self.sha256 = sha256

    def read(self) -> GtfsFeed:
        missing = [n for n in _REQUIRED_FILES if not self.zf.has(n)]
        if not self.zf.has("calendar.txt") and not self.zf.has("calendar_dates.txt"):
            missing.append("calendar.txt or calendar_dates.txt")
        for name in missing:
            self.f.add("fatal", "MISSING_REQUIRED_FILE", name, f"{name} is required", name)
        if missing:
            raise _Fatal("missing files")
        for name in _READ_OPTIONAL:
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
        stop_times, trips = self._stop_times(trips, stop_ids)
        trip_ids = {t.trip_id for t in trips}
        frequencies = self._frequencies(trip_ids)
        transfers = self._transfers(stop_ids)
        return GtfsFeed(
            sha256=self.sha256,
            feed_version=self._feed_version(),
            agencies=tuple(agencies),
            stops=tuple(stops),
            routes=tuple(routes),
            trips=tuple(trips),
            stop_times=tuple(stop_times),
            calendars=tuple(calendars),
            calendar_dates=tuple(calendar_dates),
            frequencies=tuple(frequencies),
            transfers=tuple(transfers),
            findings=tuple(self.f.all()),
        )

    def _table(self, name: str, columns: tuple[str, ...], *, required: bool) -> _Table | None:
        return self.zf.table(name, columns, required=required)

    def _duplicate(self, name: str, key: str) -> None:
        self.f.add(
            "error", "DUPLICATE_KEY", name, "a row repeats an earlier row's key (skipped)", key
        )

    def _unknown(self, name: str, what: str, key: str) -> None:
        self.f.add(
            "error", "UNKNOWN_REFERENCE", name, f"refers to an unknown {what} (row skipped)", key
        )

    def _invalid(self, name: str, what: str, key: str) -> None:
        self.f.add("error", "INVALID_VALUE", name, f"invalid {what} (row skipped)", key)

    # -- files

    def _agencies(self) -> list[AgencyRow]:
        table = self._table(
            "agency.txt", ("agency_id", "agency_name", "agency_timezone"), required=True
        )
        assert table is not None
        out: list[AgencyRow] = []
        seen: set[str] = set()
        for agency_id, name, zone in table:
            if agency_id in seen:
                self._duplicate("agency.txt", agency_id)
                continue
            seen.add(agency_id)
            out.append(AgencyRow(agency_id, name, zone))
        if not out:
            self.f.add("fatal", "NO_AGENCY", "agency.txt", "agency.txt has no agency")
            raise _Fatal("no agency")
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
                raise _Fatal("time zone") from None
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
        table = self._table(
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
            required=True,
        )
        assert table is not None
        out: list[StopRow] = []
        seen: set[str] = set()
        for stop_id, name, lat_text, lon_text, kind_text, parent, platform, code in table:
            if not stop_id:
                self._invalid("stops.txt", "stop_id (empty)", "")
                continue
            if stop_id in seen:
                self._duplicate("stops.txt", stop_id)
                continue
            try:
                kind = _int(kind_text, 0)
            except ValueError:
                self._invalid("stops.txt", "location_type", stop_id)
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
            seen.add(stop_id)
            out.append(
                StopRow(
                    stop_id,
                    name,
                    lat,
                    lon,
                    kind,
                    _optional(parent),
                    _optional(platform),
                    _optional(code),
                )
            )
        parents = {s.stop_id for s in out}
        for i, s in enumerate(out):
            if s.parent_station is not None and s.parent_station not in parents:
                self.f.add(
                    "warning",
                    "UNKNOWN_PARENT_STATION",
                    "stops.txt",
                    "parent_station is not a stop of the feed (dropped)",
                    s.stop_id,
                )
                out[i] = StopRow(
                    s.stop_id, s.name, s.lat, s.lon, s.location_type, None, s.platform_code, s.code
                )
        return out

    def _routes(self, agency_ids: set[str], agencies: list[AgencyRow]) -> list[RouteRow]:
        table = self._table(
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
            required=True,
        )
        assert table is not None
        single = agencies[0].agency_id if len(agencies) == 1 else None
        out: list[RouteRow] = []
        seen: set[str] = set()
        for route_id, agency_id, short, long_, type_text, color, text_color in table:
            if route_id in seen:
                self._duplicate("routes.txt", route_id)
                continue
            if not agency_id and single is not None:
                agency_id = single
            if agency_id not in agency_ids:
                self._unknown("routes.txt", "agency", route_id)
                continue
            try:
                route_type = int(type_text)
            except ValueError:
                self._invalid("routes.txt", "route_type", route_id)
                continue
            seen.add(route_id)
            out.append(
                RouteRow(
                    route_id,
                    agency_id,
                    _optional(short),
                    _optional(long_),
                    route_type,
                    _optional(color.lstrip("#")),
                    _optional(text_color.lstrip("#")),
                )
            )
        return out

    def _calendars(self) -> list[CalendarRow]:
        table = self._table(
            "calendar.txt",
            (
                "service_id",
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
                "start_date",
                "end_date",
            ),
            required=False,
        )
        out: list[CalendarRow] = []
        seen: set[str] = set()
        for row in table or ():
            service_id = row[0]
            if service_id in seen:
                self._duplicate("calendar.txt", service_id)
                continue
            try:
                days = tuple(_flag(v) for v in row[1:8])
                start, end = _parse_date(row[8]), _parse_date(row[9])
            except ValueError:
                self._invalid("calendar.txt", "weekday flag or date", service_id)
                continue
            seen.add(service_id)
            out.append(CalendarRow(service_id, days, start, end))  # type: ignore[arg-type]
        return out

    def _calendar_dates(self) -> list[CalendarDateRow]:
        table = self._table(
            "calendar_dates.txt", ("service_id", "date", "exception_type"), required=False
        )
        out: list[CalendarDateRow] = []
        seen: set[tuple[str, date]] = set()
        for service_id, day_text, kind in table or ():
            try:
                day = _parse_date(day_text)
                if kind not in ("1", "2"):
                    raise ValueError(kind)
            except ValueError:
                self._invalid("calendar_dates.txt", "date or exception_type", service_id)
                continue
            if (service_id, day) in seen:
                self._duplicate("calendar_dates.txt", f"{service_id} {day_text}")
                continue
            seen.add((service_id, day))
            out.append(CalendarDateRow(service_id, day, kind == "1"))
        return out

    def _trips(self, route_ids: set[str], services: set[str]) -> list[TripRow]:
        table = self._table(
            "trips.txt",
            (
                "trip_id",
                "route_id",
                "service_id",
                "trip_headsign",
                "direction_id",
                "trip_short_name",
            ),
            required=True,
        )
        assert table is not None
        out: list[TripRow] = []
        seen: set[str] = set()
        for trip_id, route_id, service_id, headsign, direction, short in table:
            if trip_id in seen:
                self._duplicate("trips.txt", trip_id)
                continue
            if route_id not in route_ids:
                self._unknown("trips.txt", "route", trip_id)
                continue
            if service_id not in services:
                self._unknown("trips.txt", "service", trip_id)
                continue
            try:
                direction_id = int(direction) if direction else None
            except ValueError:
                self._invalid("trips.txt", "direction_id", trip_id)
                continue
            seen.add(trip_id)
            out.append(
                TripRow(
                    trip_id,
                    route_id,
                    service_id,
                    _optional(headsign),
                    direction_id,
                    _optional(short),
                )
            )
        return out

    def _time(self, text: str, cache: dict[str, int | None]) -> int | None:
        """A stop time's time, parsed once per distinct text (a feed repeats them)."""
        try:
            return cache[text]
        except KeyError:
            pass
        seconds = parse_time(text)  # ValueError goes to the caller
        cache[text] = seconds
        return seconds

    def _stop_times(
        self, trips: list[TripRow], stop_ids: set[str]
    ) -> tuple[list[StopTimeRow], list[TripRow]]:
        table = self._table(
            "stop_times.txt",
            (
                "trip_id",
                "stop_sequence",
                "stop_id",
                "arrival_time",
                "departure_time",
                "stop_headsign",
                "pickup_type",
                "drop_off_type",
            ),
            required=True,
        )
        assert table is not None
        name = "stop_times.txt"
        by_trip: dict[str, dict[int, StopTimeRow]] = {t.trip_id: {} for t in trips}
        cache: dict[str, int | None] = {}
        late: set[str] = set()
        for trip_id, seq_text, stop_id, arr_text, dep_text, headsign, pickup, drop in table:
            run = by_trip.get(trip_id)
            if run is None:
                self._unknown(name, "trip", trip_id)
                continue
            record = f"{trip_id}#{seq_text}"
            if stop_id not in stop_ids:
                self._unknown(name, "stop", record)
                continue
            try:
                seq = int(seq_text)
            except ValueError:
                self._invalid(name, "stop_sequence", record)
                continue
            try:
                arrival = self._time(arr_text, cache)
                departure = self._time(dep_text, cache)
            except ValueError:
                self.f.add(
                    "error", "INVALID_TIME", name, "a time is not H:MM:SS (row skipped)", record
                )
                continue
            try:
                pickup_type = _int(pickup, 0)
                drop_off_type = _int(drop, 0)
            except ValueError:
                self._invalid(name, "pickup_type or drop_off_type", record)
                continue
            if seq in run:
                self._duplicate(name, record)
                continue
            if (arrival is not None and arrival >= _DAY_SECONDS) or (
                departure is not None and departure >= _DAY_SECONDS
            ):
                late.add(trip_id)
            run[seq] = StopTimeRow(
                trip_id,
                seq,
                stop_id,
                arrival,
                departure,
                headsign or None,
                pickup_type,
                drop_off_type,
            )
        if late:
            # Allowed (a trip that runs past midnight of its service day): noted once per trip.
            for trip_id in sorted(late)[:_EXAMPLES]:
                self.f.add("info", "TIME_PAST_MIDNIGHT", name, "a trip runs past 24:00:00", trip_id)
            for _ in range(len(late) - min(len(late), _EXAMPLES)):
                self.f.add("info", "TIME_PAST_MIDNIGHT", name, "a trip runs past 24:00:00")
        rows: list[StopTimeRow] = []
        kept: list[TripRow] = []
        for trip in trips:
            run = by_trip[trip.trip_id]
            ordered = [run[s] for s in sorted(run)]
            if len(ordered) < 2:
                self.f.add(
                    "error",
                    "TRIP_TOO_SHORT",
                    "trips.txt",
                    "a trip with fewer than two usable stop times (skipped)",
                    trip.trip_id,
                )
                continue
            first, last = ordered[0], ordered[-1]
            if (first.arrival is None and first.departure is None) or (
                last.arrival is None and last.departure is None
            ):
                self.f.add(
                    "error",
                    "TRIP_WITHOUT_END_TIMES",
                    "trips.txt",
                    "a trip's first or last stop time has no time (skipped)",
                    trip.trip_id,
                )
                continue
            kept.append(trip)
            rows.extend(ordered)
        return rows, kept

    def _frequencies(self, trip_ids: set[str]) -> list[FrequencyRow]:
        table = self._table(
            "frequencies.txt",
            ("trip_id", "start_time", "end_time", "headway_secs", "exact_times"),
            required=False,
        )
        out: list[FrequencyRow] = []
        seen: set[tuple[str, int]] = set()
        for trip_id, start_text, end_text, headway_text, exact in table or ():
            if trip_id not in trip_ids:
                self._unknown("frequencies.txt", "trip", trip_id)
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
            if (trip_id, start) in seen:
                self._duplicate("frequencies.txt", f"{trip_id} {start_text}")
                continue
            seen.add((trip_id, start))
            out.append(FrequencyRow(trip_id, start, end, headway, exact == "1"))
        return out

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
            required=False,
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
                self._unknown("transfers.txt", "stop", key)
                continue
            try:
                kind = _int(kind_text, 0)
                minimum = int(min_text) if min_text else None
                if minimum is not None and minimum < 0:
                    raise ValueError
            except ValueError:
                self._invalid("transfers.txt", "transfer_type or min_transfer_time", key)
                continue
            if (a, b) in out:
                self._duplicate("transfers.txt", key)
                continue
            out[(a, b)] = TransferRow(a, b, kind, minimum)
        return list(out.values())

    def _feed_version(self) -> str | None:
        table = self._table("feed_info.txt", ("feed_version",), required=False)
        version: str | None = None
        for (value,) in table or ():
            version = version or _optional(value)
        return version


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(text)
    return text == "1"


# ---------------------------------------------------------------------------- footpaths


def walking_seconds(meters: float, walking_speed_kmh: float) -> int:
    """The walk's time, whole seconds rounded up (the loader's SQL computes the same)."""
    return math.ceil(meters / (walking_speed_kmh / 3.6))


def nearby_stop_pairs(
    stops: Iterable[StopRow], radius_m: float
) -> Iterator[tuple[str, str, float]]:
    """Every ordered pair of distinct stops (``location_type`` 0) at most ``radius_m`` apart,
    with the geodesic distance: a grid of cells about the radius wide, so each stop is compared
    with its neighbours' cells only."""
    points = [s for s in stops if s.location_type == 0]
    if not points:
        return
    cell_lat = radius_m / 111_000.0  # a degree of latitude is at least 110.57 km
    cells: dict[tuple[int, int], list[StopRow]] = {}
    max_lat = max(abs(s.lat) for s in points)
    # A degree of longitude shrinks with the cosine of the latitude: cells as wide in metres
    # as they are high at the feed's highest latitude cover at least the radius everywhere.
    cell_lon = min(360.0, cell_lat / max(math.cos(math.radians(min(max_lat, 89.0))), 1e-6))
    for s in points:
        cells.setdefault((math.floor(s.lat / cell_lat), math.floor(s.lon / cell_lon)), []).append(s)
    for (i, j), members in cells.items():
        around = [
            other
            for di in (-1, 0, 1)
            for dj in (-1, 0, 1)
            for other in cells.get((i + di, j + dj), ())
        ]
        for a in members:
            for b in around:
                if a.stop_id == b.stop_id:
                    continue
                meters = short_geodesic_meters(a.lat, a.lon, b.lat, b.lon)
                if meters <= radius_m:
                    yield a.stop_id, b.stop_id, meters


def footpath_rows(
    nearby: Iterable[tuple[str, str, float]],
    transfers: Iterable[TransferRow],
    stops: Iterable[StopRow],
    walking_speed_kmh: float,
) -> list[FootpathRow]:
    """The footpaths from the stops near each other (``nearby``: ordered pairs with their
    distance, by `nearby_stop_pairs` or PostGIS) and the general transfers: the rule of the
    module's docstring, the one both the loader and `timetable_from_zip` apply."""
    paths: dict[tuple[str, str], int] = {
        (a, b): walking_seconds(meters, walking_speed_kmh) for a, b, meters in nearby
    }
    where = {s.stop_id: (s.lat, s.lon) for s in stops}
    for t in transfers:
        pair = (t.from_stop_id, t.to_stop_id)
        if t.from_stop_id == t.to_stop_id:
            continue
        if t.transfer_type == 3:
            paths.pop(pair, None)
            continue
        if t.min_transfer_time is not None:
            paths[pair] = t.min_transfer_time
        elif pair not in paths and t.from_stop_id in where and t.to_stop_id in where:
            (lat1, lon1), (lat2, lon2) = where[t.from_stop_id], where[t.to_stop_id]
            paths[pair] = walking_seconds(
                short_geodesic_meters(lat1, lon1, lat2, lon2), walking_speed_kmh
            )
    return [FootpathRow(a, b, s) for (a, b), s in paths.items()]


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
    return build_timetable(
        feed=feed,
        version=gtfs.sha256[:12],
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
