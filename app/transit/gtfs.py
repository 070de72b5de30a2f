"""Reading a GTFS zip into the typed rows of `app/transit/timetable.py`, with findings.

The zip's members are read a block of lines at a time (UTF-8; a byte-order mark is dropped,
and reported); nothing but the parsed rows is held. A block without quotes is split on commas
whole, the ``csv`` module reads the rest (`_Table`). The stop times, the large file, are checked
column by column (`_Reader._clean_block`: sets and maps over distinct values, no Python step
per row), and, only when some row breaks a rule, row by row (`_Reader._stop_time_rows`, where
the rules and their findings live); a listener may be handed the blocks as they are read
(`read_gtfs`), which the loader copies into PostgreSQL meanwhile. Like the GBFS side
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

import collections
import csv
import hashlib
import io
import itertools
import math
import operator
import zipfile
from collections.abc import Callable, Iterable, Iterator
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
    "GtfsHead",
    "Listener",
    "Severity",
    "StopTimeColumns",
    "TransferRow",
    "feed_sha256",
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

    # The errors of a row skipped, in every file.

    def duplicate(self, name: str, key: str) -> None:
        self.add(
            "error", "DUPLICATE_KEY", name, "a row repeats an earlier row's key (skipped)", key
        )

    def unknown(self, name: str, what: str, key: str) -> None:
        self.add(
            "error", "UNKNOWN_REFERENCE", name, f"refers to an unknown {what} (row skipped)", key
        )

    def invalid(self, name: str, what: str, key: str) -> None:
        self.add("error", "INVALID_VALUE", name, f"invalid {what} (row skipped)", key)


class _Fatal(Exception):
    """The feed cannot be used; the finding is already recorded."""


@dataclass(frozen=True, slots=True)
class TransferRow:
    """A general ``transfers.txt`` row (between two stops, no route or trip given)."""

    from_stop_id: str
    to_stop_id: str
    transfer_type: int
    min_transfer_time: int | None


class StopTimeColumns:
    """A feed's stop times column by column, in the order of `GtfsFeed.stop_times`: what the
    loader copies (`records`, tuples made by C loops), and the typed rows, built on first use
    for the callers that want them (`rows`)."""

    __slots__ = (
        "_rows",
        "arrival",
        "departure",
        "drop_off_type",
        "headsign",
        "pickup_type",
        "stop_id",
        "stop_sequence",
        "trip_id",
    )

    def __init__(
        self,
        trip_id: list[str],
        stop_sequence: list[int],
        stop_id: list[str],
        arrival: list[int | None],
        departure: list[int | None],
        headsign: list[str | None],
        pickup_type: list[int],
        drop_off_type: list[int],
    ) -> None:
        self.trip_id = trip_id
        self.stop_sequence = stop_sequence
        self.stop_id = stop_id
        self.arrival = arrival
        self.departure = departure
        self.headsign = headsign
        self.pickup_type = pickup_type
        self.drop_off_type = drop_off_type
        self._rows: tuple[StopTimeRow, ...] | None = None

    @classmethod
    def of(cls, rows: Iterable[StopTimeRow]) -> StopTimeColumns:
        kept = tuple(rows)
        out = cls(
            [r.trip_id for r in kept],
            [r.stop_sequence for r in kept],
            [r.stop_id for r in kept],
            [r.arrival for r in kept],
            [r.departure for r in kept],
            [r.headsign for r in kept],
            [r.pickup_type for r in kept],
            [r.drop_off_type for r in kept],
        )
        out._rows = kept
        return out

    @classmethod
    def joined(cls, parts: list[StopTimeColumns]) -> StopTimeColumns:
        if len(parts) == 1:
            return parts[0]
        columns = [
            list(itertools.chain.from_iterable(c))
            for c in zip(*(p._columns() for p in parts), strict=True)
        ]
        return cls(*columns)

    def arranged(self, order: list[int]) -> StopTimeColumns:
        """The rows in the given order (indices)."""
        return StopTimeColumns(*(list(map(c.__getitem__, order)) for c in self._columns()))

    def __len__(self) -> int:
        return len(self.trip_id)

    def _columns(self) -> tuple[list[Any], ...]:
        return (
            self.trip_id,
            self.stop_sequence,
            self.stop_id,
            self.arrival,
            self.departure,
            self.headsign,
            self.pickup_type,
            self.drop_off_type,
        )

    def rows(self) -> tuple[StopTimeRow, ...]:
        if self._rows is None:
            self._rows = tuple(map(StopTimeRow, *self._columns()))
        return self._rows

    def records(self, *leading: Any) -> Iterator[tuple[Any, ...]]:
        """Each stop time as a tuple of its columns in `StopTimeRow`'s order, after the
        ``leading`` values (the loader's version id)."""
        # The repeated values are endless: the columns end the tuples.
        return zip(*(itertools.repeat(v) for v in leading), *self._columns(), strict=False)


@dataclass(frozen=True, slots=True)
class GtfsHead:
    """What `read_gtfs` has read before the stop times, handed to its listener: final, but for
    the trips (those that end up with fewer than two usable stop times are dropped)."""

    feed_version: str | None
    agencies: tuple[AgencyRow, ...]
    stops: tuple[StopRow, ...]
    routes: tuple[RouteRow, ...]
    trips: tuple[TripRow, ...]
    calendars: tuple[CalendarRow, ...]
    calendar_dates: tuple[CalendarDateRow, ...]
    transfers: tuple[TransferRow, ...]


# Told, from the reader's thread, the head of the feed, then blocks of stop times in the
# final order (while the feed's rows stay clean and in that order; see `read_gtfs`).
Listener = Callable[[GtfsHead | StopTimeColumns], None]


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
    stop_time_columns: StopTimeColumns
    calendars: tuple[CalendarRow, ...]
    calendar_dates: tuple[CalendarDateRow, ...]
    frequencies: tuple[FrequencyRow, ...]
    transfers: tuple[TransferRow, ...]
    findings: tuple[GtfsFinding, ...]
    # Every stop time was handed to the listener, in this order, and nothing else was.
    stop_times_streamed: bool = False

    @property
    def stop_times(self) -> tuple[StopTimeRow, ...]:
        return self.stop_time_columns.rows()

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
            "stop_times": len(self.stop_time_columns),
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
        raw = self.archive.open(member)
        blocks = _text_blocks(raw)
        try:
            first = next(blocks, "")
        except _Malformed:
            raw.close()
            self._unreadable(name, required, "cannot be read (UnicodeDecodeError)")
            return None
        if first.startswith("\ufeff"):
            self.findings.add(
                "info", "BYTE_ORDER_MARK", name, "starts with a byte-order mark (ignored)"
            )
            first = first[1:]
        if not first:
            raw.close()
            self._unreadable(name, required, "is empty (no header)")
            return None
        line, _, rest = first.partition("\n")
        try:
            header = next(csv.reader([line]), [])
        except csv.Error as exc:
            raw.close()
            self._unreadable(name, required, f"cannot be read ({exc.__class__.__name__})")
            return None
        index = {h.strip(): i for i, h in enumerate(header)}
        missing = [c for c in _REQUIRED_COLUMNS.get(name, ()) if c not in index]
        if missing:
            raw.close()
            self._unreadable(name, required, f"lacks the required column(s) {', '.join(missing)}")
            return None
        return _Table(
            name,
            itertools.chain((rest,), blocks),
            raw,
            [index.get(c, -1) for c in columns],
            self.findings,
        )

    def _unreadable(self, name: str, required: bool, why: str) -> None:
        if required:
            self.findings.add("fatal", "UNREADABLE_FILE", name, f"{name} {why}")
            raise _Fatal(name)
        self.findings.add("error", "UNREADABLE_FILE", name, f"{name} {why}; the file is ignored")


# A member is decoded and split this many bytes at a time (then to the end of the line): big
# enough that splitting is done by C loops over long strings, small enough that a large
# stop_times.txt is never held whole.
_BLOCK = 1 << 18
_CHUNK_ROWS = 1 << 14  # rows per chunk on the csv module's path


class _Malformed(Exception):
    """The member is not UTF-8 from some line on."""


def _text_blocks(raw: IO[bytes]) -> Iterator[str]:
    """The member's text in blocks of whole lines (a byte-order mark kept, for the caller to
    report). At a line that is not UTF-8: the lines before it, then _Malformed."""
    while True:
        data = raw.read(_BLOCK)
        if not data:
            return
        if not data.endswith(b"\n"):
            data += raw.readline()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            good = data[: data.rfind(b"\n", 0, exc.start) + 1]
            if good:
                yield good.decode("utf-8")
            raise _Malformed from None
        yield text


def _plain(block: str) -> bool:
    """Whether splitting the block on newlines and commas reads it as the ``csv`` module
    would: no quote, no NUL, every carriage return part of a CRLF."""
    if '"' in block or "\x00" in block:
        return False
    return "\r" not in block or block.count("\r") == block.count("\r\n")


class _Table:
    """One file's rows: the asked-for columns' values (stripped; "" when the column is absent
    or the row short), one row at a time, or column by column (`column_chunks`, large files).

    While the text has no quote (every feed seen so far) and each line of a block has as many
    fields, the block is split on commas whole and each column taken as a slice: C loops and
    no object per row (a list per row wakes the garbage collector thousands of times). From
    the first block with a quote, the ``csv`` module reads the rest. Both read the same rows;
    either way a malformed line stops the reading with a finding."""

    def __init__(
        self,
        name: str,
        blocks: Iterator[str],
        raw: IO[bytes],
        positions: list[int],
        findings: _Findings,
    ) -> None:
        self.name = name
        self._blocks = blocks
        self._raw = raw
        self._positions = positions
        self._findings = findings

    def _chunks(self) -> Iterator[list[list[str]]]:
        """The rows' fields, a chunk of rows at a time, as that chunk's columns (as many as its
        widest row has; a shorter row's missing fields are "")."""
        try:
            blocks = self._blocks
            for block in blocks:
                if not _plain(block):
                    reader = csv.reader(
                        itertools.chain(
                            io.StringIO(block, newline=""),
                            (line for b in blocks for line in io.StringIO(b, newline="")),
                        )
                    )
                    while chunk := list(itertools.islice(reader, _CHUNK_ROWS)):
                        yield _transposed(chunk)
                    return
                if "\r" in block:
                    block = block.replace("\r\n", "\n")
                if block.endswith("\n"):
                    block = block[:-1]
                if not block:
                    continue
                lines = block.split("\n")
                commas = set(map(str.count, lines, itertools.repeat(",")))
                if len(commas) == 1 and (commas != {0} or all(map(str.strip, lines))):
                    width = commas.pop() + 1
                    fields = block.replace("\n", ",").split(",")
                    columns = [fields[i::width] for i in range(width)]
                    # No field to strip (none has a space): as they are, not one by one.
                    yield _Bare(columns) if _no_spaces(block) else columns
                else:  # rows of different widths, or blank lines
                    yield _transposed([line.split(",") for line in lines])
        except (_Malformed, csv.Error) as exc:
            self._findings.add(
                "error",
                "UNREADABLE_FILE",
                self.name,
                "reading stopped at a malformed line "
                f"({'UnicodeDecodeError' if isinstance(exc, _Malformed) else 'Error'}); "
                "the rows after it are ignored",
            )
        finally:
            self._raw.close()

    def column_chunks(self) -> Iterator[list[list[str]]]:
        """The asked-for columns, a chunk of rows at a time (never an empty chunk)."""
        for chunk in self._chunks():
            if not chunk:
                continue
            rows = len(chunk[0])
            bare = isinstance(chunk, _Bare)
            yield [
                (chunk[p] if bare else list(_stripped(chunk[p])))
                if 0 <= p < len(chunk)
                else [""] * rows
                for p in self._positions
            ]

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        for chunk in self._chunks():
            if not chunk:
                continue
            rows = len(chunk[0])
            yield from zip(
                *(
                    _stripped(chunk[p]) if 0 <= p < len(chunk) else itertools.repeat("", rows)
                    for p in self._positions
                ),
                strict=False,  # an absent column is an endless "" beside the others
            )


# What str.strip removes, in ASCII (Unicode has more; a column that is not ASCII is stripped).
_ASCII_SPACES = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


class _Bare(list[list[str]]):
    """A chunk's columns whose values have no surrounding whitespace."""


def _no_spaces(text: str) -> bool:
    return text.isascii() and not any(c in text for c in _ASCII_SPACES if c != "\n")


def _stripped(values: list[str]) -> Iterable[str]:
    """The values stripped of surrounding whitespace: as they are when the column has none
    (one C scan of the column instead of a call per value)."""
    joined = "".join(values)
    if joined.isascii() and not any(c in joined for c in _ASCII_SPACES):
        return values
    return map(str.strip, values)


def _transposed(rows: list[list[str]]) -> list[list[str]]:
    """Rows to columns, blank lines dropped (a line of nothing or spaces is no row, as for the
    csv module) and short rows padded with ""."""
    rows = [r for r in rows if len(r) > 1 or (r and r[0].strip())]
    if not rows:
        return []
    width = max(map(len, rows))
    padded = (r + [""] * (width - len(r)) if len(r) < width else r for r in rows)
    return [list(column) for column in zip(*padded, strict=True)]


# ---------------------------------------------------------------------------- the reader


def feed_sha256(source: str | Path | bytes) -> str:
    """The zip's sha256 (hex): what tells a feed's versions apart."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    findings = _Findings()
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except zipfile.BadZipFile:
        findings.add("fatal", "NOT_A_ZIP", "", "the source is not a zip file")
        return _empty(digest, findings)
    with archive:
        try:
            return _Reader(_Zip(archive, findings), findings, digest, listener).read()
        except _Fatal:
            return _empty(digest, findings)


def _empty(sha256: str, findings: _Findings) -> GtfsFeed:
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


class _Reader:
    def __init__(
        self, zf: _Zip, findings: _Findings, sha256: str, listener: Listener | None
    ) -> None:
        self.zf = zf
        self.f = findings
        self.sha256 = sha256
        self.listener = listener

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
        stop_times, trips, streamed = self._stop_times(trips, stop_ids)
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

    def _table(self, name: str, columns: tuple[str, ...], *, required: bool) -> _Table | None:
        return self.zf.table(name, columns, required=required)

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
                self.f.duplicate("agency.txt", agency_id)
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
                self.f.invalid("stops.txt", "stop_id (empty)", "")
                continue
            if stop_id in seen:
                self.f.duplicate("stops.txt", stop_id)
                continue
            try:
                kind = _int(kind_text, 0)
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
            _REQUIRED_COLUMNS["calendar.txt"],
            required=False,
        )
        out: list[CalendarRow] = []
        seen: set[str] = set()
        for row in table or ():
            service_id = row[0]
            if service_id in seen:
                self.f.duplicate("calendar.txt", service_id)
                continue
            try:
                days = tuple(_flag(v) for v in row[1:8])
                start, end = _parse_date(row[8]), _parse_date(row[9])
            except ValueError:
                self.f.invalid("calendar.txt", "weekday flag or date", service_id)
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
                self.f.invalid("calendar_dates.txt", "date or exception_type", service_id)
                continue
            if (service_id, day) in seen:
                self.f.duplicate("calendar_dates.txt", f"{service_id} {day_text}")
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
    ) -> tuple[StopTimeColumns, list[TripRow], bool]:
        """The stop times kept, the trips kept, and whether the blocks handed to the listener
        were all of them (see `_clean_block`)."""
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
        positions = {t.trip_id: i for i, t in enumerate(trips)}
        texts: list[list[str]] = [[] for _ in range(8)]
        blocks: list[StopTimeColumns] = []
        caches = _Caches()
        clean = True  # no row so far breaks a rule
        ordered = True  # and the rows so far are in the result's order: told to the listener
        last: tuple[int, int] = (-1, 0)
        for chunk in table.column_chunks():
            for column, part in zip(texts, chunk, strict=True):
                column.extend(part)
            block = self._clean_block(chunk, positions, stop_ids, caches) if clean else None
            if block is None:
                clean = False
                continue
            blocks.append(block)
            if ordered:
                bounds = _increasing(block, positions)
                ordered = bounds is not None and bounds[0] > last
                if bounds is not None and ordered:
                    last = bounds[1]
                    if self.listener is not None:
                        self.listener(block)
        if clean:
            whole = StopTimeColumns.joined(blocks) if blocks else StopTimeColumns.of(())
            arranged = self._arranged(whole, trips, positions, ordered)
            if arranged is not None:
                self._note_late(caches.late)
                return arranged, trips, ordered
        # Some row breaks a rule: the rules, row by row, say which and skip it.
        rows, kept = self._stop_time_rows(zip(*texts, strict=True), trips, stop_ids)
        return StopTimeColumns.of(rows), kept, False

    def _stop_time_rows(
        self, table: Iterable[tuple[str, ...]], trips: list[TripRow], stop_ids: set[str]
    ) -> tuple[list[StopTimeRow], list[TripRow]]:
        """The stop times' rules, row by row: the rows kept, in trip then sequence order, and
        the trips kept."""
        name = "stop_times.txt"
        by_trip: dict[str, dict[int, StopTimeRow]] = {t.trip_id: {} for t in trips}
        cache: dict[str, int | None] = {}
        late: set[str] = set()
        for trip_id, seq_text, stop_id, arr_text, dep_text, headsign, pickup, drop in table:
            run = by_trip.get(trip_id)
            if run is None:
                self.f.unknown(name, "trip", trip_id)
                continue
            record = f"{trip_id}#{seq_text}"
            if stop_id not in stop_ids:
                self.f.unknown(name, "stop", record)
                continue
            try:
                seq = int(seq_text)
            except ValueError:
                self.f.invalid(name, "stop_sequence", record)
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
                self.f.invalid(name, "pickup_type or drop_off_type", record)
                continue
            if seq in run:
                self.f.duplicate(name, record)
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
        self._note_late(late)
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

    def _note_late(self, late: set[str]) -> None:
        # Allowed (a trip that runs past midnight of its service day): noted once per trip.
        name = "stop_times.txt"
        for trip_id in sorted(late)[:_EXAMPLES]:
            self.f.add("info", "TIME_PAST_MIDNIGHT", name, "a trip runs past 24:00:00", trip_id)
        for _ in range(len(late) - min(len(late), _EXAMPLES)):
            self.f.add("info", "TIME_PAST_MIDNIGHT", name, "a trip runs past 24:00:00")

    def _clean_block(
        self,
        chunk: list[list[str]],
        positions: dict[str, int],
        stop_ids: set[str],
        caches: _Caches,
    ) -> StopTimeColumns | None:
        """A block of stop times (in the file's order) when none of its rows breaks a rule of
        `_stop_time_rows` that one row shows (known trip and stop, numbers, times), else
        None. Each rule is asked of whole columns: sets, and maps over the distinct values
        (C loops, no Python step per row); any doubt and the rules run row by row."""
        trip_col, seq_col, stop_col, arr_col, dep_col, head_col, pickup_col, drop_col = chunk
        if not positions.keys() >= set(trip_col) or not stop_ids >= set(stop_col):
            return None
        times, kinds, headsigns = caches.times, caches.kinds, caches.headsigns
        distinct = {*arr_col, *dep_col}
        try:
            seqs = list(map(int, seq_col))
            for text in distinct - times.keys():
                times[text] = parse_time(text)
            for text in {*pickup_col, *drop_col} - kinds.keys():
                kinds[text] = _int(text, 0)
        except ValueError:
            return None
        for text in set(head_col) - headsigns.keys():
            headsigns[text] = text or None
        late = {
            t for t in distinct if (seconds := times[t]) is not None and seconds >= _DAY_SECONDS
        }
        if late:  # the trips with a time past 24:00:00 (few blocks have one)
            caches.late |= set(itertools.compress(trip_col, map(late.__contains__, arr_col)))
            caches.late |= set(itertools.compress(trip_col, map(late.__contains__, dep_col)))
        return StopTimeColumns(
            trip_col,
            seqs,
            stop_col,
            list(map(times.__getitem__, arr_col)),
            list(map(times.__getitem__, dep_col)),
            list(map(headsigns.__getitem__, head_col)),
            list(map(kinds.__getitem__, pickup_col)),
            list(map(kinds.__getitem__, drop_col)),
        )

    def _arranged(
        self,
        rows: StopTimeColumns,
        trips: list[TripRow],
        positions: dict[str, int],
        ordered: bool,
    ) -> StopTimeColumns | None:
        """Clean blocks put together, when the rules over several rows hold too (no
        (trip, stop_sequence) twice; every trip with two stop times or more, the first and
        last with a time): in trip then stop-sequence order. Else None."""
        n = len(rows)
        if not ordered:  # in order, the keys increase: none is repeated
            keys = _keys(rows, positions)
            if len(set(keys)) != n:
                return None
            rows = rows.arranged(sorted(range(n), key=keys.__getitem__))
        per_trip = collections.Counter(rows.trip_id)
        if len(per_trip) != len(trips) or min(per_trip.values(), default=2) < 2:
            return None
        arrivals, departures = rows.arrival, rows.departure
        start = 0
        for trip in trips:
            end = start + per_trip[trip.trip_id] - 1
            if (arrivals[start] is None and departures[start] is None) or (
                arrivals[end] is None and departures[end] is None
            ):
                return None
            start = end + 1
        return rows

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
            if (trip_id, start) in seen:
                self.f.duplicate("frequencies.txt", f"{trip_id} {start_text}")
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
                self.f.unknown("transfers.txt", "stop", key)
                continue
            try:
                kind = _int(kind_text, 0)
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
        table = self._table("feed_info.txt", ("feed_version",), required=False)
        version: str | None = None
        for (value,) in table or ():
            version = version or _optional(value)
        return version


class _Caches:
    """The stop times' distinct texts, parsed once each (a feed repeats them thousands of
    times)."""

    __slots__ = ("headsigns", "kinds", "late", "times")

    def __init__(self) -> None:
        self.late: set[str] = set()  # trips with a time past 24:00:00
        self.times: dict[str, int | None] = {}
        self.kinds: dict[str, int] = {}
        self.headsigns: dict[str, str | None] = {}


def _keys(rows: StopTimeColumns, positions: dict[str, int]) -> list[int]:
    """Each row's (trip's rank, stop_sequence) as one integer, in the same order (ints: no
    tuple per row)."""
    seqs = rows.stop_sequence
    low = min(seqs, default=0)
    span = max(seqs, default=0) - low + 1
    ranks = map(positions.__getitem__, rows.trip_id)
    return list(
        map(
            operator.add,
            map(operator.mul, ranks, itertools.repeat(span)),
            map(operator.sub, seqs, itertools.repeat(low)),
        )
    )


def _increasing(
    rows: StopTimeColumns, positions: dict[str, int]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The first and last rows' (trip's rank, stop_sequence) when the rows are in strictly
    increasing order of it, else None."""
    keys = _keys(rows, positions)
    if not all(map(operator.lt, keys, itertools.islice(keys, 1, None))):
        return None
    first, last = rows.trip_id[0], rows.trip_id[-1]
    return (positions[first], rows.stop_sequence[0]), (positions[last], rows.stop_sequence[-1])


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
