"""PNG charts of a run (matplotlib, Agg backend: no display needed).

- ``latency.png``: the latency distribution of GraphQL and the baseline under the main load,
  HdrHistogram-style (percentile on a log scale of 1 / (1 - p), so the tail gets the room), from
  the percentiles wrk's ``--latency`` histogram gives the Lua ``done`` hook.
- ``throughput.png``: requests/s and p99 against concurrency (wrk connections), GraphQL and
  baseline, from the concurrency sweep's short runs.
- ``tiles.png``: vector tiles, the API against tipg: tiles/s, p99 and mean bytes per tile at
  street zooms and at z11 (``bench.tiles``).
- ``subscriptions.png``: how long after a sync's commit its changes reached the
  ``vehicleUpdates`` subscribers (bench/subscription_report.py).

    python -m bench.charts bench/results/<run>/result.json [--out DIR]

The full run writes them to ``docs/bench/`` (committed, linked from ``docs/benchmarks.md``);
quick and smoke runs to their results folder only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from bench import subscription_report

COLOURS = {"graphql": "#d62728", "baseline": "#1f77b4"}
LABELS = {"graphql": "GraphQL API", "baseline": "baseline (plain FastAPI + PostGIS)"}
# Percentile ticks of the latency chart, and where they sit on the 1 / (1 - p) axis.
_TICKS = (
    (50.0, "50%"),
    (90.0, "90%"),
    (99.0, "99%"),
    (99.9, "99.9%"),
    (99.99, "99.99%"),
)


def available() -> str | None:
    """matplotlib's version, or None when it is not installed."""
    try:
        return metadata.version("matplotlib")
    except metadata.PackageNotFoundError:
        return None


def _subtitle(result: dict[str, Any]) -> str:
    run, data = result["run"], result["data"]
    return (
        f"{data['count']:,} vehicles, {result['mode']} run {result['finished_at']}, "
        f"{run['workers']} workers per server, {result['machine']['cpus']} CPUs"
    )


def render_charts(result: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Write the charts this run has data for; returns {chart: path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    # No timestamps or versions in the files: the same figures give the same bytes.
    metadata_png: dict[str, str | None] = {"Software": None}

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    for key in ("baseline", "graphql"):
        load = result["targets"][key]
        pairs = [(p, ms) for p, ms in load["wrk"].get("distribution_ms", []) if p < 100.0]
        if not pairs:
            continue
        xs = [1.0 / (1.0 - p / 100.0) for p, _ in pairs]
        ys = [ms for _, ms in pairs]
        rps = load["wrk"]["rps"]
        ax.plot(xs, ys, color=COLOURS[key], marker=".", label=f"{LABELS[key]}: {rps:,.0f} req/s")
    ax.set_xscale("log")
    ax.set_xticks([1.0 / (1.0 - p / 100.0) for p, _ in _TICKS], [t for _, t in _TICKS])
    ax.minorticks_off()
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="major", alpha=0.3)
    connections = result["run"]["connections"]
    ax.set_title(
        f"Nearby search latency at {connections} connections (wrk, closed loop)\n"
        + _subtitle(result),
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    path = out_dir / "latency.png"
    fig.savefig(path, metadata=metadata_png)
    plt.close(fig)
    written["latency"] = str(path)

    sweep = result.get("sweep")
    if sweep:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4), dpi=110)
        for key in ("baseline", "graphql"):
            levels = sweep[key]
            xs = [lv["connections"] for lv in levels]
            style: dict[str, Any] = {"color": COLOURS[key], "marker": "o", "label": LABELS[key]}
            left.plot(xs, [lv["rps"] for lv in levels], **style)
            right.plot(xs, [lv["p99_ms"] for lv in levels], **style)
        for ax_, label in ((left, "requests/s"), (right, "p99 latency (ms)")):
            ax_.set_xscale("log", base=2)
            ax_.set_xticks(sweep["levels"], [str(c) for c in sweep["levels"]])
            ax_.minorticks_off()
            ax_.set_xlabel("concurrent connections")
            ax_.set_ylabel(label)
            ax_.set_ylim(bottom=0)
            ax_.grid(True, alpha=0.3)
        left.legend(fontsize=9)
        fig.suptitle(
            f"Throughput and p99 against concurrency ({sweep['duration_s']:g} s per level)\n"
            + _subtitle(result),
            fontsize=10,
        )
        fig.tight_layout()
        path = out_dir / "throughput.png"
        fig.savefig(path, metadata=metadata_png)
        plt.close(fig)
        written["throughput"] = str(path)
    tiles = result.get("tiles") or {}
    if tiles.get("loads"):
        written["tiles"] = render_tiles_chart(result, out_dir)
    written.update(subscription_report.render_chart(result, out_dir))
    return written


def render_tiles_chart(result: dict[str, Any], out_dir: Path) -> str:
    """``tiles.png``: tiles/s, p99 and mean bytes per tile of the API and tipg, at street zooms
    (z15 and z16) and at z11 (the API's clusters against tipg's points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    tiles = result["tiles"]
    loads = tiles["loads"]
    street = "z" + " and z".join(map(str, tiles["street"]["zooms"]))
    groups = (
        (f"{street}, points", "street"),
        (f"z{tiles['city']['zoom']}, API clustered", "city"),
    )
    servers = (
        ("tipg", f"tipg {tiles['tipg_version']}", COLOURS["baseline"]),
        ("tiles", "API /tiles/vehicles", COLOURS["graphql"]),
    )

    def figure(load: dict[str, Any], what: str) -> float:
        w = load["wrk"]
        if what == "rps":
            return float(w["rps"])
        if what == "p99":
            return float(w["latency_ms"]["p99"])
        return float(w["body_bytes"]) / max(int(w["responses"]), 1) / 1024

    # One row per zoom group, one column per figure: each panel on its own linear scale (a z11
    # tile costs a hundred street tiles).
    fig, axes = plt.subplots(len(groups), 3, figsize=(10, 6.4), dpi=110, squeeze=False)
    panels = (
        ("rps", "tiles/s"),
        ("p99", "p99 latency (ms)"),
        ("kib", "mean KiB per tile"),
    )
    for row, (group, kind) in enumerate(groups):
        for col, (what, label) in enumerate(panels):
            ax = axes[row][col]
            ys = [figure(loads[f"{server}_{kind}"], what) for server, _, _ in servers]
            bars = ax.bar(
                [name for _, name, _ in servers], ys, 0.6, color=[c for _, _, c in servers]
            )
            ax.bar_label(bars, [f"{y:,.1f}" if y < 100 else f"{y:,.0f}" for y in ys], fontsize=8)
            ax.set_title(f"{group}: {label}", fontsize=9)
            ax.set_ylim(0, max(ys) * 1.15 if max(ys) > 0 else 1)
            ax.tick_params(axis="x", labelsize=8)
            ax.grid(True, axis="y", alpha=0.3)
    rounds = int(tiles["rounds"])
    fig.suptitle(
        f"Vector tiles, the API against tipg ({result['run']['connections']} connections, "
        f"{tiles['duration_s']:g} s per load"
        + (f" in {rounds} rounds" if rounds > 1 else "")
        + "; more tiles/s, less p99 and fewer bytes are better)\n"
        + _subtitle(result),
        fontsize=10,
    )
    fig.tight_layout()
    path = out_dir / "tiles.png"
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.charts", description=__doc__)
    parser.add_argument("result", type=Path, help="bench/results/<run>/result.json")
    parser.add_argument("--out", type=Path, help="folder (default: beside result.json)")
    args = parser.parse_args(argv)
    result = orjson.loads(args.result.read_bytes())
    for name, path in render_charts(result, args.out or args.result.parent).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
