"""Target 15: journey queries on the Cairns feed, RAPTOR (`app/transit/raptor.py`) against the
independent Connection Scan the correctness test uses (`tests/transit/reference_csa.py`).

Both are prepared first, untimed: the planner from the timetable (`timetable_from_zip`, the
loader's footpath rule), the reference from the raw files (csv) with the same footpath set.
The queries: random pairs of stops some trip serves, each at a random time between 05:00 and
23:00 of a random weekday of the feed's validity (every answer within the default 6-hour
horizon). They are answered in interleaved chunks (the reference's chunk, then RAPTOR's), so
a slower minute of the shared machine weighs on both; RAPTOR as the app asks it (default
transfer bound, the Pareto set, every journey's legs built), the reference for the earliest
arrival only. The figure is RAPTOR's queries/s ÷ the reference's; it counts only if every
earliest arrival is the same to the second.

What the figure weighs, said plainly: RAPTOR's structures do not depend on the date (a pattern
is active on a date or not), while the Connection Scan needs each date's connections sorted
(it keeps the last few days'; a date's are megabytes), so a random weekday costs it that build.
The same pairs and times of day on one weekday, with its connections built once, are measured
too (``one_day``): what the two algorithms' scans cost alone.

    python -m bench.journeys [--queries 1000] [--seed 20261207]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from app.transit.gtfs import timetable_from_zip
from app.transit.raptor import DEFAULT_HORIZON, JourneyPlanner
from app.transit.timetable import Timetable
from bench.progress import say
from bench.transit import cairns_zip
from tests.transit.reference_csa import ConnectionScan

DEFAULT_QUERIES = 1000
CHUNK = 50

Query = tuple[int, int, datetime]


def _queries(tt: Timetable, count: int, seed: int) -> list[Query]:
    rng = random.Random(seed)
    served = sorted({s for t in tt.trips for s in t.stops})
    running = {d for days in tt.services.values() for d in days}
    weekdays = sorted(d for d in running if d.weekday() < 5)
    out: list[Query] = []
    for _ in range(count):
        a, b = rng.sample(served, 2)
        day = rng.choice(weekdays)
        seconds = rng.randint(5 * 3600, 23 * 3600)
        out.append((a, b, tt.service_day_start(day) + timedelta(seconds=seconds)))
    return out


def _on_day(tt: Timetable, queries: list[Query], day: date) -> list[Query]:
    """The same pairs and times of day, all on `day`."""
    return [
        (a, b, tt.service_day_start(day) + (at - tt.service_day_start(at.date())))
        for a, b, at in queries
    ]


def _run(
    tt: Timetable, planner: JourneyPlanner, reference: ConnectionScan, queries: list[Query]
) -> dict[str, Any]:
    horizon = int(DEFAULT_HORIZON.total_seconds())
    ids = [s.gtfs_id for s in tt.stops]
    ours: list[int | None] = []
    theirs: list[int | None] = []
    ours_s = theirs_s = 0.0
    for first in range(0, len(queries), CHUNK):
        chunk = queries[first : first + CHUNK]
        started = time.perf_counter()
        for a, b, at in chunk:
            epoch = int(at.timestamp())
            theirs.append(
                reference.earliest_arrival({ids[a]: epoch}, {ids[b]: 0}, epoch, epoch + horizon)
            )
        theirs_s += time.perf_counter() - started
        started = time.perf_counter()
        for a, b, at in chunk:
            found = planner.journeys(
                access={a: at}, egress={b: 0}, depart_at=at, include_walk_only=True
            )
            ours.append(int(found[-1].arrival.timestamp()) if found else None)
        ours_s += time.perf_counter() - started
    mismatches = [
        {
            "from": ids[a],
            "to": ids[b],
            "at": at.isoformat(),
            "raptor": x,
            "reference": y,
        }
        for (a, b, at), x, y in zip(queries, ours, theirs, strict=True)
        if x != y
    ]
    return {
        "queries": len(queries),
        "raptor_s": ours_s,
        "reference_s": theirs_s,
        "raptor_qps": len(queries) / ours_s,
        "reference_qps": len(queries) / theirs_s,
        "ratio": theirs_s / ours_s,
        "reachable": sum(x is not None for x in theirs),
        "mismatches": len(mismatches),
        "examples": mismatches[:5],
    }


def measure(count: int = DEFAULT_QUERIES, seed: int = 20261207) -> dict[str, Any]:
    path = cairns_zip()
    started = time.perf_counter()
    tt = timetable_from_zip(path, feed="bench-cairns")
    timetable_s = time.perf_counter() - started
    started = time.perf_counter()
    planner = JourneyPlanner(tt)
    planner_s = time.perf_counter() - started
    footpaths = {
        tt.stops[a].gtfs_id: [(tt.stops[b].gtfs_id, w) for b, w in walks]
        for a, walks in tt.footpaths.items()
    }
    started = time.perf_counter()
    reference = ConnectionScan(path, footpaths)
    reference_s = time.perf_counter() - started

    queries = _queries(tt, count, seed)
    say(f"journeys: {count} queries on random weekdays, RAPTOR and the Connection Scan")
    random_days = _run(tt, planner, reference, queries)
    day = queries[0][2].date()
    same_day = _on_day(tt, queries, day)
    _run(tt, planner, reference, same_day[:CHUNK])  # warm: the day's connections built
    say(f"journeys: the same pairs and times on {day.isoformat()} alone")
    one_day = _run(tt, planner, reference, same_day)
    return {
        "feed": path.name,
        "stops": len(tt.stops),
        "trips": len(tt.trips),
        "patterns": planner.base_patterns,
        "prepare_s": {
            "timetable": timetable_s,
            "planner": planner_s,
            "reference": reference_s,
        },
        "horizon_s": int(DEFAULT_HORIZON.total_seconds()),
        "seed": seed,
        **random_days,
        "one_day": {"date": day.isoformat(), **one_day},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.journeys", description=__doc__)
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES)
    parser.add_argument("--seed", type=int, default=20261207)
    args = parser.parse_args(argv)
    result = measure(args.queries, args.seed)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
