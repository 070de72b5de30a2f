"""The stop times of a GTFS zip (`app/transit/gtfs.py`), the large file: checked column by
column (`StopTimesReader._clean_block`: sets and maps over distinct values, no Python step per
row), and, only when some row breaks a rule, row by row (`StopTimesReader._stop_time_rows`,
where the rules and their findings live); the clean blocks are handed to the reader's listener
as they are read, while they come in the final order."""

from __future__ import annotations

import collections
import itertools
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.transit.gtfs_feed import EXAMPLES, Findings, Listener, StopTimeColumns
from app.transit.gtfs_zip import GtfsZip, int_or, parse_time
from app.transit.timetable import StopTimeRow, TripRow

_DAY_SECONDS = 86_400


@dataclass(slots=True, eq=False)  # a reader: compared by identity, like any object
class StopTimesReader:
    zf: GtfsZip
    f: Findings
    listener: Listener | None

    def _time(self, text: str, cache: dict[str, int | None]) -> int | None:
        """A stop time's time, parsed once per distinct text (a feed repeats them)."""
        try:
            return cache[text]
        except KeyError:
            pass
        seconds = parse_time(text)  # ValueError goes to the caller
        cache[text] = seconds
        return seconds

    def read(
        self, trips: list[TripRow], stop_ids: set[str]
    ) -> tuple[StopTimeColumns, list[TripRow], bool]:
        """The stop times kept, the trips kept, and whether the blocks handed to the listener
        were all of them (see `_clean_block`)."""
        table = self.zf.table(
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
                pickup_type = int_or(pickup, 0)
                drop_off_type = int_or(drop, 0)
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
        for trip_id in sorted(late)[:EXAMPLES]:
            self.f.add("info", "TIME_PAST_MIDNIGHT", name, "a trip runs past 24:00:00", trip_id)
        for _ in range(len(late) - min(len(late), EXAMPLES)):
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
                kinds[text] = int_or(text, 0)
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


@dataclass(slots=True, eq=False)  # caches: compared by identity, like any object
class _Caches:
    """The stop times' distinct texts, parsed once each (a feed repeats them thousands of
    times)."""

    late: set[str] = field(default_factory=set)  # trips with a time past 24:00:00
    times: dict[str, int | None] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    headsigns: dict[str, str | None] = field(default_factory=dict)


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
