"""The subscription benchmark's check (bench/subscriptions.py): the subscribers' boxes, what
each should be sent, computed from the data alone, and each subscriber's messages against it.

A vehicle is shown in a box when it is neither reserved nor disabled and its position is in the
box, edges included. A vehicle the sync changed is, for a box, *created* (shown after, not
before), *updated* (shown before and after) or *removed* (shown before, not after). Nothing here
uses the API's code: it is the definition the API's answers are held to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.dto import Snapshot
from bench.fleet import CITIES
from bench.subscription_client import BoxTuple

# The grid the expected sets are computed on (degrees): any box is checked against the vehicles
# of the cells it overlaps only.
_CELL = 0.01
# Percentiles kept for the chart (HdrHistogram-style: dense towards the tail).
_PERCENTILES = (
    *(float(p) for p in range(0, 90, 5)),
    *(90.0 + p / 2 for p in range(18)),
    99.0,
    99.5,
    99.9,
    100.0,
)


# --- boxes and what each should hear ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Box:
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float

    def holds(self, lat: float, lon: float) -> bool:
        # Edges included, as the API's `within` has it.
        return self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon

    def as_tuple(self) -> BoxTuple:
        return (self.min_lat, self.min_lon, self.max_lat, self.max_lon)


def tile_boxes(n: int) -> list[Box]:
    """``n`` distinct boxes: each city's box cut into a grid of tiles about twice as wide (in
    degrees) as tall, the subscribers shared out evenly over the cities."""
    boxes: list[Box] = []
    for c, city in enumerate(CITIES):
        k = n // len(CITIES) + (1 if c < n % len(CITIES) else 0)
        if k == 0:
            continue
        cols = max(1, round(math.sqrt(k / 2)))
        rows = math.ceil(k / cols)
        min_lat, min_lon, max_lat, max_lon = city.box
        dlat, dlon = (max_lat - min_lat) / rows, (max_lon - min_lon) / cols
        for i in range(k):
            r, q = divmod(i, cols)
            boxes.append(
                Box(
                    min_lat + r * dlat,
                    min_lon + q * dlon,
                    min_lat + (r + 1) * dlat,
                    min_lon + (q + 1) * dlon,
                )
            )
    return boxes


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / _CELL), math.floor(lon / _CELL)


@dataclass(slots=True)
class Expected:
    """Per box (same order as the boxes): the SNAPSHOT's ids and the delta, vehicle id ->
    ``created`` / ``updated`` / ``removed``; and every vehicle's position after the sync."""

    snapshot: list[set[str]]
    changes: list[dict[str, str]]
    after: dict[str, tuple[float, float]]

    @property
    def total(self) -> int:
        return sum(len(c) for c in self.changes)

    @property
    def most_in_a_box(self) -> int:
        return max((len(s) for s in self.snapshot), default=0)

    @property
    def most_tracked(self) -> int:
        """The most vehicles any subscriber can be tracking at once during the sync: its
        snapshot plus every vehicle it gains (it loses some too, but maybe later)."""
        return max(
            (
                len(s) + sum(1 for k in c.values() if k == "created")
                for s, c in zip(self.snapshot, self.changes, strict=True)
            ),
            default=0,
        )


def expected(provider_id: str, before: Snapshot, after: Snapshot, boxes: Sequence[Box]) -> Expected:
    """What each box's subscriber should be sent, from the two snapshots alone (no API code):
    a vehicle is shown when it is neither reserved nor disabled and its position is in the
    box; a vehicle the sync changed is created / updated / removed for a box by where it was
    shown before and after."""
    by_cell: dict[tuple[int, int], list[int]] = {}
    for i, b in enumerate(boxes):
        (lat0, lon0), (lat1, lon1) = _cell(b.min_lat, b.min_lon), _cell(b.max_lat, b.max_lon)
        for la in range(lat0, lat1 + 1):
            for lo in range(lon0, lon1 + 1):
                by_cell.setdefault((la, lo), []).append(i)

    def shown_in(lat: float, lon: float, available: bool) -> set[int]:
        if not available:
            return set()
        return {i for i in by_cell.get(_cell(lat, lon), ()) if boxes[i].holds(lat, lon)}

    prefix = f"{provider_id}:"
    snap: list[set[str]] = [set() for _ in boxes]
    changes: list[dict[str, str]] = [{} for _ in boxes]
    positions: dict[str, tuple[float, float]] = {}
    for old, new in zip(before.vehicles, after.vehicles, strict=True):
        assert old.external_id == new.external_id
        vid = prefix + old.external_id
        positions[vid] = (new.lat, new.lon)
        was = shown_in(old.lat, old.lon, not old.is_reserved and not old.is_disabled)
        for i in was:
            snap[i].add(vid)
        if old == new:
            continue
        now = shown_in(new.lat, new.lon, not new.is_reserved and not new.is_disabled)
        for i in was & now:
            changes[i][vid] = "updated"
        for i in was - now:
            changes[i][vid] = "removed"
        for i in now - was:
            changes[i][vid] = "created"
    return Expected(snap, changes, positions)


# --- the check ------------------------------------------------------------------------------------


def _percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values; None when there are none, or when it falls on
    a subscriber whose changes never all arrived (infinite)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    value = ordered[min(rank, len(ordered)) - 1]
    return value if math.isfinite(value) else None


def _summary(values: list[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": _percentile(ordered, 50),
        "p90": _percentile(ordered, 90),
        "p99": _percentile(ordered, 99),
        "max": _percentile(ordered, 100),
        "min": _percentile(ordered, 0),
    }


def _distribution(values: list[float]) -> list[list[float | None]]:
    ordered = sorted(values)
    return [[p, _percentile(ordered, p)] for p in _PERCENTILES] if ordered else []


def check(records: Sequence[dict[str, Any]], exp: Expected, committed_at: float) -> dict[str, Any]:
    """Every subscriber's messages against what it should have been sent."""
    missed = phantom = duplicates = wrong_position = 0
    resnapshots = failed = snapshot_wrong = delta_messages = 0
    latencies: list[float] = []
    completion: list[float] = []
    examples: list[str] = []

    def example(text: str) -> None:
        if len(examples) < 10:
            examples.append(text)

    for record in records:
        i = int(record["index"])
        should = exp.changes[i]
        messages = record["messages"]
        if record["error"] is not None or not messages:
            failed += 1
            missed += len(should)
            example(f"subscriber {i}: {record['error'] or 'no snapshot'}")
            continue
        first, rest = messages[0], messages[1:]
        got_snapshot = {v[0] for v in first["created"]}
        if first["kind"] != "SNAPSHOT" or got_snapshot != exp.snapshot[i]:
            snapshot_wrong += 1
            example(
                f"subscriber {i}: snapshot of {len(got_snapshot)}, expected "
                f"{len(exp.snapshot[i])} ({len(got_snapshot - exp.snapshot[i])} extra, "
                f"{len(exp.snapshot[i] - got_snapshot)} missing)"
            )
        received: dict[str, tuple[str, float]] = {}
        for m in rest:
            if m["kind"] != "DELTA":
                resnapshots += 1
                example(f"subscriber {i}: a new {m['kind']} after the sync")
                continue
            delta_messages += 1
            items = [
                *(("created", v[0], (v[1], v[2])) for v in m["created"]),
                *(("updated", v[0], (v[1], v[2])) for v in m["updated"]),
                *(("removed", vid, None) for vid in m["removed"]),
            ]
            for kind, vid, position in items:
                if vid in received:
                    duplicates += 1
                    example(f"subscriber {i}: {vid} twice")
                received[vid] = (kind, m["at"])
                if position is not None and position != exp.after.get(vid):
                    wrong_position += 1
                    example(f"subscriber {i}: {vid} at {position}, now {exp.after.get(vid)}")
        latest = -math.inf
        for vid, kind in should.items():
            got = received.get(vid)
            if got is None or got[0] != kind:
                missed += 1
                example(f"subscriber {i}: {vid} {kind} missed (got {got and got[0]})")
                latest = math.inf
            else:
                latencies.append(got[1] - committed_at)
                latest = max(latest, got[1] - committed_at)
        for vid, (kind, _) in received.items():
            if should.get(vid) != kind:
                phantom += 1
                example(f"subscriber {i}: {vid} {kind}, expected {should.get(vid) or 'nothing'}")
        if should:
            completion.append(latest)
    return {
        "expected_changes": exp.total,
        "delivered": len(latencies),
        "missed": missed,
        "phantom": phantom,
        "duplicates": duplicates,
        "wrong_position": wrong_position,
        "resnapshots": resnapshots,
        "failed_subscribers": failed,
        "snapshot_mismatches": snapshot_wrong,
        "delta_messages": delta_messages,
        "affected_subscribers": sum(1 for c in exp.changes if c),
        "wrong": missed + phantom + duplicates + wrong_position + snapshot_wrong,
        "examples": examples,
        "latency_s": _summary(latencies),
        "completion_s": _summary(completion),
        "distribution_s": _distribution(latencies),
        "completion_distribution_s": _distribution(completion),
    }


def snapshot_stats(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    opened = [r for r in records if r["error"] is None and r["messages"]]
    latency = [r["messages"][0]["at"] - r["subscribed_at"] for r in opened]
    starts = [r["started_at"] for r in records if r["started_at"]]
    ends = [r["messages"][0]["at"] for r in opened]
    return {
        "opened": len(opened),
        "open_all_s": (max(ends) - min(starts)) if ends and starts else None,
        "latency_s": _summary(latency),
        "vehicles": sum(len(r["messages"][0]["created"]) for r in opened),
    }
