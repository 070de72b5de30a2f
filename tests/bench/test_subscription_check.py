"""The subscription benchmark's check counts what it says: a perfect stream is exact, and each
kind of fault is counted as that fault (bench/subscription_check.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench.ingest import moved, snapshot
from bench.subscription_check import Expected, check, expected, tile_boxes

COMMITTED_AT = 100.0


@pytest.fixture(scope="module")
def exp() -> Expected:
    before = snapshot(2_000, seed=7)
    after, _ = moved(before, 0.10, seed=7)
    return expected("p", before, after, tile_boxes(20))


def _perfect(exp: Expected) -> list[dict[str, Any]]:
    """What an exact API sends: each box's snapshot, then its changes, 0.5 s after the commit."""
    records = []
    for i, (snap, changes) in enumerate(zip(exp.snapshot, exp.changes, strict=True)):
        delta: dict[str, Any] = {"at": COMMITTED_AT + 0.5, "kind": "DELTA"}
        for kind in ("created", "updated"):
            delta[kind] = [(v, *exp.after[v]) for v, k in changes.items() if k == kind]
        delta["removed"] = [v for v, k in changes.items() if k == "removed"]
        snapshot_message = {
            "at": 1.0,
            "kind": "SNAPSHOT",
            "created": [(v, 0.0, 0.0) for v in snap],
            "updated": [],
            "removed": [],
        }
        messages = [snapshot_message, delta] if changes else [snapshot_message]
        records.append(
            {
                "index": i,
                "started_at": 0.0,
                "subscribed_at": 0.5,
                "error": None,
                "messages": messages,
            }
        )
    return records


def test_the_boxes_and_the_sync_give_every_kind_of_change(exp: Expected) -> None:
    kinds = {k for changes in exp.changes for k in changes.values()}
    assert kinds == {"created", "updated", "removed"}
    assert exp.most_tracked < 200


def test_an_exact_stream_counts_nothing_wrong(exp: Expected) -> None:
    result = check(_perfect(exp), exp, COMMITTED_AT)
    assert result["wrong"] == 0 and result["resnapshots"] == 0
    assert result["delivered"] == result["expected_changes"] == exp.total
    assert result["latency_s"]["p99"] == pytest.approx(0.5)


def test_each_fault_is_counted(exp: Expected) -> None:
    records = copy.deepcopy(_perfect(exp))
    first, second = [r for r in records if len(r["messages"]) > 1 and r["messages"][1]["updated"]][
        :2
    ]
    lost = first["messages"][1]["updated"].pop()  # missed
    first["messages"][1]["created"].append(lost)  # ... and sent as the wrong kind: a phantom
    moved_id, lat, lon = second["messages"][1]["updated"][0]
    second["messages"][1]["updated"][0] = (moved_id, lat + 1.0, lon)  # a stale position
    second["messages"][1]["removed"].append("p:nowhere")  # a phantom
    records[0]["messages"][0]["created"].pop()  # a snapshot short of one
    result = check(records, exp, COMMITTED_AT)
    assert (result["missed"], result["phantom"]) == (1, 2)
    assert (result["wrong_position"], result["snapshot_mismatches"]) == (1, 1)
    assert result["wrong"] == 5


def test_a_new_snapshot_is_not_a_delta(exp: Expected) -> None:
    records = _perfect(exp)
    target = next(r for r in records if len(r["messages"]) > 1)
    target["messages"][1]["kind"] = "SNAPSHOT"
    result = check(records, exp, COMMITTED_AT)
    assert result["resnapshots"] == 1
    assert result["missed"] == len(exp.changes[target["index"]])
