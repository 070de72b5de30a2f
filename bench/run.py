"""The nearby-search benchmark: GraphQL API vs a plain FastAPI endpoint, same data, same run.

    python -m bench.run [--quick] [--duration S] [--connections 16] [--skip-generate]

1. makes sure the fleet is in ``mobility_bench`` and the Redis GEO index (``bench.generate``);
2. starts both servers with uvicorn and the same settings (2 workers each, 127.0.0.1 only);
3. checks that both give the same answer for a set of points;
4. for each server in turn: a warm-up, then ``--duration`` seconds of wrk load over the same
   points, with every status and a sample of the bodies checked;
5. stops the servers (always), writes ``bench/results/<run>/result.json`` and replaces this
   mode's block in ``docs/benchmarks.md``.

A run with errors or a failed correctness check exits non-zero and leaves the document alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import orjson
from redis.asyncio import Redis

from app.redis import RedisKeys
from bench import config
from bench.fleet import query_points
from bench.generate import (
    GenerateReport,
    available_in_database,
    database_holds,
    ensure_fleet,
    index_holds,
    prepare_database,
)
from bench.load import SAMPLE_EVERY, WrkResult, ensure_wrk, run_wrk, write_script, wrk_version
from bench.progress import say
from bench.report import machine_facts, render, write_report
from bench.servers import CpuSample, Server, cpu_sample, free_port
from bench.targets import BASELINE, GRAPHQL, AnswerError, Target
from bench.verify import verify

DATABASE_NAME = config.DATABASE_URL.rsplit("/", 1)[-1]
# What app.search.service logs when it answers from PostGIS instead of the Redis index.
FALLBACK_LOG_LINE = "answering from PostGIS"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {config.QUICK_COUNT:,} vehicles, 5 s per target",
    )
    parser.add_argument("--count", type=int, help=f"vehicles (default {config.FULL_COUNT:,})")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--duration", type=float, help="seconds of load per target (30; quick 5)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per target (5; quick 2)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--points", type=int, default=10_000, help="distinct query points")
    parser.add_argument("--verify-points", type=int, default=25)
    parser.add_argument("--timeout", type=float, default=30.0, help="wrk per-request timeout")
    parser.add_argument(
        "--skip-generate", action="store_true", help="use the fleet already loaded, as it is"
    )
    parser.add_argument("--force", action="store_true", help="regenerate the fleet")
    parser.add_argument("--no-report", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.count = args.count or (config.QUICK_COUNT if args.quick else config.FULL_COUNT)
    args.duration = args.duration or (5.0 if args.quick else 30.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    if args.skip_generate and args.force:
        parser.error("--skip-generate and --force contradict each other")
    if min(args.count, args.connections, args.threads, args.workers, args.points) <= 0:
        parser.error("counts must be positive")
    if args.verify_points > args.points:
        parser.error("--verify-points must not exceed --points")
    return args


def _fail(message: str) -> NoReturn:
    say(f"FAILED: {message}")
    raise SystemExit(1)


async def _data(args: argparse.Namespace) -> tuple[GenerateReport | None, int]:
    """Ensure the fleet (unless --skip-generate); returns the report and the indexed count."""
    report: GenerateReport | None = None
    redis = Redis.from_url(config.REDIS_URL)
    try:
        keys = RedisKeys(config.REDIS_PREFIX)
        if args.skip_generate:
            # Migrations still run: the API under test expects the schema at head.
            await prepare_database()
            conn = await asyncpg.connect(config.DATABASE_URL)
            try:
                if not await database_holds(conn, args.count, args.seed):
                    _fail(
                        f"--skip-generate, but mobility_bench does not hold {args.count:,} "
                        f"vehicles with seed {args.seed}; run without it"
                    )
                available = await available_in_database(conn)
            finally:
                await conn.close()
            # An index that is not complete would send the API to PostGIS: a different path.
            if not await index_holds(redis, keys, available):
                _fail("--skip-generate, but the Redis index is incomplete; run without it")
        else:
            report = await ensure_fleet(args.count, args.seed, force=args.force)
        indexed = int(await redis.zcard(keys.vehicle_geo))
    finally:
        await redis.aclose()
    return report, indexed


def _write_points(
    points: list[tuple[float, float]], seed: int
) -> tuple[Path, list[tuple[str, str]]]:
    # Written as text once: wrk sends these exact strings, and the check reads them back.
    config.DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = config.DATA_DIR / f"points-{seed}-{len(points)}.txt"
    texts = [(f"{lat:.6f}", f"{lon:.6f}") for lat, lon in points]
    path.write_text("".join(f"{lat} {lon}\n" for lat, lon in texts))
    return path, texts


def _server_env() -> dict[str, str]:
    # Nothing inherited from MOBILITY_*/BENCH_* (make exports the demo database's URL).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOBILITY_", "BENCH_"))}
    env.update(
        MOBILITY_DATABASE_URL=config.DATABASE_URL,
        MOBILITY_REDIS_URL=config.REDIS_URL,
        MOBILITY_REDIS_PREFIX=config.REDIS_PREFIX,
        MOBILITY_BACKGROUND_SYNC="false",
        MOBILITY_DEMO_FEEDS="false",
        MOBILITY_ENVIRONMENT="production",
        BENCH_DATABASE_URL=config.DATABASE_URL,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(config.PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        ),
    )
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load(
    args: argparse.Namespace, wrk: str, server: Server, points: Path, run_dir: Path
) -> dict[str, Any]:
    target = server.target
    script = write_script(target, run_dir)
    common: dict[str, Any] = {
        "url": server.url,
        "script": script,
        "points": points,
        "connections": args.connections,
        "threads": args.threads,
        "timeout_s": args.timeout,
    }
    warm: WrkResult | None = None
    if args.warmup > 0:
        say(f"{target.key}: warm-up {args.warmup:g}s")
        warm = run_wrk(
            wrk, duration_s=args.warmup, log=run_dir / f"{target.key}-warmup.txt", **common
        )
        time.sleep(1.0)
    say(f"{target.key}: load {args.duration:g}s, {args.connections} connections")
    assert server.process is not None
    before: CpuSample = cpu_sample(server.process.pid, DATABASE_NAME)
    wrk_before = _children_cpu()
    result = run_wrk(wrk, duration_s=args.duration, log=run_dir / f"{target.key}.txt", **common)
    wrk_cpu = _children_cpu() - wrk_before
    used = cpu_sample(server.process.pid, DATABASE_NAME).minus(before)
    n = max(result.requests, 1)
    lat = result.latency_ms
    say(
        f"{target.key}: {result.rps:,.1f} req/s, p50 {lat['p50']:.2f} ms, "
        f"p99 {lat['p99']:.2f} ms, {result.requests:,} requests, {result.error_total} errors"
    )
    return {
        "label": target.label,
        "url": server.url,
        "wrk": result.to_json(),
        "warmup": None if warm is None else {"requests": warm.requests, "rps": warm.rps},
        "cpu": {
            "server_ms_per_request": 1000 * used.group / n,
            "postgres_ms_per_request": 1000 * used.postgres / n,
            "redis_ms_per_request": 1000 * used.redis / n,
            "wrk_ms_per_request": 1000 * wrk_cpu / n,
            "machine_busy_percent": 100 * used.machine_busy / used.machine_total
            if used.machine_total
            else 0.0,
            "seconds": used.monotonic,
        },
    }


def _error_total(w: dict[str, Any]) -> int:
    return int(sum(w["errors"].values()) + w["bad_status"] + w["bad_body"])


def _sigterm(signum: int, frame: object) -> None:
    # Turn `kill` into SystemExit, so the finally clause still stops the servers.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    started_at = datetime.now(UTC)
    load_average = [round(x, 2) for x in os.getloadavg()]
    run_id = started_at.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
    run_dir = config.RESULTS_DIR / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    say(f"run {run_id}: artifacts in {run_dir}")

    wrk = ensure_wrk()
    generated, indexed = asyncio.run(_data(args))
    facts = asyncio.run(machine_facts(wrk_version(wrk)))
    facts["load_average"] = load_average
    points_path, points = _write_points(query_points(args.points, args.seed), args.seed)

    env = _server_env()
    servers = {
        t.key: Server(t, free_port(), run_dir / f"{t.key}-server.log") for t in (GRAPHQL, BASELINE)
    }
    targets: dict[str, dict[str, Any]] = {}
    try:
        for server in servers.values():
            server.start(workers=args.workers, env=env, cwd=config.PROJECT_ROOT)
        for server in servers.values():
            server.wait_ready(workers=args.workers)
        say(f"checking both answers for {args.verify_points} points")
        try:
            check = verify(servers["graphql"], servers["baseline"], points[: args.verify_points])
        except (AnswerError, RuntimeError, httpx.HTTPError) as exc:
            logs = ", ".join(str(s.log_path) for s in servers.values())
            _fail(f"a server did not answer the check: {exc}\n(server logs: {logs})")
        if not check.ok:
            detail = "\n".join(check.mismatches[:10]) or "no vehicles found"
            _fail(f"the two servers disagree ({len(check.mismatches)} points):\n{detail}")
        say(
            f"same answers: {check.vehicles:,} vehicles over {check.points} points, "
            f"largest distance difference {check.max_distance_diff_m * 1000:.3f} mm"
        )
        # The baseline first: any warming of shared caches (PostgreSQL buffers, the OS page
        # cache) then favours the GraphQL run, not the reference.
        order: tuple[Target, ...] = (BASELINE, GRAPHQL)
        for i, target in enumerate(order):
            if i:
                time.sleep(2.0)  # let the previous run's connections and backends settle
            targets[target.key] = _load(args, wrk, servers[target.key], points_path, run_dir)
    finally:
        for server in servers.values():
            server.stop()
    # The API degrades to PostGIS when Redis fails it; numbers from that path are not the
    # ones this benchmark reports, so a fallback anywhere in the run invalidates it.
    if FALLBACK_LOG_LINE in servers["graphql"].log_path.read_text(errors="replace"):
        _fail(
            "the API fell back to PostGIS during the run (see "
            f"{servers['graphql'].log_path}); report not written"
        )

    finished_at = datetime.now(UTC)
    command = "python -m bench.run" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    result: dict[str, Any] = {
        "run_id": run_id,
        "mode": "quick" if args.quick else "full",
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "make": ("make bench-quick" if args.quick else "make bench")
        if "MAKELEVEL" in os.environ
        else None,
        "machine": facts,
        "run": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
            "workers": args.workers,
            "points": args.points,
            "sample_every": SAMPLE_EVERY,
            "timeout_s": args.timeout,
        },
        "data": {
            "count": args.count,
            "seed": args.seed,
            "indexed": indexed,
            "generated": bool(generated and generated.generated),
            "generate_seconds": generated.seconds if generated else None,
            "phases": generated.phases if generated else {},
        },
        "verify": {
            "points": check.points,
            "vehicles": check.vehicles,
            "max_distance_diff_m": check.max_distance_diff_m,
            "min_results": check.min_results,
        },
        "targets": targets,
    }
    (run_dir / "result.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    say(f"raw results: {run_dir / 'result.json'}")
    broken = {k: t["wrk"] for k, t in targets.items() if _error_total(t["wrk"])}
    if broken:
        detail = "; ".join(
            f"{k}: {w['errors']}, bad status {w['bad_status']}, bad bodies {w['bad_body']} "
            f"(e.g. {w['example']!r})"
            for k, w in broken.items()
        )
        _fail(f"errors under load, report not written: {detail}")
    if not args.no_report:
        write_report(render(result))
        say(f"wrote {config.REPORT_PATH.relative_to(config.PROJECT_ROOT)} ({result['mode']} block)")
    g, b = targets["graphql"]["wrk"], targets["baseline"]["wrk"]
    say(
        f"GraphQL {g['rps']:,.1f} req/s vs baseline {b['rps']:,.1f} req/s "
        f"(ratio {g['rps'] / b['rps']:.2f}); p99 {g['latency_ms']['p99']:.1f} ms vs "
        f"{b['latency_ms']['p99']:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
