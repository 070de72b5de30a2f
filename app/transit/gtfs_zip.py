"""A GTFS zip's members and their rows (`app/transit/gtfs.py` reads the files through it): the
files and columns the GTFS Schedule reference names, the member found wherever one folder level
put it, its text decoded a block of lines at a time and split into the asked-for columns
(`Table`: a block without quotes split on commas whole, the ``csv`` module for the rest), and
the values of a field (times, dates, numbers)."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

from adapters.gtfs_schedule import CALENDAR_WEEKDAYS
from app.transit.gtfs_feed import Fatal, Findings

REQUIRED_FILES = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
READ_OPTIONAL = (
    "calendar.txt",
    "calendar_dates.txt",
    "frequencies.txt",
    "transfers.txt",
    "feed_info.txt",
)
# Files of the GTFS Schedule reference this reader does not need: present, they are fine.
_SPEC_FILES = frozenset(
    {
        *REQUIRED_FILES,
        *READ_OPTIONAL,
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
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "agency.txt": ("agency_name", "agency_timezone"),
    "stops.txt": ("stop_id",),
    "routes.txt": ("route_id", "route_type"),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id", "stop_id", "stop_sequence"),
    "calendar.txt": ("service_id", *CALENDAR_WEEKDAYS, "start_date", "end_date"),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
    "frequencies.txt": ("trip_id", "start_time", "end_time", "headway_secs"),
    "transfers.txt": ("from_stop_id", "to_stop_id"),
    "feed_info.txt": (),
}


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


def parse_date(text: str) -> date:
    if len(text) != 8 or not text.isdigit():
        raise ValueError(text)
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def int_or(text: str, default: int) -> int:
    return int(text) if text else default


def optional(text: str) -> str | None:
    return text or None


def flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(text)
    return text == "1"


# ---------------------------------------------------------------------------- the zip


def feed_sha256(source: str | Path | bytes) -> str:
    """The zip's sha256 (hex): what tells a feed's versions apart."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class GtfsZip:
    """The zip's members by GTFS file name, wherever one folder level put them."""

    def __init__(self, archive: zipfile.ZipFile, findings: Findings) -> None:
        self.archive = archive
        self.findings = findings
        self.members: dict[str, str] = {}
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        at_root = {n for n in names if "/" not in n}
        nested = [n for n in names if "/" in n]
        if not any(n in at_root for n in REQUIRED_FILES) and nested:
            # A common packaging slip: the files in one folder inside the zip.
            folders = {n.rsplit("/", 1)[0] for n in nested}
            best = max(folders, key=lambda d: sum(f"{d}/{r}" in names for r in REQUIRED_FILES))
            if any(f"{best}/{r}" in names for r in REQUIRED_FILES):
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

    def table(self, name: str, columns: tuple[str, ...], *, required: bool) -> Table | None:
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
        missing = [c for c in REQUIRED_COLUMNS.get(name, ()) if c not in index]
        if missing:
            raw.close()
            self._unreadable(name, required, f"lacks the required column(s) {', '.join(missing)}")
            return None
        return Table(
            name,
            itertools.chain((rest,), blocks),
            raw,
            [index.get(c, -1) for c in columns],
            self.findings,
        )

    def _unreadable(self, name: str, required: bool, why: str) -> None:
        if required:
            self.findings.add("fatal", "UNREADABLE_FILE", name, f"{name} {why}")
            raise Fatal(name)
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


@dataclass(slots=True, eq=False)  # a reader: compared by identity, like any object
class Table:
    """One file's rows: the asked-for columns' values (stripped; "" when the column is absent
    or the row short), one row at a time, or column by column (`column_chunks`, large files).

    While the text has no quote (every feed seen so far) and each line of a block has as many
    fields, the block is split on commas whole and each column taken as a slice: C loops and
    no object per row (a list per row wakes the garbage collector thousands of times). From
    the first block with a quote, the ``csv`` module reads the rest. Both read the same rows;
    either way a malformed line stops the reading with a finding."""

    name: str
    blocks: Iterator[str]  # the member's text, a block of whole lines at a time
    raw: IO[bytes]  # the member, closed when the blocks are read
    positions: list[int]  # each asked-for column's position in the header, -1 when absent
    findings: Findings

    def _chunks(self) -> Iterator[list[list[str]]]:
        """The rows' fields, a chunk of rows at a time, as that chunk's columns (as many as its
        widest row has; a shorter row's missing fields are "")."""
        try:
            blocks = self.blocks
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
            self.findings.add(
                "error",
                "UNREADABLE_FILE",
                self.name,
                "reading stopped at a malformed line "
                f"({'UnicodeDecodeError' if isinstance(exc, _Malformed) else 'Error'}); "
                "the rows after it are ignored",
            )
        finally:
            self.raw.close()

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
                for p in self.positions
            ]

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        for chunk in self._chunks():
            if not chunk:
                continue
            rows = len(chunk[0])
            yield from zip(
                *(
                    _stripped(chunk[p]) if 0 <= p < len(chunk) else itertools.repeat("", rows)
                    for p in self.positions
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
