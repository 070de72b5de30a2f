"""Target 4: search with Redis gone, and the way back, without touching the shared Redis.

- :func:`redis_down`: a GraphQL server whose Redis URL points at a port where nothing listens,
  so every search falls back to PostGIS; its answers are checked against the baseline's, then
  it is loaded like the others.
- :func:`resume`: a GraphQL server on a private redis-server (started by the bench, no
  persistence) holding the index. Four short loads: Redis up; Redis stopped during the load;
  Redis started again (empty, as after a crash) during the load; Redis refilled. The check is
  that every request of every phase succeeds. Where answers came from is reported per phase
  (PostGIS fallbacks the server logged; commands the private Redis served).

The benchmark's servers run without background sync, so nothing in the app rebuilds an index
that Redis lost: the refill (the bench's own index fill, what ``bench.generate`` does) stands
in for the scheduler's rebuild. Whether the process then uses the index again, without a
restart, is what the last phase shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from redis import Redis as SyncRedis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from bench import config
from bench.fleet import Fleet, generate_fleet
from bench.generate import fill_index
from bench.measure import LoadPlan, error_total, fallbacks, measure
from bench.progress import say
from bench.servers import RedisServer, Server, free_port
from bench.targets import GRAPHQL, GRAPHQL_REDIS_DOWN, AnswerError, Row
from bench.verify import Point, compare_with, fetch_answers

# Requests that retry a dead Redis can take seconds: give the check room.
CHECK_TIMEOUT_S = 120.0


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def _dead_port() -> int:
    for _ in range(20):
        port = free_port()
        if _refused(port):
            return port
    raise RuntimeError("found no free port for the unreachable Redis")


@contextlib.contextmanager
def redis_down_server(
    plan: LoadPlan,
    env: dict[str, str],
    *,
    workers: int,
    points: Sequence[Point],
    expected: Sequence[Sequence[Row]],
) -> Iterator[tuple[Server | None, dict[str, Any]]]:
    """An API server whose Redis is unreachable, its answers checked against the baseline's:
    (the server, the check). The server is None when it could not answer; the caller loads
    it (in the main rounds, beside the baseline), and on exit the check also records whether
    anything started listening on the dead port meanwhile."""
    port = _dead_port()
    url = f"redis://127.0.0.1:{port}/0"
    say(f"Redis-down target: the API's Redis is {url}, where nothing listens")
    server = Server(GRAPHQL_REDIS_DOWN, free_port(), plan.run_dir / "graphql_redis_down-server.log")
    check: dict[str, Any]
    try:
        server.start(
            workers=workers, env={**env, "MOBILITY_REDIS_URL": url}, cwd=config.PROJECT_ROOT
        )
        server.wait_ready(workers=workers, timeout_s=180.0)
        try:
            answers = fetch_answers(
                server.url, GRAPHQL_REDIS_DOWN, points, concurrency=8, timeout_s=CHECK_TIMEOUT_S
            )
        except (AnswerError, RuntimeError, httpx.HTTPError) as exc:
            yield None, {"ok": False, "error": f"the server did not answer: {exc}"}
            return
        report = compare_with(answers, expected, points, ("redis-down", "baseline"))
        check = report.to_json()
        check["fallbacks"] = fallbacks(server)
        check["redis_url"] = url
        say(
            f"Redis-down answers vs baseline: {report.points} points, "
            f"{len(report.mismatches)} mismatches, {check['fallbacks']} PostGIS fallbacks logged"
        )
        yield server, check
        # Nothing may have started listening there meanwhile, or the figure is not Redis-down.
        if not _refused(port):
            check["ok"] = False
            check["error"] = f"something answered on port {port} during the run"
    finally:
        server.stop()


async def _fill(url: str, fleet: Fleet) -> None:
    client = AsyncRedis.from_url(url)
    try:
        await fill_index(client, fleet)
    finally:
        await client.aclose()


def _commands(url: str) -> int | None:
    """Commands the private Redis has processed so far (None while it is down)."""
    try:
        client = SyncRedis.from_url(url, socket_timeout=2.0)
        try:
            stats: dict[str, Any] = client.info("stats")
            return int(stats["total_commands_processed"])
        finally:
            client.close()
    except (RedisError, OSError):
        return None


def _phase(
    plan: LoadPlan,
    server: Server,
    redis: RedisServer,
    name: str,
    what: str,
    *,
    stop: bool = False,
    start: bool = False,
) -> dict[str, Any]:
    """One phase of load; ``stop``/``start`` the private Redis a third of the way in.

    Where the answers came from is read on the Redis side, so it does not depend on what the
    API logs: the commands the private Redis served during the phase (counted up to the stop,
    or from the start).
    """
    counted: dict[str, int | None] = {"before": None if start else _commands(redis.url)}

    def action() -> None:
        if stop:
            counted["at_stop"] = _commands(redis.url)
            redis.stop()
        if start:
            redis.start()
            counted["before"] = 0  # a new server counts from zero

    load = measure(
        plan,
        server,
        GRAPHQL,
        key=f"resume-{name}",
        during=action if stop or start else None,
        during_at_s=plan.duration_s / 3,
    )
    after = counted.get("at_stop") if stop else _commands(redis.url)
    before = counted["before"]
    w = load["wrk"]
    # Each reading is one INFO command itself.
    commands = None if before is None or after is None else max(0, after - before - 1)
    return {
        "phase": name,
        "what": what,
        "requests": w["requests"],
        "rps": w["rps"],
        "p50_ms": w["latency_ms"]["p50"],
        "p99_ms": w["latency_ms"]["p99"],
        "max_ms": w["latency_ms"]["max"],
        "errors": error_total(load),
        "example": w["example"],
        "fallbacks": load["fallbacks"],
        "redis_commands": commands,
        "redis_commands_per_request": None
        if commands is None
        else commands / max(1, w["requests"]),
        "server_ms_per_request": load["cpu"]["server_ms_per_request"],
        "machine_busy_percent": load["cpu"]["machine_busy_percent"],
    }


def resume(
    plan: LoadPlan, env: dict[str, str], *, workers: int, count: int, seed: int
) -> dict[str, Any]:
    """The outage and the way back; ``ok`` when every request of every phase succeeded."""
    redis = RedisServer(free_port(), plan.run_dir)
    server = Server(GRAPHQL, free_port(), plan.run_dir / "graphql_resume-server.log", name="resume")
    phases: list[dict[str, Any]] = []
    out: dict[str, Any] = {"ok": False, "why": None, "phases": phases, "redis_port": redis.port}
    try:
        redis.start()
        say(f"resume check: generating the fleet again ({count:,}) to fill the private Redis")
        started = time.perf_counter()
        fleet = generate_fleet(count, seed)
        asyncio.run(_fill(redis.url, fleet))
        out["fill_s"] = time.perf_counter() - started
        server.start(
            workers=workers, env={**env, "MOBILITY_REDIS_URL": redis.url}, cwd=config.PROJECT_ROOT
        )
        server.wait_ready(workers=workers)
        phases.append(_phase(plan, server, redis, "up", "Redis up, index complete"))
        time.sleep(plan.settle_s)
        phases.append(
            _phase(
                plan,
                server,
                redis,
                "outage",
                "Redis stopped a third of the way into the load",
                stop=True,
            )
        )
        time.sleep(plan.settle_s)
        phases.append(
            _phase(
                plan,
                server,
                redis,
                "back-empty",
                "Redis started again a third of the way in, empty (no persistence)",
                start=True,
            )
        )
        say("resume check: refilling the private Redis (what the scheduler's rebuild would do)")
        started = time.perf_counter()
        asyncio.run(_fill(redis.url, fleet))
        out["refill_s"] = time.perf_counter() - started
        del fleet
        time.sleep(plan.settle_s)
        phases.append(
            _phase(plan, server, redis, "refilled", "Redis back with the index, same process")
        )
    except (RuntimeError, OSError, RedisError, AnswerError) as exc:
        out["why"] = f"{type(exc).__name__}: {exc}"
        say(f"resume check could not run to the end: {out['why']}")
        return out
    finally:
        server.stop()
        with contextlib.suppress(Exception):
            redis.stop()
    failed = [p for p in phases if p["errors"] or not p["requests"]]
    out["ok"] = not failed
    if failed:
        out["why"] = "; ".join(
            f"{p['phase']}: {p['errors']} errors in {p['requests']} requests ({p['example']})"
            for p in failed
        )
    # Share of answers from Redis, estimated against the phase where all of them were: the
    # hot path's commands per request vary with the API's code, not with the outage.
    per_request = phases[0]["redis_commands_per_request"] or 0.0
    for p in phases:
        ratio = p["redis_commands_per_request"]
        p["redis_share"] = (
            None if ratio is None or not per_request else min(1.0, ratio / per_request)
        )
    # Commands per request vary by ~10% between phases (each covers another slice of the
    # points), and a stale pooled connection can cost a worker a moment on PostGIS: "resumed"
    # is most answers from Redis again, with the share itself in the report.
    share = phases[-1]["redis_share"]
    out["hot_path_resumed"] = share is not None and share >= 0.5
    return out
