"""The subscription step's share of a run's record (bench/subscriptions.py, target 13): its rows
in the run's block of ``docs/benchmarks.md`` and its chart, ``subscriptions.png``, the delivery
latency distribution after the sync's commit, drawn HdrHistogram-style like ``latency.png``
(bench/charts.py, which draws it with the others; the block links it with them). Light imports
only: ``bench.report`` and ``bench.charts`` use it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# Percentile ticks, and where they sit on the 1 / (1 - p) axis (as in bench/charts.py).
_TICKS = ((0.0, "0%"), (50.0, "50%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"))
GOAL_SECONDS = 2.0


def _s(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f} s"


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f}"


def _workers_kib(memory: list[dict[str, Any]]) -> int:
    return sum(int(m["rss_kib"]) for m in memory if m["role"] == "worker")


def rows(result: dict[str, Any]) -> list[str]:
    """The step's paragraph and table for the run's block."""
    subs = result.get("subscriptions")
    if not subs:
        return []
    if subs.get("error"):
        return ["", f"**Live updates** (target 13): failed: `{subs['error']}`."]
    c, snap, sync, mem = subs["check"], subs["snapshots"], subs["sync"], subs["memory"]
    lat, done = c["latency_s"], c["completion_s"]
    affected = c["affected_subscribers"]
    phases = sync["phases"]
    lines = [
        "",
        f"**Live updates** (target 13): {subs['subscribers']:,} `vehicleUpdates` subscribers "
        f"({subs['clients']} client processes) on one API server ({subs['workers']} workers), "
        f"each on its own box (at most {subs['boxes']['most_vehicles']} vehicles in one, "
        f"`first: {subs['first']}`); one sync moving {subs['moved']:,} of "
        f"{subs['vehicles']:,} vehicles: {c['expected_changes']:,} changes for {affected:,} "
        "subscribers, checked against the data:",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| subscribers with their snapshot | {subs['opened']:,} of {subs['subscribers']:,}, "
        f"all in {snap['open_all_s']:.1f} s (each p50 / p99: "
        f"{snap['latency_s']['p50'] * 1000:.0f} / {snap['latency_s']['p99'] * 1000:.0f} ms) |",
        f"| changes delivered / expected | {c['delivered']:,} / {c['expected_changes']:,} |",
        "| missed / phantom / twice / stale position / wrong snapshot / new snapshot | "
        f"{c['missed']} / {c['phantom']} / {c['duplicates']} / {c['wrong_position']} / "
        f"{c['snapshot_mismatches']} / {c['resnapshots']} |",
        f"| delivery after the commit, per change: p50 / p99 / max | {_s(lat['p50'])} / "
        f"**{_s(lat['p99'])}** / {_s(lat['max'])} |",
        f"| … per subscriber, its last change: p50 / p99 / max | {_s(done['p50'])} / "
        f"{_s(done['p99'])} / {_s(done['max'])} |",
        f"| DELTA messages (per affected subscriber) | {c['delta_messages']:,} "
        f"({c['delta_messages'] / affected if affected else 0:.2f}) |",
        "| the sync: its rows and merge until the commit / the index update and "
        f"{sync['delta_messages']} delta message(s) published after it | "
        f"{phases.get('rows', 0) + phases.get('database', 0):.2f} s / "
        f"{sync['commit_to_return_s']:.2f} s |",
        f"| API workers' resident memory (VmRSS, MiB): before / with the subscriptions / after "
        f"the deltas | {_mib(_workers_kib(mem['before']))} / "
        f"{_mib(_workers_kib(mem['after_open']))} / {_mib(_workers_kib(mem['after_deltas']))} |",
        f"| … per subscriber | **{mem['per_subscriber_kib']:.0f} KiB** |",
        f"| API CPU time: opening the subscriptions / delivering the deltas | "
        f"{subs['cpu']['open']['api_cpu_s']:.1f} s / {subs['cpu']['deltas']['api_cpu_s']:.2f} s |",
    ]
    return lines


def render_chart(result: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """``subscriptions.png``, when the run measured the subscriptions; returns {name: path}."""
    subs = result.get("subscriptions") or {}
    check = subs.get("check") or {}
    series = [
        ("per vehicle change", check.get("distribution_s") or [], "#d62728", "-"),
        (
            "per subscriber, its last change",
            check.get("completion_distribution_s") or [],
            "dimgrey",
            "--",
        ),
    ]
    if not series[0][1]:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.0), dpi=110)
    for label, points, colour, style in series:
        pairs = [(p, s) for p, s in points if p < 100.0 and s is not None]
        if pairs:
            xs = [1.0 / (1.0 - p / 100.0) for p, _ in pairs]
            ys = [s for _, s in pairs]
            ax.plot(xs, ys, color=colour, linestyle=style, marker=".", label=label)
    ax.axhline(GOAL_SECONDS, color="black", linestyle=":", linewidth=1.2, label="goal: p99 ≤ 2 s")
    ax.set_xscale("log")
    ax.set_xticks([1.0 / (1.0 - p / 100.0) for p, _ in _TICKS], [t for _, t in _TICKS])
    ax.minorticks_off()
    ax.set_xlabel("percentile")
    ax.set_ylabel("seconds after the sync's commit")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(
        f"vehicleUpdates: delivery of one sync's delta to {subs['opened']:,} subscribers\n"
        f"{subs['moved']:,} of {subs['vehicles']:,} vehicles moved "
        f"({check['expected_changes']:,} changes), {subs['workers']} API workers\n"
        f"{result['mode']} run {result['finished_at']}",
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "subscriptions.png"
    # No timestamps or versions in the file: the same figures give the same bytes.
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return {"subscriptions": str(path)}
