"""What a GTFS read yields (`app/transit/gtfs.py`): the findings and their tally, the feed's
rows (`GtfsFeed`), what the reader's listener is told before the end (`GtfsHead`, blocks of
`StopTimeColumns`), and the general transfers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from app.transit.timetable import (
    AgencyRow,
    CalendarDateRow,
    CalendarRow,
    FrequencyRow,
    RouteRow,
    StopRow,
    StopTimeRow,
    TripRow,
)

__all__ = [
    "EXAMPLES",
    "Fatal",
    "Findings",
    "GtfsFeed",
    "GtfsFinding",
    "GtfsHead",
    "Listener",
    "Severity",
    "StopTimeColumns",
    "TransferRow",
]

Severity = Literal["fatal", "error", "warning", "info"]

EXAMPLES = 3


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
        return asdict(self)  # the examples copied, not shared

    def line(self) -> str:
        """One line for a terminal: severity, code, file, message, count, examples."""
        times = f" ({self.count} times)" if self.count > 1 else ""
        shown = f"; e.g. {', '.join(self.examples)}" if self.examples else ""
        where = f" {self.file}" if self.file else ""
        return f"{self.severity:<7} {self.code:<26}{where}: {self.message}{times}{shown}"


class Findings:
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
        if record is not None and len(found.examples) < EXAMPLES:
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


class Fatal(Exception):
    """The feed cannot be used; the finding is already recorded."""


@dataclass(frozen=True, slots=True)
class TransferRow:
    """A general ``transfers.txt`` row (between two stops, no route or trip given)."""

    from_stop_id: str
    to_stop_id: str
    transfer_type: int
    min_transfer_time: int | None


@dataclass(slots=True, eq=False)
class StopTimeColumns:
    """A feed's stop times column by column, in the order of `GtfsFeed.stop_times`: what the
    loader copies (`records`, tuples made by C loops), and the typed rows, built on first use
    for the callers that want them (`rows`)."""

    trip_id: list[str]
    stop_sequence: list[int]
    stop_id: list[str]
    arrival: list[int | None]
    departure: list[int | None]
    headsign: list[str | None]
    pickup_type: list[int]
    drop_off_type: list[int]
    _rows: tuple[StopTimeRow, ...] | None = field(default=None, init=False, repr=False)

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
