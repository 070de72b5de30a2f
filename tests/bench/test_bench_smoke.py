"""The benchmark must not rot: ``python -m bench.run --smoke`` end to end, on every test run.

20,000 vehicles in the smoke stores (database ``mobility_bench_smoke``, Redis db 13, prefix
``smoke``: never the test suite's or the real benchmark's), 2 s per load (1 s per vector-tile
load; the tipg baseline's virtualenv, .venv-tipg, is built on the first run), no concurrency sweep,
results in a temporary folder, ``docs/benchmarks.md`` untouched. It asserts that every target's
figure was produced, not what the figures are: those depend on the machine and on 2-second runs
(the subscription step's 20 subscribers over 2,000 vehicles included).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import orjson
import pytest

from bench import config
from bench.load import ensure_wrk

LINE = re.compile(r"^target (\d+) ([a-z0-9_]+) (\S+) (\S+) (met|missed)$")
# (number, name) of every line, in order; target 7 has two (first load, steady state).
TARGETS = [
    (1, "graphql_vs_baseline_throughput"),
    (2, "graphql_vs_baseline_p99"),
    (3, "filtered_vs_unfiltered_throughput"),
    (4, "redis_down_vs_baseline_throughput"),
    (5, "api_process_max_rss_mb"),
    (6, "apq_vs_baseline_throughput"),
    (7, "snapshot_merge_vs_copy_first_load"),
    (7, "snapshot_merge_vs_copy_steady_state"),
    (8, "push_ingest_vs_bare_loop"),
    (9, "tiles_vs_tipg_street_throughput"),
    (10, "tiles_vs_tipg_street_p99"),
    (11, "tiles_vs_tipg_city_throughput"),
    (12, "tiles_vs_tipg_city_bytes"),
    (13, "subscriptions_p99_delivery_seconds"),
    (13, "subscriptions_missed_or_phantom"),
    (14, "transit_feed_load_vs_copy"),
    (15, "journeys_vs_reference_throughput"),
]
# Counts of things that must not happen: zero is the figure when all is well.
ZERO_GOALS = {"subscriptions_missed_or_phantom"}


def _require_wrk() -> None:
    """wrk installed (apt-get as root when missing); a skip only outside CI."""
    try:
        ensure_wrk()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        message = f"wrk is missing and could not be installed: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _has_matplotlib() -> bool:
    try:
        metadata.version("matplotlib")
    except metadata.PackageNotFoundError:
        return False
    return True


def test_smoke_run_produces_every_target_figure(tmp_path: Path) -> None:
    _require_wrk()
    report = config.REPORT_PATH
    report_before = report.read_bytes() if report.exists() else None
    # No BENCH_* from the caller: the smoke stores are the defaults, and only they.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--results-dir", str(tmp_path)],
        cwd=config.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    print(f"bench smoke run: {elapsed:.0f} s")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"

    lines = [line for line in proc.stdout.splitlines() if line.startswith("target ")]
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), f"malformed target lines:\n{proc.stdout}"
    assert [(int(m[1]), m[2]) for m in parsed if m] == TARGETS, proc.stdout
    for m, line in zip(parsed, lines, strict=True):
        assert m is not None
        measured = float(m[3])  # a figure, not "n/a"
        assert math.isfinite(measured), line
        if m[2] in ZERO_GOALS:
            assert measured >= 0 and float(m[4]) == 0, line
        else:
            assert measured > 0 and float(m[4]) > 0, line

    result = orjson.loads((tmp_path / "result.json").read_bytes())
    assert result["mode"] == "smoke"
    assert result["data"]["database"] == "mobility_bench_smoke"
    assert [g["line"] for g in result["goals"]] == lines
    assert (tmp_path / "targets.txt").read_text().splitlines() == lines
    for key in ("baseline", "graphql", "graphql_cars", "graphql_apq", "graphql_redis_down"):
        assert result["targets"][key]["wrk"]["requests"] > 0, key
    assert result["checks"]["filtered"]["requests"] > 0
    assert [p["phase"] for p in result["resume"]["phases"]] == [
        "up",
        "outage",
        "back-empty",
        "refilled",
    ]
    assert result["memory"]["workers"] >= 1
    ingest = result["ingest"]
    assert "error" not in ingest, ingest
    assert ingest["count"] > 0 and len(ingest["rounds"]) == ingest["repeat"]
    assert ingest["moved"] == round(ingest["count"] * 0.10)
    transit = result["transit"]
    assert "error" not in transit, transit
    assert transit["stop_times"] > 0 and len(transit["rounds"]) == transit["repeat"]
    journeys = result["journeys"]
    assert "error" not in journeys, journeys
    assert journeys["queries"] > 0 and journeys["mismatches"] == 0, journeys["examples"]
    assert journeys["one_day"]["mismatches"] == 0, journeys["one_day"]["examples"]
    push = result["push"]
    assert "error" not in push, push
    assert push["push_updates"] > 0 and push["bare_updates"] > 0
    assert push["check"]["ok"], push["check"]
    tiles = result["tiles"]
    assert "error" not in tiles, tiles
    for key in ("tipg_street", "tiles_street", "tipg_city", "tiles_city"):
        assert tiles["loads"][key]["wrk"]["requests"] > 0, key
        assert tiles["loads"][key]["wrk"]["body_bytes"] > 0, key
    assert tiles["checks"]["street"]["ok"], tiles["checks"]["street"]
    assert tiles["checks"]["city"]["ok"], tiles["checks"]["city"]
    subscriptions = result["subscriptions"]
    assert "error" not in subscriptions, subscriptions
    assert subscriptions["opened"] == subscriptions["subscribers"] > 0
    assert subscriptions["check"]["expected_changes"] > 0
    assert subscriptions["memory"]["per_subscriber_kib"] is not None
    if _has_matplotlib():
        for chart in ("latency.png", "subscriptions.png"):
            assert (tmp_path / "charts" / chart).read_bytes().startswith(b"\x89PNG"), chart

    after = report.read_bytes() if report.exists() else None
    assert after == report_before, "a smoke run must not touch docs/benchmarks.md"
