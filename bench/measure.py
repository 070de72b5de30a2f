"""One measured load: optional warm-up, then wrk for a fixed time, with CPU time from /proc and
the number of PostGIS fallbacks the server logged meanwhile."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import config
from bench.load import WrkResult, run_wrk, write_script
from bench.progress import say
from bench.servers import CpuSample, Server, cpu_sample
from bench.targets import Target

# What app.search.service logs when it answers from PostGIS instead of the Redis index.
FALLBACK_LOG_LINE = "answering from PostGIS"


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """How every load of a run is driven; a target may override the duration or concurrency."""

    wrk: str
    points: Path  # the request list: one line of fields per request (lat lon; z x y for tiles)
    run_dir: Path
    connections: int
    threads: int
    timeout_s: float
    duration_s: float
    warmup_s: float
    settle_s: float  # pause between loads, for connections and backends to settle

    def with_(self, **changes: Any) -> LoadPlan:
        return replace(self, **changes)


def fallbacks(server: Server) -> int:
    """How many times the server has logged a PostGIS fallback so far."""
    try:
        return server.log_path.read_text(errors="replace").count(FALLBACK_LOG_LINE)
    except OSError:
        return 0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    plan: LoadPlan,
    server: Server,
    target: Target,
    *,
    key: str | None = None,
    during: Callable[[], None] | None = None,
    during_at_s: float = 0.0,
) -> dict[str, Any]:
    """Load ``server`` with ``target``'s requests. ``during`` runs once, ``during_at_s`` seconds
    into the measured part (the outage scenario stops and starts Redis that way)."""
    key = key or target.key
    script = write_script(target, plan.run_dir)
    url = server.base_url + target.path
    common: dict[str, Any] = {
        "url": url,
        "script": script,
        "points": plan.points,
        "connections": plan.connections,
        "threads": plan.threads,
        "timeout_s": plan.timeout_s,
    }
    warm: WrkResult | None = None
    if plan.warmup_s > 0:
        say(f"{key}: warm-up {plan.warmup_s:g}s")
        warm = run_wrk(
            plan.wrk, duration_s=plan.warmup_s, log=plan.run_dir / f"{key}-warmup.txt", **common
        )
        time.sleep(min(1.0, plan.settle_s))
    say(f"{key}: load {plan.duration_s:g}s, {plan.connections} connections")
    assert server.process is not None
    database = config.database_name()
    before: CpuSample = cpu_sample(server.process.pid, database)
    fallbacks_before = fallbacks(server)
    wrk_before = _children_cpu()
    log = plan.run_dir / f"{key}.txt"
    if during is None:
        result = run_wrk(plan.wrk, duration_s=plan.duration_s, log=log, **common)
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(run_wrk, plan.wrk, duration_s=plan.duration_s, log=log, **common)
            time.sleep(during_at_s)
            during()
            result = running.result()
    wrk_cpu = _children_cpu() - wrk_before
    used = cpu_sample(server.process.pid, database).minus(before)
    n = max(result.requests, 1)
    lat = result.latency_ms
    fell_back = fallbacks(server) - fallbacks_before
    say(
        f"{key}: {result.rps:,.1f} req/s, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
        f"{result.requests:,} requests, {result.error_total} errors"
        + (f", {fell_back:,} PostGIS fallbacks" if fell_back else "")
    )
    return {
        "label": target.label,
        "url": url,
        "connections": plan.connections,
        "wrk": result.to_json(),
        "warmup": None if warm is None else {"requests": warm.requests, "rps": warm.rps},
        "fallbacks": fell_back,
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


def error_total(load: dict[str, Any]) -> int:
    w = load["wrk"]
    return int(sum(w["errors"].values()) + w["bad_status"] + w["bad_body"])


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One target's figures from its interleaved rounds (see ``bench.run``).

    Throughput is all requests over all measured seconds. Latency percentiles (and the chart's
    distribution) are the rounds' percentiles weighted by their requests: wrk reports each
    round's histogram only as percentiles, so this is an approximation of the merged
    histogram's, applied identically to every target, so the ratios compare like with like.
    CPU per request is weighted by requests, machine busy-ness by seconds.
    """
    if len(rounds) == 1:
        return {**rounds[0], "rounds": 1}
    first = rounds[0]
    weights: list[int] = [max(int(r["wrk"]["requests"]), 1) for r in rounds]
    total = sum(weights)

    def weighted(values: list[float]) -> float:
        return float(sum(v * w for v, w in zip(values, weights, strict=True))) / total

    wrks = [r["wrk"] for r in rounds]
    requests = sum(w["requests"] for w in wrks)
    duration = sum(w["duration_s"] for w in wrks)
    errors: dict[str, int] = {}
    for w in wrks:
        for k, v in w["errors"].items():
            errors[k] = errors.get(k, 0) + v
    distribution = [
        [pairs[0][0], weighted([p[1] for p in pairs])]
        for pairs in zip(*(w["distribution_ms"] for w in wrks), strict=True)
    ]
    wrk = {
        **wrks[0],
        "requests": requests,
        "duration_s": duration,
        "bytes": sum(w["bytes"] for w in wrks),
        "rps": requests / duration if duration else 0.0,
        "errors": errors,
        "latency_ms": {
            k: weighted([w["latency_ms"][k] for w in wrks]) for k in wrks[0]["latency_ms"]
        },
        "distribution_ms": distribution,
        "responses": sum(w["responses"] for w in wrks),
        "bad_status": sum(w["bad_status"] for w in wrks),
        "checked": sum(w["checked"] for w in wrks),
        "bad_body": sum(w["bad_body"] for w in wrks),
        "body_bytes": sum(w.get("body_bytes", 0) for w in wrks),
        "example": next((w["example"] for w in wrks if w["example"]), ""),
    }
    cpus = [r["cpu"] for r in rounds]
    seconds = [c["seconds"] for c in cpus]
    cpu = {k: weighted([c[k] for c in cpus]) for k in cpus[0] if k.endswith("_per_request")}
    busy = sum(c["machine_busy_percent"] * s for c, s in zip(cpus, seconds, strict=True))
    cpu["machine_busy_percent"] = busy / sum(seconds) if sum(seconds) else 0.0
    cpu["seconds"] = sum(seconds)
    return {
        **first,
        "wrk": wrk,
        "fallbacks": sum(r["fallbacks"] for r in rounds),
        "cpu": cpu,
        "rounds": len(rounds),
        "round_rps": [w["rps"] for w in wrks],
    }
