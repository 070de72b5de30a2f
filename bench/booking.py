"""The booking benchmark: full reserve → start → end cycles through the API against a TOMP
operator simulator, each in its own process on 127.0.0.1.

    python -m bench.booking [--duration 30] [--riders 16] [--vehicles 400] [--workers 2]

1. creates and migrates its own database (``mobility_bench_booking``), Redis db 12 with its own
   prefix, so it never touches the demo, test or search-bench data;
2. starts the simulator (``python -m providers.simulators.tomp_server``, scooters, no licence
   needed) and the API (uvicorn, ``--workers``), registers the simulator as a bookable
   provider and syncs it;
3. signs up ``--riders`` riders; each runs cycles back to back for ``--duration`` seconds on a
   vehicle taken from a shared pool (a vehicle goes back to the pool when its ride ended);
4. prints cycles per second, latency percentiles per cycle and per mutation, and replaces the
   ``bench:booking`` block of ``docs/benchmarks.md`` (``--no-report`` leaves it alone).

Every answer is checked: a cycle counts only if all three mutations succeeded; anything else
is counted as an error by its type, and a run with errors says so in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.platform import migrate
from app.platform.db import transaction
from app.platform.settings import Settings
from app.runtime import open_runtime
from bench import config
from bench.progress import say
from bench.servers import free_port
from providers.admin import set_booking
from providers.service import register_provider

DATABASE_URL = os.environ.get(
    "BENCH_BOOKING_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/mobility_bench_booking"
)
REDIS_URL = os.environ.get("BENCH_BOOKING_REDIS_URL", "redis://127.0.0.1:6379/12")
REDIS_PREFIX = "bench-booking"
SLUG = "bench-tomp"
BEGIN, END = "<!-- bench:booking:begin -->", "<!-- bench:booking:end -->"

RESERVE = """mutation R($v: ID!, $k: String!) { reserveVehicle(vehicleId: $v, idempotencyKey: $k) {
  __typename ... on BookingSuccess { booking { id state } } ... on BookingProblem { code } } }"""
START = """mutation S($b: ID!, $k: String!) { startTrip(bookingId: $b, idempotencyKey: $k) {
  __typename ... on BookingProblem { code } } }"""
FINISH = """mutation E($b: ID!, $k: String!, $lat: Float!, $lon: Float!) {
  endTrip(bookingId: $b, idempotencyKey: $k, lat: $lat, lon: $lon) {
  __typename ... on BookingSuccess { booking { finalPrice { amountMinor } } }
  ... on BookingProblem { code } } }"""


@dataclass
class Results:
    cycles: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(
        default_factory=lambda: {"reserve": [], "start": [], "end": []}
    )
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0


def _settings() -> Settings:
    return Settings(
        environment="test",
        database_url=DATABASE_URL,
        redis_url=REDIS_URL,
        redis_prefix=REDIS_PREFIX,
        demo_feeds=False,
        background_sync=False,
        jwt_secret=secrets.token_hex(32),
        secrets_keys=config.SECRETS_KEY,
    )


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOBILITY_", "BENCH_"))}
    env.update(
        MOBILITY_ENVIRONMENT="production",
        MOBILITY_DATABASE_URL=DATABASE_URL,
        MOBILITY_REDIS_URL=REDIS_URL,
        MOBILITY_REDIS_PREFIX=REDIS_PREFIX,
        MOBILITY_BACKGROUND_SYNC="false",
        MOBILITY_DEMO_FEEDS="false",
        MOBILITY_JWT_SECRET=str(settings.jwt_secret),
        MOBILITY_SECRETS_KEYS=config.SECRETS_KEY,
        # Each simulated rider rides back to back, faster than the per-rider limit allows
        # a person: this measures booking, not the limiter.
        MOBILITY_RATE_LIMITS_ENABLED="false",
        # The whole run is one sync: keep its data servable throughout.
        MOBILITY_STALE_AFTER_SECONDS="86400",
        PYTHONPATH=str(config.PROJECT_ROOT),
    )
    return env


def _start(command: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(command),
        cwd=config.PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def _wait_up(url: str, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited: {_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit(f"{what} did not start: {_tail(log)}")


async def _gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str) -> Any:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        code = (body.get("errors") or [{}])[0].get("extensions", {}).get("code", "HTTP")
        raise RuntimeError(str(code))
    return body["data"]


async def _rider(
    homes: dict[str, tuple[float, float]],
    http: httpx.AsyncClient,
    pool: asyncio.Queue[tuple[str, float, float]],
    results: Results,
    until: float,
) -> None:
    email = f"bench-{uuid.uuid4().hex[:10]}@example.org"
    body = (
        await http.post(
            "/graphql",
            json={
                "query": "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
                "variables": {"i": {"email": email, "password": "benchmark password"}},
            },
        )
    ).json()
    token = body["data"]["signUp"]["accessToken"]
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            vehicle_id, lat, lon = await asyncio.wait_for(pool.get(), until - loop.time())
        except TimeoutError:
            return
        # Rides end 30 m from where the vehicle was parked first, alternately either side, so
        # the fleet does not drift out of the operator's area (nor into its no-parking zone).
        home_lat, home_lon = homes.setdefault(vehicle_id, (lat, lon))
        side = 1 if (lat, lon) == (home_lat, home_lon) or lat < home_lat else -1
        end = (home_lat + side * 0.0003, home_lon)
        cycle_start = time.perf_counter()
        try:
            mark = time.perf_counter()
            reserved = (
                await _gql(http, RESERVE, {"v": vehicle_id, "k": str(uuid.uuid4())}, token)
            )["reserveVehicle"]
            if reserved["__typename"] != "BookingSuccess":
                raise RuntimeError(reserved.get("code") or reserved["__typename"])
            results.steps["reserve"].append(time.perf_counter() - mark)
            booking = reserved["booking"]["id"]
            mark = time.perf_counter()
            started = (await _gql(http, START, {"b": booking, "k": str(uuid.uuid4())}, token))[
                "startTrip"
            ]
            if started["__typename"] != "BookingSuccess":
                raise RuntimeError(started.get("code") or started["__typename"])
            results.steps["start"].append(time.perf_counter() - mark)
            mark = time.perf_counter()
            variables = {"b": booking, "k": str(uuid.uuid4()), "lat": end[0], "lon": end[1]}
            ended = (await _gql(http, FINISH, variables, token))["endTrip"]
            if ended["__typename"] != "BookingSuccess":
                raise RuntimeError(ended.get("code") or ended["__typename"])
            results.steps["end"].append(time.perf_counter() - mark)
            results.cycles.append(time.perf_counter() - cycle_start)
            pool.put_nowait((vehicle_id, *end))
        except (RuntimeError, httpx.HTTPError) as exc:
            # The vehicle may be left in a booking: it leaves the pool (and the error counts).
            results.errors[str(exc) or type(exc).__name__] += 1


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(args: argparse.Namespace) -> Results:
    settings = _settings()
    await migrate.ensure_database(DATABASE_URL)
    await asyncio.to_thread(migrate.upgrade, DATABASE_URL)
    results_dir = config.RESULTS_DIR / "booking"
    results_dir.mkdir(parents=True, exist_ok=True)
    env = _env(settings)
    sim_port, api_port = free_port(), free_port()
    sim_log, api_log = results_dir / "simulator.log", results_dir / "api.log"
    say(
        f"simulator: {args.vehicles} scooters on :{sim_port}; "
        f"API: {args.workers} workers on :{api_port}"
    )
    sim = _start(
        [
            sys.executable,
            "-m",
            "providers.simulators.tomp_server",
            "--port",
            str(sim_port),
            "--fleet",
            "scooter",
            "--vehicles",
            str(args.vehicles),
            "--system-id",
            SLUG,
        ],
        env,
        sim_log,
    )
    api = None
    try:
        sim_url = f"http://127.0.0.1:{sim_port}"
        await _wait_up(f"{sim_url}/gbfs/gbfs.json", "the simulator", sim, sim_log)
        async with open_runtime(settings) as runtime:
            async with runtime.engine.begin() as conn:
                from sqlalchemy import text

                await conn.execute(
                    text("TRUNCATE providers, users, bookings, idempotency_keys CASCADE")
                )
            async with transaction(runtime.sessions) as session:
                await register_provider(
                    session,
                    slug=SLUG,
                    name="Bench TOMP",
                    adapter="gbfs",
                    config={"discovery_url": f"{sim_url}/gbfs/gbfs.json"},
                )
                await set_booking(
                    session, SLUG, {"operator": "tomp", "config": {"base_url": sim_url}}
                )
            report = await runtime.sync.sync(SLUG)
            if not report.ok:
                raise SystemExit(f"sync of the simulator failed: {report.error}")
            await runtime.index.mark_ready()
            async with runtime.sessions() as session:
                rows = (
                    await session.execute(
                        text(
                            "SELECT id, ST_Y(geom), ST_X(geom) FROM vehicles WHERE provider_id = :p"
                        ),
                        {"p": SLUG},
                    )
                ).all()
        pool: asyncio.Queue[tuple[str, float, float]] = asyncio.Queue()
        homes: dict[str, tuple[float, float]] = {}
        for vid, lat, lon in rows:
            pool.put_nowait((vid, float(lat), float(lon)))
        api = _start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--workers",
                str(args.workers),
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
            ],
            env,
            api_log,
        )
        api_url = f"http://127.0.0.1:{api_port}"
        await _wait_up(f"{api_url}/health", "the API", api, api_log)
        results = Results()
        limits = httpx.Limits(max_connections=args.riders * 2)
        async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as http:
            loop = asyncio.get_running_loop()
            # Warm-up: a few cycles, not counted.
            warm = Results()
            await asyncio.gather(
                *(
                    _rider(homes, http, pool, warm, loop.time() + args.warmup)
                    for _ in range(min(4, args.riders))
                )
            )
            say(f"load: {args.riders} riders for {args.duration:g}s")
            began = time.perf_counter()
            until = loop.time() + args.duration
            await asyncio.gather(
                *(_rider(homes, http, pool, results, until) for _ in range(args.riders))
            )
            results.elapsed = time.perf_counter() - began
        return results
    finally:
        if api is not None:
            _stop(api)
        _stop(sim)


def _report(results: Results, args: argparse.Namespace) -> str:
    elapsed = results.elapsed or args.duration
    lines = [
        BEGIN,
        f"Run: `python -m bench.booking --duration {args.duration:g} --riders {args.riders} "
        f"--vehicles {args.vehicles} --workers {args.workers}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on this machine (2 cores): the API "
        f"({args.workers} uvicorn workers), the TOMP simulator and this load generator share "
        "them. Rate limits off (each simulated rider rides back to back).",
        "",
        "| measure | value |",
        "|---|---:|",
        "| full cycles (reserve → start → end) per second | "
        f"**{len(results.cycles) / elapsed:.1f}** |",
        f"| cycles completed | {len(results.cycles):,} |",
        f"| cycle p50 / p99 | {_pct(results.cycles, 0.5):.0f} / "
        f"{_pct(results.cycles, 0.99):.0f} ms |",
    ]
    for step, values in results.steps.items():
        lines.append(
            f"| `{step}` p50 / p99 | {_pct(values, 0.5):.1f} / {_pct(values, 0.99):.1f} ms |"
        )
    lines.append(
        f"| errors | {sum(results.errors.values())}"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in results.errors.most_common())})"
            if results.errors
            else ""
        )
        + " |"
    )
    lines += ["", END]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.booking",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--riders", type=int, default=16, help="concurrent riders")
    parser.add_argument("--vehicles", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-report", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.riders < 1 or args.vehicles < args.riders:
        raise SystemExit("need at least one rider, and at least as many vehicles as riders")
    results = asyncio.run(run(args))
    block = _report(results, args)
    print(block)
    if not args.no_report:
        document = config.REPORT_PATH.read_text()
        if BEGIN in document:
            head, rest = document.split(BEGIN, 1)
            document = head + block + rest.split(END, 1)[1]
        else:
            document = document.rstrip() + "\n\n## Booking: full ride cycles\n\n" + block + "\n"
        config.REPORT_PATH.write_text(document)
        say(f"wrote {config.REPORT_PATH}")
    if not results.cycles:
        raise SystemExit("no cycle completed")


if __name__ == "__main__":
    main()
