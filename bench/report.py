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

from bench import config

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
    r = a / b
    return f"{r:.3f}x" if r < 1 else f"{r:.1f}x"


def _mm(metres: float) -> str:
    return "under 0.001 mm" if metres < 1e-6 else f"{metres * 1000:.3f} mm"


@dataclass(frozen=True, slots=True)
class Rendered:
    mode: str
    markdown: str


def render(result: dict[str, Any]) -> Rendered:
    """The block for one run, from the JSON that run.py also writes to bench/results/."""
    g, b = result["targets"]["graphql"], result["targets"]["baseline"]
    gl, bl = g["wrk"]["latency_ms"], b["wrk"]["latency_ms"]
    m, run, data, check = result["machine"], result["run"], result["data"], result["verify"]
    lines = [
        f"Measured {result['finished_at']} with `{result['command']}`"
        + (f" (`{result['make']}`)" if result.get("make") else "")
        + (f" on a working tree based on commit `{m['commit']}`" if m.get("commit") else "")
        + ".",
        "",
        "| target | requests/s | p50 | p90 | p99 | max | requests | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in (g, b):
        w = t["wrk"]
        lat = w["latency_ms"]
        errors = sum(w["errors"].values()) + w["bad_status"] + w["bad_body"]
        lines.append(
            f"| {t['label']} | {w['rps']:,.0f} | {_ms(lat['p50'])} | {_ms(lat['p90'])} | "
            f"{_ms(lat['p99'])} | {_ms(lat['max'])} | {w['requests']:,} | {errors} |"
        )
    lines.append(
        f"| **GraphQL / baseline** | **{_ratio(g['wrk']['rps'], b['wrk']['rps'])}** | "
        f"**{_ratio(gl['p50'], bl['p50'])}** | {_ratio(gl['p90'], bl['p90'])} | "
        f"**{_ratio(gl['p99'], bl['p99'])}** | {_ratio(gl['max'], bl['max'])} | | |"
    )
    lines += [
        "",
        "CPU time per request while under load, from /proc. The last column is machine time "
        "no process above accounts for: kernel network processing on the loopback, PostgreSQL's "
        "background processes, and anything else that ran at the same time.",
        "",
        "| target | server processes | PostgreSQL (bench backends) | redis-server | wrk | "
        "machine busy | of which unattributed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in (g, b):
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
    generation = (
        f"generated and loaded in {data['generate_seconds']:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in data['phases'].items())})"
        if data["generated"]
        else "already present (reused; generation not timed in this run)"
    )
    lines += [
        "",
        f"- **Data**: {data['count']:,} vehicles (seed {data['seed']}), "
        f"{data['indexed']:,} available and in the Redis GEO index; {generation}.",
        f"- **Query**: radius {config.RADIUS_METERS:g} m, first {config.FIRST}, ten fields; "
        f"{run['points']:,} random points inside the ten city boxes, the same sequence for "
        "both targets.",
        f"- **Load**: {m['wrk']}, {run['connections']} connections, {run['threads']} threads, "
        f"{run['warmup_s']:g} s warm-up then {run['duration_s']:g} s per target, one target "
        f"at a time; every response's status checked, every {run['sample_every']}th body "
        "checked for errors.",
        f"- **Servers**: uvicorn {m['packages']['uvicorn']} with {run['workers']} workers each "
        "(uvloop, httptools, access log off); FastAPI "
        f"{m['packages']['fastapi']}, Strawberry {m['packages']['strawberry-graphql']}, "
        f"graphql-core {m['packages']['graphql-core']}, asyncpg {m['packages']['asyncpg']}.",
        f"- **Correctness** (before the load): {check['points']} points, "
        f"{check['vehicles']:,} vehicles compared, same ids in the same order, largest "
        f"distance difference {_mm(check['max_distance_diff_m'])}.",
        f"- **Machine**: {m['cpus']} x {m['cpu_model']}, {m['memory_gib']:g} GiB RAM, Linux "
        f"{m['kernel']}; Python {m['python']}; PostgreSQL {m['postgres']} "
        f"(shared_buffers {m['shared_buffers']}) + PostGIS {m['postgis']}; Redis {m['redis']}; "
        f"load average at start {' / '.join(str(x) for x in m['load_average'])}.",
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
    write_report(render(orjson.loads(args.result.read_bytes())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
