"""The nearby-search benchmark: the GraphQL API against a plain FastAPI endpoint, same data, same
run, and every search target of the issue measured around it.

    python -m bench.run [--quick | --smoke] [--duration S] [--connections 16] [--skip-generate]

1. makes sure the fleet is in the bench database and the Redis GEO index (``bench.generate``);
2. starts the GraphQL API and the baseline with uvicorn and the same settings (2 workers each,
   127.0.0.1 only) and checks that they give the same answer for a set of points; checks the
   car filter's result counts against PostGIS and the persisted-query protocol;
3. starts an API whose Redis is unreachable and checks its answers too; loads the baseline,
   GraphQL, GraphQL filtered to cars, GraphQL by APQ hash and the Redis-down API with wrk over
   the same points, ``--duration`` seconds each split into ``--rounds`` interleaved rounds
   (baseline first in each; a warm-up before the first): whole-machine speed drifts between
   minutes here, and each ratio should compare servers, not minutes; reads the API processes'
   memory; then a short concurrency sweep of GraphQL and the baseline;
4. the outage and return of a private redis-server under load (``bench.outage``);
5. vector tiles against tipg (``bench.tiles``): the API's tiles and tipg's over the same vehicles,
   checked, then loaded at street zooms (z15, z16) and city zoom (z11) in interleaved rounds;
6. snapshot ingest (``bench.ingest``), push ingest (``bench.push``) and live updates to
   thousands of subscribers (``bench.subscriptions``), each with servers and stores of its own;
   then the Cairns feed's load (``bench.transit``) and journey queries against an independent
   Connection Scan (``bench.journeys``, in this process);
7. writes ``result.json`` and the charts, replaces this mode's block in ``docs/benchmarks.md``
   and prints one ``target <n> <name> <measured> <goal> <met|missed>`` line per target on
   stdout (progress goes to stderr).

A run whose GraphQL-vs-baseline comparison cannot be trusted (a server that does not start,
different answers, errors under their load, a PostGIS fallback in the API) exits non-zero and
leaves the document alone. A missed target is a result, not a failure: its line says why.

``--smoke`` is the few-seconds version ``make test`` runs: 20,000 vehicles in a database and
Redis db of its own (``mobility_bench_smoke``, db 13, prefix ``smoke``), 2 s per load (1 s per
tile load), no sweep, results in ``--results-dir``, the document untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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

from app.platform.redis import RedisKeys
from app.platform.vocabulary import FormFactor
from bench import charts, config
from bench.fleet import CITIES, query_points
from bench.generate import (
    GenerateReport,
    available_in_database,
    database_holds,
    ensure_fleet,
    index_holds,
    mark_synced,
    prepare_database,
)
from bench.goals import evaluate
from bench.ingest import measure as ingest_measure
from bench.journeys import measure as journeys_measure
from bench.load import SAMPLE_EVERY, ensure_wrk, wrk_version
from bench.measure import LoadPlan, error_total, measure, merge_rounds
from bench.outage import redis_down_server, resume
from bench.progress import say
from bench.push import DEFAULTS as PUSH_DEFAULTS
from bench.push import SMOKE as PUSH_SMOKE
from bench.push import measure as push_measure
from bench.report import machine_facts, render, write_report
from bench.servers import Server, free_port, group_memory, server_env
from bench.subscriptions import run_step as subscriptions_step
from bench.targets import (
    BASELINE,
    GRAPHQL,
    GRAPHQL_APQ,
    GRAPHQL_CARS,
    GRAPHQL_REDIS_DOWN,
    AnswerError,
    Target,
)
from bench.tiles import measure_tiles
from bench.transit import DEFAULT_REPEAT as transit_repeat
from bench.transit import measure as transit_measure
from bench.verify import check_apq, check_filtered, verify

# Per mode: (vehicles, seconds per load, warm-up, sweep seconds per level, outage phase s).
_MODES: dict[str, tuple[int, float, float, float, float]] = {
    "full": (config.FULL_COUNT, 30.0, 5.0, 10.0, 10.0),
    "quick": (config.QUICK_COUNT, 5.0, 2.0, 3.0, 4.0),
    "smoke": (config.SMOKE_COUNT, 2.0, 0.0, 0.0, 2.0),
}
SWEEP_LEVELS = (1, 4, 16, 32)
# Per mode: the ingest benchmark's (snapshot size, rounds); the figure is at 100,000.
# Per mode: the journey benchmark's queries (each implementation answers all of them).
_JOURNEY_QUERIES: dict[str, int] = {"full": 1000, "quick": 300, "smoke": 40}
_INGEST: dict[str, tuple[int, int]] = {
    "full": (100_000, 3),
    "quick": (20_000, 2),
    "smoke": (2_000, 1),
}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help=f"short run: {config.QUICK_COUNT:,} vehicles, 5 s per load, charts in the results",
    )
    size.add_argument(
        "--smoke",
        action="store_true",
        help=f"test run: {config.SMOKE_COUNT:,} vehicles in the smoke stores, 2 s per load, "
        "no sweep, document untouched",
    )
    parser.add_argument("--count", type=int, help=f"vehicles (default {config.FULL_COUNT:,})")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--duration", type=float, help="seconds of load per target (30; quick 5)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per target (5; quick 2)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds the ratio targets' load is split into (3; quick and smoke 1)",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--points", type=int, help="distinct query points (10,000; smoke 2,000)")
    parser.add_argument("--verify-points", type=int, help="points checked before the load (25)")
    parser.add_argument("--timeout", type=float, default=30.0, help="wrk per-request timeout")
    parser.add_argument(
        "--sweep",
        help="connection counts of the concurrency sweep, comma-separated "
        f"(default {','.join(map(str, SWEEP_LEVELS))}; 'none' skips it; smoke: none)",
    )
    parser.add_argument(
        "--sweep-duration", type=float, help="seconds per sweep level (10; quick 3)"
    )
    parser.add_argument(
        "--phase-duration", type=float, help="seconds per outage phase (10; quick 4; smoke 2)"
    )
    parser.add_argument(
        "--skip-generate", action="store_true", help="use the fleet already loaded, as it is"
    )
    parser.add_argument("--force", action="store_true", help="regenerate the fleet")
    parser.add_argument(
        "--no-tiles",
        action="store_true",
        help="skip the vector tiles against tipg (targets 9 to 12 are then missed)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument("--no-charts", action="store_true", help="do not draw the PNG charts")
    parser.add_argument(
        "--results-dir", type=Path, help="where the run's artifacts go (bench/results/<run>)"
    )
    args = parser.parse_args(argv)
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    count, duration, warmup, sweep_s, phase_s = _MODES[args.mode]
    args.count = args.count or count
    args.duration = args.duration or duration
    args.warmup = args.warmup if args.warmup is not None else warmup
    args.sweep_duration = args.sweep_duration or sweep_s
    args.phase_duration = args.phase_duration or phase_s
    args.points = args.points or (2_000 if args.smoke else 10_000)
    args.verify_points = args.verify_points or (5 if args.smoke else 25)
    args.settle = 0.5 if args.smoke else 2.0
    args.rounds = args.rounds or (3 if args.mode == "full" else 1)
    sweep = args.sweep or ("none" if args.smoke else ",".join(map(str, SWEEP_LEVELS)))
    try:
        args.sweep_levels = (
            [] if sweep == "none" else sorted({int(c) for c in sweep.split(",") if c.strip()})
        )
    except ValueError:
        parser.error("--sweep takes comma-separated connection counts, or 'none'")
    if args.smoke:
        args.no_report = True  # the test suite never rewrites the document
    if args.skip_generate and args.force:
        parser.error("--skip-generate and --force contradict each other")
    if min(args.count, args.connections, args.threads, args.workers, args.points, args.rounds) <= 0:
        parser.error("counts must be positive")
    if any(c <= 0 for c in args.sweep_levels):
        parser.error("sweep connection counts must be positive")
    if args.verify_points > args.points:
        parser.error("--verify-points must not exceed --points")
    return args


def _fail(message: str) -> NoReturn:
    say(f"FAILED: {message}")
    raise SystemExit(1)


async def _data(args: argparse.Namespace) -> tuple[GenerateReport | None, int, float]:
    """Ensure the fleet (unless --skip-generate); returns the report, the indexed count and the
    share of cars among the available vehicles (what target 3's filter selects)."""
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
                        f"--skip-generate, but {config.database_name()} does not hold "
                        f"{args.count:,} vehicles with seed {args.seed}; run without it"
                    )
                available = await available_in_database(conn)
                await mark_synced(conn)
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
    conn = await asyncpg.connect(config.DATABASE_URL)
    try:
        cars, total = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE form_factor = $1), count(*) FROM vehicles "
            "WHERE NOT is_reserved AND NOT is_disabled",
            FormFactor.CAR.value,
        )
    finally:
        await conn.close()
    return report, indexed, cars / total if total else 0.0


def _write_points(
    points: list[tuple[float, float]], seed: int, directory: Path
) -> tuple[Path, list[tuple[str, str]]]:
    # Written as text once: wrk sends these exact strings, and the checks read them back.
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"points-{seed}-{len(points)}.txt"
    texts = [(f"{lat:.6f}", f"{lon:.6f}") for lat, lon in points]
    path.write_text("".join(f"{lat} {lon}\n" for lat, lon in texts))
    return path, texts


def _server_env() -> dict[str, str]:
    return server_env(
        config.DATABASE_URL,
        config.REDIS_PREFIX,
        # The fleet is stamped as synced when the run starts and nothing syncs it during the
        # run: a day's limit keeps it fresh throughout, and search still checks freshness.
        MOBILITY_STALE_AFTER_SECONDS="86400",
        BENCH_DATABASE_URL=config.DATABASE_URL,
    )


def _memory(server: Server, after: str) -> dict[str, Any]:
    assert server.process is not None
    processes = group_memory(server.process.pid)
    say(
        f"API processes after {after}: "
        + ", ".join(f"{m.role} {m.pid} {m.rss_kib / 1024:.0f} MiB" for m in processes)
    )
    return {"after": after, "processes": [m.to_json() for m in processes]}


def _memory_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    # VmHWM only grows: the last sample holds each process's peak over the whole run.
    last = samples[-1]["processes"] if samples else []
    after_graphql: list[dict[str, Any]] = next(
        (s["processes"] for s in samples if s["after"] == "graphql"), []
    )
    return {
        "samples": samples,
        "max_peak_mib": max((p["peak_kib"] for p in last), default=0) / 1024 or None,
        "max_rss_after_graphql_mib": max((p["rss_kib"] for p in after_graphql), default=0) / 1024,
        "workers": sum(1 for p in last if p["role"] == "worker"),
    }


def _sweep_level(load: dict[str, Any]) -> dict[str, Any]:
    w = load["wrk"]
    return {
        "connections": load["connections"],
        "rps": w["rps"],
        "p50_ms": w["latency_ms"]["p50"],
        "p99_ms": w["latency_ms"]["p99"],
        "requests": w["requests"],
        "errors": error_total(load),
    }


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(config.PROJECT_ROOT))
    except ValueError:
        return str(path)


def _tiles(
    args: argparse.Namespace, plan: LoadPlan, env: dict[str, str], run_dir: Path
) -> dict[str, Any]:
    """Targets 9 to 12 (``bench.tiles``): a failure is a result to report, not a crashed run."""
    if args.no_tiles:
        say("vector tiles against tipg: skipped (--no-tiles)")
        return {"skipped": "--no-tiles"}
    # A second apiece is enough to show the loads run in smoke mode; the figures are not read.
    duration = 1.0 if args.smoke else args.duration
    say(
        f"vector tiles against tipg: {args.points:,} street tiles, the z11 tiles of the cities, "
        f"{duration:g} s per load in {args.rounds} round(s)"
    )
    try:
        return measure_tiles(
            plan.with_(duration_s=duration, warmup_s=min(args.warmup, duration)),
            env,
            workers=args.workers,
            rounds=args.rounds,
            tile_count=args.points,
            check_count=2 * args.verify_points,
            seed=args.seed,
        )
    except Exception as exc:
        say(f"tiles benchmark failed: {exc!r} (logs in {run_dir})")
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def _sigterm(signum: int, frame: object) -> None:
    # Turn `kill` into SystemExit, so the finally clauses still stop the servers.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.smoke:
        config.use_smoke_stores()
    signal.signal(signal.SIGTERM, _sigterm)
    matplotlib_version = charts.available()
    draw = not args.no_charts and matplotlib_version is not None
    if not args.no_charts and matplotlib_version is None:
        # The full run's charts are committed next to its figures: never leave stale ones.
        if args.mode == "full":
            _fail(
                "matplotlib is not installed, so the charts cannot be drawn: "
                "`.venv/bin/pip install matplotlib` or pass --no-charts"
            )
        say("matplotlib is not installed: no charts this run")
    started_at = datetime.now(UTC)
    load_average = [round(x, 2) for x in os.getloadavg()]
    suffix = "" if args.mode == "full" else f"-{args.mode}"
    run_id = started_at.strftime("%Y%m%dT%H%M%SZ") + suffix
    run_dir: Path = args.results_dir or config.RESULTS_DIR / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    say(f"run {run_id}: artifacts in {run_dir}; database {config.database_name()}")

    wrk = ensure_wrk()
    generated, indexed, car_share = asyncio.run(_data(args))
    facts = asyncio.run(machine_facts(wrk_version(wrk)))
    facts["load_average"] = load_average
    facts["matplotlib"] = matplotlib_version
    points_dir = run_dir if args.smoke else config.DATA_DIR
    points_path, points = _write_points(query_points(args.points, args.seed), args.seed, points_dir)
    check_points = points[: args.verify_points]
    # The filter check also asks at every city centre, where cars are densest.
    filter_points = check_points + [(f"{c.lat:.6f}", f"{c.lon:.6f}") for c in CITIES]

    plan = LoadPlan(
        wrk=wrk,
        points=points_path,
        run_dir=run_dir,
        connections=args.connections,
        threads=args.threads,
        timeout_s=args.timeout,
        duration_s=args.duration,
        warmup_s=args.warmup,
        settle_s=args.settle,
    )
    env = _server_env()
    servers = {
        t.key: Server(t, free_port(), run_dir / f"{t.key}-server.log") for t in (GRAPHQL, BASELINE)
    }
    targets: dict[str, dict[str, Any] | None] = {}
    checks: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    sweep: dict[str, Any] | None = None
    with contextlib.ExitStack() as stack:
        for server in servers.values():
            stack.callback(server.stop)
        for server in servers.values():
            server.start(workers=args.workers, env=env, cwd=config.PROJECT_ROOT)
        for server in servers.values():
            server.wait_ready(workers=args.workers)
        graphql, baseline = servers["graphql"], servers["baseline"]
        say(f"checking both answers for {len(check_points)} points")
        try:
            check, graphql_answers, baseline_answers = verify(graphql, baseline, check_points)
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
        checks["verify"] = check.to_json()
        say(f"checking the car filter against PostGIS at {len(filter_points)} points")
        filtered = check_filtered(graphql.url, filter_points)
        checks["filtered"] = filtered.to_json()
        say(
            f"car filter: {filtered.requests} answers, {len(filtered.mismatches)} wrong; "
            + ", ".join(f"first {k}: {v} full answers" for k, v in filtered.full.items())
        )
        say("checking the persisted-query protocol (unknown hash, register, hash only)")
        apq = check_apq(graphql.url, check_points, graphql_answers)
        checks["apq"] = apq.to_json()
        say(f"APQ: {'ok' if apq.ok else 'FAILED: ' + '; '.join(apq.problems)}")

        # Every ratio target is measured in interleaved rounds, the baseline first in each:
        # on this shared 2-core machine whole-run speed drifts by a quarter between minutes
        # (docs/performance.md), and loads taken minutes apart compared that drift as much as
        # the servers. Any warming of shared caches favours the baseline's first round.
        down_server, down_check = stack.enter_context(
            redis_down_server(
                plan, env, workers=args.workers, points=check_points, expected=baseline_answers
            )
        )
        checks["redis_down"] = down_check
        loads: list[tuple[str, Server, Target]] = [
            ("baseline", baseline, BASELINE),
            ("graphql", graphql, GRAPHQL),
            ("graphql_cars", graphql, GRAPHQL_CARS),
        ]
        if apq.registered:
            loads.append(("graphql_apq", graphql, GRAPHQL_APQ))
        else:
            targets["graphql_apq"] = None
        if down_server is not None:
            loads.append(("graphql_redis_down", down_server, GRAPHQL_REDIS_DOWN))
        else:
            targets["graphql_redis_down"] = None
        rounds: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in loads}
        round_plan = plan.with_(duration_s=plan.duration_s / args.rounds)
        for r in range(args.rounds):
            for key, server, target in loads:
                time.sleep(args.settle)
                label = key if args.rounds == 1 else f"{key}-round{r + 1}"
                rounds[key].append(
                    measure(
                        round_plan if r == 0 else round_plan.with_(warmup_s=0.0),
                        server,
                        target,
                        key=label,
                    )
                )
                if server is graphql:
                    samples.append(_memory(graphql, key))
        for key, measured in rounds.items():
            targets[key] = merge_rounds(measured)
        if args.sweep_levels:
            sweep = {"levels": args.sweep_levels, "duration_s": args.sweep_duration}
            sweep_plan = plan.with_(duration_s=args.sweep_duration, warmup_s=0.0)
            for key in ("baseline", "graphql"):
                sweep[key] = []
            for c in args.sweep_levels:
                for key, target in (("baseline", BASELINE), ("graphql", GRAPHQL)):
                    time.sleep(min(1.0, args.settle))
                    load = measure(
                        sweep_plan.with_(connections=c), servers[key], target, key=f"{key}-c{c}"
                    )
                    sweep[key].append(_sweep_level(load))
            samples.append(_memory(graphql, "sweep"))

    core = {k: targets[k] for k in ("baseline", "graphql")}
    broken = {k: t["wrk"] for k, t in core.items() if t is not None and error_total(t)}
    if broken:
        detail = "; ".join(
            f"{k}: {w['errors']}, bad status {w['bad_status']}, bad bodies {w['bad_body']} "
            f"(e.g. {w['example']!r})"
            for k, w in broken.items()
        )
        _fail(f"errors under load, report not written: {detail}")
    # The API degrades to PostGIS when Redis fails it; the GraphQL figure must come from the
    # Redis path, as production's does.
    if core["graphql"] and core["graphql"]["fallbacks"]:
        _fail(
            "the API fell back to PostGIS during the GraphQL load (see "
            f"{servers['graphql'].log_path}); report not written"
        )

    time.sleep(args.settle)
    resumed = resume(
        plan.with_(duration_s=args.phase_duration, warmup_s=0.0),
        env,
        workers=args.workers,
        count=args.count,
        seed=args.seed,
    )

    time.sleep(args.settle)
    tiles = _tiles(args, plan, env, run_dir)

    time.sleep(args.settle)
    ingest_count, ingest_repeat = _INGEST[args.mode]
    say(f"ingest: {ingest_count:,}-vehicle snapshot, {ingest_repeat} round(s)")
    try:
        ingest: dict[str, Any] = asyncio.run(ingest_measure(ingest_count, ingest_repeat, args.seed))
    except Exception as exc:  # a result to report (target 7 missed), not a crashed run
        say(f"ingest benchmark failed: {exc!r}")
        ingest = {"error": f"{exc.__class__.__name__}: {exc}", "count": ingest_count}

    time.sleep(args.settle)
    sizes = dict(PUSH_SMOKE if args.mode == "smoke" else PUSH_DEFAULTS)
    if args.mode == "quick":
        sizes["duration"] = 5.0
    say(f"push ingest: {sizes['senders']} senders for {sizes['duration']:g} s against a bare loop")
    try:
        push: dict[str, Any] = push_measure(
            fleet_size=int(sizes["fleet"]),
            batch=int(sizes["batch"]),
            senders=int(sizes["senders"]),
            duration=float(sizes["duration"]),
            seed=args.seed,
            run_dir=run_dir,
        )
    except Exception as exc:  # a result to report (target 8 missed), not a crashed run
        say(f"push benchmark failed: {exc!r}")
        push = {"error": f"{exc.__class__.__name__}: {exc}"}

    time.sleep(args.settle)
    # Target 13: its own database, API server and subscriber processes (bench/subscriptions.py).
    subscriptions = subscriptions_step(args.mode, seed=args.seed, run_dir=run_dir)

    time.sleep(args.settle)
    say("transit: the Cairns GTFS feed loaded against a raw COPY of its stop times")
    try:
        transit: dict[str, Any] = asyncio.run(
            transit_measure(1 if args.mode == "smoke" else transit_repeat)
        )
    except Exception as exc:  # a result to report (target 14 missed), not a crashed run
        say(f"transit benchmark failed: {exc!r}")
        transit = {"error": f"{exc.__class__.__name__}: {exc}"}

    # Target 15: pure computation in this process, no server (bench/journeys.py).
    try:
        journeys: dict[str, Any] = journeys_measure(_JOURNEY_QUERIES[args.mode], args.seed)
    except Exception as exc:  # a result to report (target 15 missed), not a crashed run
        say(f"journey benchmark failed: {exc!r}")
        journeys = {"error": f"{exc.__class__.__name__}: {exc}"}

    finished_at = datetime.now(UTC)
    command = "python -m bench.run" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    make_target = {"full": "make bench", "quick": "make bench-quick"}.get(args.mode)
    result: dict[str, Any] = {
        "run_id": run_id,
        "mode": args.mode,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at.strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": (finished_at - started_at).total_seconds(),
        "command": command,
        "make": make_target if "MAKELEVEL" in os.environ else None,
        "machine": facts,
        "run": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "connections": args.connections,
            "threads": args.threads,
            "workers": args.workers,
            "points": args.points,
            "verify_points": len(check_points),
            "filter_points": len(filter_points),
            "sample_every": SAMPLE_EVERY,
            "timeout_s": args.timeout,
            "phase_s": args.phase_duration,
        },
        "data": {
            "database": config.database_name(),
            "count": args.count,
            "seed": args.seed,
            "indexed": indexed,
            "car_share": car_share,
            "generated": bool(generated and generated.generated),
            "generate_seconds": generated.seconds if generated else None,
            "phases": generated.phases if generated else {},
        },
        # Kept for `python -m bench.report` on older results.
        "verify": checks["verify"],
        "checks": checks,
        "targets": targets,
        "memory": _memory_summary(samples),
        "sweep": sweep,
        "resume": resumed,
        "tiles": tiles,
        "ingest": ingest,
        "push": push,
        "subscriptions": subscriptions,
        "transit": transit,
        "journeys": journeys,
    }
    goals = evaluate(result)
    result["goals"] = [g.to_json() for g in goals]
    if draw:
        out = config.CHARTS_DIR if args.mode == "full" else run_dir / "charts"
        written = charts.render_charts(result, out)
        result["charts"] = {name: _relative(Path(p)) for name, p in written.items()}
        say("charts: " + ", ".join(result["charts"].values()))
    (run_dir / "result.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    say(f"raw results: {run_dir / 'result.json'}")
    lines = [g.line() for g in goals]
    (run_dir / "targets.txt").write_text("\n".join(lines) + "\n")
    if not args.no_report:
        write_report(render(result))
        say(f"wrote {config.REPORT_PATH.relative_to(config.PROJECT_ROOT)} ({args.mode} block)")
    for goal in goals:
        say(f"target {goal.number}: {goal.why}")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
