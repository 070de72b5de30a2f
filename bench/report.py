"""The record of a run: machine facts, the raw JSON, and the block in ``docs/benchmarks.md``.

The document's prose is written by hand; a run replaces only the text between its mode's
markers (full or quick), so a quick smoke run never overwrites the full run's figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from bench import config, subscription_report
from bench.goals import bytes_per_tile

PACKAGES = ("fastapi", "starlette", "uvicorn", "strawberry-graphql", "graphql-core", "asyncpg")


def _markers(mode: str) -> tuple[str, str]:
    return f"<!-- bench:{mode}:begin -->", f"<!-- bench:{mode}:end -->"


_SKELETON = """# Benchmarks

## Full run

{full_begin}
{full_end}

## Latest quick run

{quick_begin}
{quick_end}
"""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def git_commit(root: Path = config.PROJECT_ROOT) -> str | None:
    """The checked-out commit, read from .git's files (uncommitted edits are not visible)."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        ref_file = git / ref
        if ref_file.exists():
            return ref_file.read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        return None
    return None


async def machine_facts(wrk_version: str) -> dict[str, Any]:
    conn = await asyncpg.connect(config.DATABASE_URL)
    try:
        postgres = await conn.fetchval("SHOW server_version")
        postgis = await conn.fetchval("SELECT postgis_lib_version()")
        shared_buffers = await conn.fetchval("SHOW shared_buffers")
    finally:
        await conn.close()
    redis = Redis.from_url(config.REDIS_URL)
    try:
        info = await redis.info("server")
    finally:
        await redis.aclose()
    packages: dict[str, str] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "missing"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": postgres.split()[0],
        "postgis": postgis,
        "shared_buffers": shared_buffers,
        "redis": info.get("redis_version", "unknown"),
        "wrk": wrk_version,
        "packages": packages,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "commit": git_commit(),
    }


# --- Markdown ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def _ratio(a: float, b: float) -> str:
    if not b:
        return "n/a"
    return f"{a / b:.2f}x"


def _mm(metres: float) -> str:
    return "under 0.001 mm" if metres < 1e-6 else f"{metres * 1000:.3f} mm"


@dataclass(frozen=True, slots=True)
class Rendered:
    mode: str
    markdown: str


def _errors(w: dict[str, Any]) -> int:
    return int(sum(w["errors"].values()) + w["bad_status"] + w["bad_body"])


def _goal_rows(result: dict[str, Any]) -> list[str]:
    goals = result.get("goals")
    if not goals:
        return []
    lines = [
        "**Targets.** What `make bench` prints last, one line per target of the issue "
        "(`target <n> <name> <measured> <goal> <met|missed>`):",
        "",
        "```text",
        *(g["line"] for g in goals),
        "```",
        "",
        "| # | measured | goal | | what the figure is | what decided it |",
        "|---:|---:|---:|---|---|---|",
    ]
    for g in goals:
        measured = "n/a" if g["measured"] is None else g["line"].split()[3]
        goal = ("≤ " if g["at_most"] else "≥ ") + g["line"].split()[4]
        verdict = "**met**" if g["met"] else "missed"
        lines.append(
            f"| {g['number']} | {measured} | {goal} | {verdict} | {g['what']} | {g['why']} |"
        )
    return [*lines, ""]


def _chart_lines(result: dict[str, Any]) -> list[str]:
    found = result.get("charts") or {}
    if not found:
        return []
    titles = {
        "latency": "Latency distribution, GraphQL vs baseline",
        "throughput": "Requests/s and p99 against concurrency",
        "tiles": "Vector tiles, the API against tipg",
        "subscriptions": "Live updates: delivery after the sync's commit",
    }
    if result["mode"] == "full":
        # docs/benchmarks.md links its neighbours in docs/bench/ relatively.
        return [
            " ".join(
                f"![{titles.get(name, name)}]({Path(path).relative_to('docs')})"
                for name, path in found.items()
            ),
            "",
        ]
    listed = ", ".join(f"`{path}`" for path in found.values())
    return [f"Charts of this run (not committed): {listed}.", ""]


def _load_rows(result: dict[str, Any]) -> list[str]:
    targets = result["targets"]
    b = targets["baseline"]
    order = ("graphql", "baseline", "graphql_cars", "graphql_apq", "graphql_redis_down")
    lines = [
        "| load | requests/s | vs baseline | p50 | p90 | p99 | max | requests | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in order:
        t = targets.get(key)
        if not t:
            continue
        w = t["wrk"]
        lat = w["latency_ms"]
        lines.append(
            f"| {t['label']} | {w['rps']:,.0f} | {_ratio(w['rps'], b['wrk']['rps'])} | "
            f"{_ms(lat['p50'])} | {_ms(lat['p90'])} | {_ms(lat['p99'])} | {_ms(lat['max'])} | "
            f"{w['requests']:,} | {_errors(w)} |"
        )
    return lines


def _cpu_rows(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    lines = [
        "CPU time per request while under load, from /proc. The last column is machine time "
        "no process above accounts for: kernel network processing on the loopback, PostgreSQL's "
        "background processes, and anything else that ran at the same time.",
        "",
        "| load | server processes | PostgreSQL (bench backends) | redis-server | wrk | "
        "machine busy | of which unattributed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in result["targets"].values():
        if not t:
            continue
        c = t["cpu"]
        per_request = (
            c["server_ms_per_request"]
            + c["postgres_ms_per_request"]
            + c["redis_ms_per_request"]
            + c["wrk_ms_per_request"]
        )
        # Whatever the machine spent beyond the processes above (softirq work for the loopback
        # traffic, PostgreSQL's background writers, other work on the machine). Much more
        # than usual means the measurement was disturbed.
        capacity_ms = 1000 * c["seconds"] * m["cpus"]
        accounted = 100 * per_request * t["wrk"]["requests"] / capacity_ms if capacity_ms else 0
        other = max(0.0, c["machine_busy_percent"] - accounted)
        lines.append(
            f"| {t['label']} | {c['server_ms_per_request']:.2f} ms | "
            f"{c['postgres_ms_per_request']:.2f} ms | {c['redis_ms_per_request']:.2f} ms | "
            f"{c['wrk_ms_per_request']:.2f} ms | {c['machine_busy_percent']:.0f}% of "
            f"{m['cpus']} CPUs | {other:.0f}% |"
        )
    return lines


def _sweep_rows(result: dict[str, Any]) -> list[str]:
    sweep = result.get("sweep")
    if not sweep:
        return []
    lines = [
        "",
        f"**Concurrency sweep** ({sweep['duration_s']:g} s per level, no warm-up, right after "
        "the loads above):",
        "",
        "| connections | baseline req/s | GraphQL req/s | GraphQL / baseline | baseline p99 | "
        "GraphQL p99 | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, g in zip(sweep["baseline"], sweep["graphql"], strict=True):
        lines.append(
            f"| {b['connections']} | {b['rps']:,.0f} | {g['rps']:,.0f} | "
            f"{_ratio(g['rps'], b['rps'])} | {_ms(b['p99_ms'])} | {_ms(g['p99_ms'])} | "
            f"{b['errors'] + g['errors']} |"
        )
    return lines


def _resume_rows(result: dict[str, Any]) -> list[str]:
    resume = result.get("resume")
    if not resume:
        return []
    lines = [
        "",
        "**Redis outage and return** (target 4's second half): an API on a private redis-server "
        f"(port {resume.get('redis_port')}, no persistence) that the benchmark stops and starts; "
        f"{result['run'].get('phase_s', 0):g} s of load per phase. "
        + (
            "Every request of every phase succeeded."
            if resume.get("ok")
            else f"**Check failed**: {resume.get('why')}."
        ),
        "",
        "| phase | what happened | requests | req/s | p99 | max | errors | Redis commands "
        "served | ≈ share of answers from Redis | fallback warnings logged |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in resume.get("phases", []):
        commands = "server down" if p["redis_commands"] is None else f"{p['redis_commands']:,}"
        share = p.get("redis_share")
        lines.append(
            f"| {p['phase']} | {p['what']} | {p['requests']:,} | {p['rps']:,.1f} | "
            f"{_ms(p['p99_ms'])} | {_ms(p['max_ms'])} | {p['errors']} | {commands} | "
            f"{'' if share is None else f'{100 * share:.0f}%'} | {p['fallbacks']:,} |"
        )
    if resume.get("phases"):
        lines += [
            "",
            "The servers run without background sync, so nothing in the API rebuilds the index "
            "an empty Redis lost: until the benchmark refilled it (the same fill "
            f"`bench.generate` does, {resume.get('refill_s', 0):.0f} s), the API answered from "
            "PostGIS. "
            + (
                "After the refill the same process answered from Redis again, without a restart."
                if resume.get("hot_path_resumed")
                else "After the refill the process did **not** go back to the Redis path."
            )
            + " The share is the phase's Redis commands per request relative to the *up* "
            "phase's, where every answer came from Redis; the warnings are what the API logged "
            "(a failed Redis attempt, not every answer it then gave from PostGIS).",
        ]
    return lines


def _tile_load_rows(tiles: dict[str, Any]) -> list[str]:
    loads = tiles["loads"]
    lines = [
        "| load | tiles/s | vs tipg | p50 | p99 | max | mean bytes per tile | tiles | errors "
        "| server CPU per tile | PostgreSQL CPU per tile |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, base in (
        ("tipg_street", "tipg_street"),
        ("tiles_street", "tipg_street"),
        ("tipg_city", "tipg_city"),
        ("tiles_city", "tipg_city"),
    ):
        t = loads.get(key)
        if not t:
            continue
        w, c = t["wrk"], t["cpu"]
        lat = w["latency_ms"]
        mean = bytes_per_tile(t)
        lines.append(
            f"| {t['label']} | {w['rps']:,.1f} | {_ratio(w['rps'], loads[base]['wrk']['rps'])} | "
            f"{_ms(lat['p50'])} | {_ms(lat['p99'])} | {_ms(lat['max'])} | "
            f"{'' if mean is None else f'{mean:,.0f}'} | {w['requests']:,} | {_errors(w)} | "
            f"{_ms(c['server_ms_per_request'])} | {_ms(c['postgres_ms_per_request'])} |"
        )
    return lines


def tile_rows(tiles: dict[str, Any] | None) -> list[str]:
    """The vector tiles' block (targets 9 to 12, bench/tiles.py)."""
    if not tiles:
        return []
    title = "**Vector tiles against tipg** (targets 9 to 12)"
    if tiles.get("skipped") or tiles.get("error"):
        why = tiles.get("skipped") and f"skipped ({tiles['skipped']})"
        return ["", f"{title}: {why or 'failed: `' + str(tiles['error']) + '`'}."]
    street, city = tiles["street"], tiles["city"]
    rounds = int(tiles["rounds"])
    lines = [
        "",
        f"{title}: tipg {tiles['tipg_version']} (its own virtualenv, `.venv-tipg`) serving the "
        "view `tipg_bench.vehicles` and the API's `/tiles/vehicles`, each with "
        f"{tiles['workers']} uvicorn workers; {street['tiles']:,} random tiles at "
        f"z{' and z'.join(map(str, street['zooms']))} over the city boxes "
        f"({street['distinct']:,} distinct), and the {city['tiles']} z{city['zoom']} tiles "
        f"covering the cities; {tiles['duration_s']:g} s per load"
        + (
            f" in {rounds} interleaved rounds, tipg first in each"
            if rounds > 1
            else ", one piece each"
        )
        + ". Bytes are the response bodies as sent to wrk (no `Accept-Encoding`: uncompressed).",
        "",
        *_tile_load_rows(tiles),
        "",
    ]
    checks = tiles.get("checks") or {}
    s, c = checks.get("street"), checks.get("city")
    if s:
        verdict = (
            "the same vehicle ids in every tile, with the same attributes and positions "
            f"(largest difference {s['max_position_diff']} tile units)"
            if s["ok"]
            else f"**they differ**: {s['mismatches'][:1]}"
        )
        lines.append(
            f"- **Street tiles compared** (before the loads): the first {s['tiles']} tiles of the "
            f"list, {s['vehicles']:,} vehicles, decoded from both servers: {verdict}. tipg "
            f"truncated {s['truncated']} of them, the API clustered {s['clustered']}; "
            f"{s['edge']} vehicles lay on an east or south tile edge, which tipg draws and the "
            "API leaves to the neighbouring tile."
        )
    if c:
        verdict = (
            "in every tile the API's clusters add up to the vehicles it owns (a plain SQL "
            "`count(*)` over the view) and each cluster's form factors to its count"
            if c["ok"]
            else f"**check failed**: {c['mismatches'][:1]}"
        )
        fleet = c.get("fleet")
        every = (
            f", every one of the {fleet:,} vehicles the view shows, once"
            if fleet == c["vehicles"]
            else f" (the view shows {fleet:,})"
            if fleet is not None
            else ""
        )
        truncated = (
            f"it **truncated {c['tipg_truncated']} of the {c['tiles']} tiles** at its limit of "
            f"{tiles['tipg_max_features']:,} features (`ORDER BY id LIMIT`: the vehicles with the "
            "smallest ids), so its z11 figures are those of truncated tiles; complete ones would "
            "be larger and slower"
            if c["tipg_truncated"]
            else f"none was over its limit of {tiles['tipg_max_features']:,} features"
        )
        lines.append(
            f"- **z{city['zoom']} tiles** (before the loads): {c['tiles']} tiles owning "
            f"{c['vehicles']:,} vehicles{every} (the densest tile {c['largest']:,}); {verdict}; "
            f"the API drew them as {c['clusters']:,} clusters. tipg sent "
            f"{c['tipg_features']:,} points: {truncated}."
        )
    settings = ", ".join(f"`{k}={v}`" for k, v in tiles.get("tipg_settings", {}).items())
    lines.append(f"- **tipg settings** (the rest at its defaults): {settings}.")
    return lines


def _memory_rows(result: dict[str, Any]) -> list[str]:
    memory = result.get("memory")
    if not memory or not memory.get("samples"):
        return []
    after_graphql = {
        p["pid"]: p for s in memory["samples"] if s["after"] == "graphql" for p in s["processes"]
    }
    last = memory["samples"][-1]
    lines = [
        "",
        "**API process memory** (target 5), from /proc/<pid>/status of the GraphQL server's "
        "process group; MiB:",
        "",
        "| process | VmRSS after the GraphQL load | peak VmHWM, whole run (last sample: after "
        f"{last['after']}) |",
        "|---|---:|---:|",
    ]
    for p in last["processes"]:
        rss = after_graphql.get(p["pid"], {}).get("rss_kib")
        lines.append(
            f"| {p['role']} (pid {p['pid']}) | "
            f"{'' if rss is None else f'{rss / 1024:.1f}'} | {p['peak_kib'] / 1024:.1f} |"
        )
    return lines


def _ingest_rows(result: dict[str, Any]) -> list[str]:
    ingest = result.get("ingest")
    if not ingest:
        return []
    if ingest.get("error"):
        return ["", f"**Ingest** (target 7): failed: `{ingest['error']}`."]
    lines = [
        "",
        f"**Ingest** (target 7): a {ingest['count']:,}-vehicle snapshot of one operator, "
        f"{ingest['repeat']} round(s), medians; the steady state moves "
        f"{ingest['moved']:,} vehicles. Seconds; phases as the sync reports them:",
        "",
        "| round | raw COPY | first load | ÷ COPY | its phases | steady state | ÷ COPY "
        "| its phases |",
        "|---:|---:|---:|---:|---|---:|---:|---|",
    ]

    def phases(values: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in values.items())

    for n, r in enumerate(ingest["rounds"], 1):
        lines.append(
            f"| {n} | {r['copy_s']:.2f} | {r['first_load_s']:.2f} | "
            f"{r['first_load_s'] / r['copy_s']:.2f} | {phases(r['first_load_phases'])} | "
            f"{r['steady_s']:.2f} | {r['steady_s'] / r['copy_s']:.2f} | "
            f"{phases(r['steady_phases'])} |"
        )
    lines.append(
        f"| **median** | **{ingest['copy_s']:.2f}** | **{ingest['first_load_s']:.2f}** | "
        f"**{ingest['first_load_ratio']:.2f}** | | **{ingest['steady_s']:.2f}** | "
        f"**{ingest['steady_ratio']:.2f}** | |"
    )
    return lines


def _push_rows(result: dict[str, Any]) -> list[str]:
    push = result.get("push")
    if not push:
        return []
    if push.get("error"):
        return ["", f"**Push ingest** (target 8): failed: `{push['error']}`."]
    check = push["check"]
    verdict = (
        f"all {check['vehicles']:,} vehicles hold the last status sent"
        if check["ok"]
        else f"**wrong**: {check['problems'][:1]}"
    )
    return [
        "",
        f"**Push ingest** (target 8): {push['fleet']:,} vehicles, {push['senders']} concurrent "
        f"writers, batches of {push['batch']}, {push['duration_s']:g} s each:",
        "",
        "| writer | updates | seconds | updates/s |",
        "|---|---:|---:|---:|",
        f"| `POST /ingest` (signed, validated, index + deltas) | {push['push_updates']:,} | "
        f"{push['push_seconds']:.1f} | {push['push_rate']:,.0f} |",
        f"| bare loop (prepared UPDATE + GEOADD) | {push['bare_updates']:,} | "
        f"{push['bare_seconds']:.1f} | {push['bare_rate']:,.0f} |",
        f"| **ratio** | | | **{push['ratio']:.2f}** |",
        "",
        f"Afterwards, in PostGIS and a sample of the index: {verdict}.",
    ]


def _check_lines(result: dict[str, Any]) -> list[str]:
    checks = result.get("checks") or {"verify": result["verify"]}
    check = checks["verify"]
    lines = [
        f"- **Correctness** (before the load): {check['points']} points, "
        f"{check['vehicles']:,} vehicles compared, GraphQL and baseline give the same ids in the "
        "same order (vehicles within 1 cm of each other are ties, in either order), largest "
        f"distance difference {_mm(check['max_distance_diff_m'])}."
    ]
    f = checks.get("filtered")
    if f:
        full = ", ".join(f"{v} at `first: {k}`" for k, v in f["full"].items())
        verdict = (
            "every count right"
            if f["ok"]
            else f"**{len(f['mismatches'])}+ wrong**, e.g. {f['mismatches'][:1]}"
        )
        asked = "` and `first: ".join(map(str, f["firsts"]))
        lines.append(
            f"- **Car filter** (target 3): {f['points']} points "
            f"({result['run'].get('verify_points')} of the query points and the ten city "
            f"centres), each asked with `first: {asked}`: "
            f"{f['requests']} answers, "
            f"{f['vehicles']:,} cars; the number of results must equal min(first, available cars "
            "within the radius) counted by a plain SQL `count(*)` in PostGIS, and they must be "
            f"the nearest ones. Points with at least `first` cars (full answers): {full}; "
            f"{verdict}."
        )
    a = checks.get("apq")
    if a:
        h = a["hash_only"]
        lines.append(
            f"- **Persisted queries** (target 6): an unknown hash answered "
            f"`{a['not_found_code']}`; registering (query + hash) "
            f"{'worked' if a['registered'] else 'failed'}; hash-only answers "
            + (
                f"equal the full query's at {h['points']} points."
                if h.get("ok")
                else f"**differ or failed**: {(a['problems'] or h['mismatches'])[:1]}."
            )
        )
    d = checks.get("redis_down")
    if d:
        detail = (
            f"the same answers as the baseline at {d.get('points')} points "
            f"({d.get('fallbacks', 0):,} fallback warnings logged meanwhile)"
            if d.get("ok")
            else f"**failed**: {d.get('error') or d.get('mismatches', [])[:1]}"
        )
        down = result["targets"].get("graphql_redis_down") or {}
        lines.append(
            "- **Redis down** (target 4): the API started with `MOBILITY_REDIS_URL` "
            f"`{down.get('redis_url', 'unreachable')}` (nothing listens there, checked before and "
            f"after): {detail}."
        )
    return lines


def render(result: dict[str, Any]) -> Rendered:
    """The block for one run, from the JSON that run.py also writes to its results folder."""
    m, run, data = result["machine"], result["run"], result["data"]
    took = f" The run took {result['seconds'] / 60:.1f} min." if result.get("seconds") else ""
    lines = [
        f"Measured {result['finished_at']} with `{result['command']}`"
        + (f" (`{result['make']}`)" if result.get("make") else "")
        + (f" on a working tree based on commit `{m['commit']}`" if m.get("commit") else "")
        + f".{took}",
        "",
        *_goal_rows(result),
        *_chart_lines(result),
        *_load_rows(result),
        "",
        *_cpu_rows(result),
        *_sweep_rows(result),
        *_resume_rows(result),
        *tile_rows(result.get("tiles")),
        *_memory_rows(result),
        *_ingest_rows(result),
        *_push_rows(result),
        *subscription_report.rows(result),
        "",
    ]
    generation = (
        f"generated and loaded in {data['generate_seconds']:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in data['phases'].items())})"
        if data["generated"]
        else "already present (reused; generation not timed in this run)"
    )
    share = f"; cars are {100 * data['car_share']:.1f}% of them" if "car_share" in data else ""
    lines += [
        f"- **Data**: {data['count']:,} vehicles (seed {data['seed']}), "
        f"{data['indexed']:,} available and in the Redis GEO index{share}; {generation}.",
        f"- **Query**: radius {config.RADIUS_METERS:g} m, first {config.FIRST}, ten fields; "
        f"{run['points']:,} random points inside the ten city boxes, the same sequence for "
        "every load.",
        f"- **Load**: {m['wrk']}, {run['connections']} connections, {run['threads']} threads, "
        f"{run['warmup_s']:g} s warm-up then {run['duration_s']:g} s per load, one load "
        f"at a time, {_rounds(run)}; every response's status checked, every "
        f"{run['sample_every']}th body checked for errors.",
        f"- **Servers**: uvicorn {m['packages']['uvicorn']} with {run['workers']} workers each "
        "(uvloop, httptools, access log off); FastAPI "
        f"{m['packages']['fastapi']}, Strawberry {m['packages']['strawberry-graphql']}, "
        f"graphql-core {m['packages']['graphql-core']}, asyncpg {m['packages']['asyncpg']}.",
        *_check_lines(result),
        f"- **Machine**: {m['cpus']} x {m['cpu_model']}, {m['memory_gib']:g} GiB RAM, Linux "
        f"{m['kernel']}; Python {m['python']}; PostgreSQL {m['postgres']} "
        f"(shared_buffers {m['shared_buffers']}) + PostGIS {m['postgis']}; Redis {m['redis']}; "
        f"load average at start {' / '.join(str(x) for x in m['load_average'])}"
        + (f"; charts by matplotlib {m['matplotlib']}" if m.get("matplotlib") else "")
        + ".",
        f"- Raw figures: `bench/results/{result['run_id']}/result.json` (not committed).",
    ]
    return Rendered(mode=result["mode"], markdown="\n".join(lines))


def write_report(rendered: Rendered, path: Path = config.REPORT_PATH) -> None:
    """Replace the run's mode block in the document, creating the document if needed."""
    begin, end = _markers(rendered.mode)
    if path.exists():
        text = path.read_text()
    else:
        fb, fe = _markers("full")
        qb, qe = _markers("quick")
        text = _SKELETON.format(full_begin=fb, full_end=fe, quick_begin=qb, quick_end=qe)
    if begin not in text or end not in text:
        title = "Full run" if rendered.mode == "full" else "Latest quick run"
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}{begin}\n{rendered.markdown}\n{end}{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    """Re-render a saved run into the document: ``python -m bench.report <result.json>``."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    parser.add_argument("result", type=Path, help="bench/results/<run>/result.json")
    args = parser.parse_args(argv)
    result = orjson.loads(args.result.read_bytes())
    if result["mode"] not in ("full", "quick"):
        parser.error(f"a {result['mode']} run has no block in the document")
    write_report(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _rounds(run: dict[str, Any]) -> str:
    rounds = int(run.get("rounds", 1))
    if rounds == 1:
        return "each target's load in one piece"
    return (
        f"each ratio target's load in {rounds} interleaved rounds (baseline first in each; "
        "throughput over all rounds, latency percentiles weighted by each round's requests)"
    )
