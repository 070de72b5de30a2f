"""Target 13: live updates for thousands of map clients, measured (issue 18).

    python -m bench.subscriptions [--subscribers 2000] [--count 100000] [--clients 4]
                                  [--quick | --smoke] [--seed S]

One operator (``bench-subs``) with ``count`` vehicles over the ten cities, built like the ingest
benchmark's snapshot (bench/ingest.py) and loaded through the production sync path
(:meth:`providers.sync.SyncEngine.sync_snapshot`: merge, index, deltas), in a database of its
own (the bench database's name + ``_subs``) and under a Redis prefix of its own, so no other
benchmark step sees these vehicles or their deltas. Then:

1. the real API (``app.main:create_app`` under uvicorn, 2 workers, 127.0.0.1 only, as for
   search) is started on that database and prefix;
2. ``subscribers`` WebSockets (``graphql-transport-ws``) are opened from ``clients`` separate
   processes (bench/subscription_client.py, each with its own event loop), each subscribing to
   ``vehicleUpdates(within: <its own box>, first: 200)``. The boxes tile each city (about
   ``count / subscribers`` vehicles each, far fewer than ``first``: the bound never decides what
   a subscriber is sent, which is checked). Every subscriber must receive its SNAPSHOT;
3. one sync through the same production path moves 10% of the vehicles (seeded: the ingest
   benchmark's ``moved``); the moment its transaction commits is taken where the merge returns
   (the commit is the last thing it does), and every DELTA message each subscriber receives is
   timestamped on arrival;
4. each subscriber's messages are checked against the data, computed here independently of the
   API: its SNAPSHOT must be exactly the available vehicles in its box before the sync (edges
   included), and its deltas exactly, per vehicle, *created* (available and outside the box
   before, inside after), *updated* (inside before and after) or *removed* (inside before,
   outside after), each with its new position, none twice, nothing else, and no new SNAPSHOT.

Reported: subscribers connected, the time to open them all and each one's snapshot latency,
missed and phantom vehicles, delivery latency after the commit (p50 / p99 / max per delivered
vehicle change, and per subscriber until its last change arrived), the API processes' resident
memory (VmRSS) before and after the subscriptions opened, per subscriber, and their CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from adapters.dto import Snapshot, SystemInfo
from app.platform import migrate
from app.platform.db import create_engine, session_factory
from app.platform.redis import RedisKeys, create_redis
from app.platform.settings import Settings
from app.vehicle_index import VehicleIndex
from bench import charts, config, subscription_client, subscription_report
from bench.ingest import moved, snapshot
from bench.progress import say
from bench.servers import Server, cpu_sample, free_port, group_memory, server_env
from bench.subscription_check import Box, check, expected, snapshot_stats, tile_boxes
from bench.targets import GRAPHQL
from providers.merge import MergeOutcome
from providers.rows import SnapshotRows
from providers.sync import SyncEngine, SyncReport

PROVIDER_ID = "bench-subs"
# What every subscriber asks for: the most the API allows (MOBILITY_MAX_FIRST).
FIRST = 200
MOVED_SHARE = 0.10


@dataclass(frozen=True, slots=True)
class Sizes:
    subscribers: int
    vehicles: int
    clients: int  # subscriber processes
    gate: int  # handshakes and snapshots in flight per client process


SIZES = {
    "full": Sizes(2_000, 100_000, 4, 16),
    "quick": Sizes(500, 25_000, 2, 16),
    "smoke": Sizes(20, 2_000, 2, 10),
}


def database_url() -> str:
    """The bench database's URL with ``_subs`` appended to its name."""
    base, _, query = config.DATABASE_URL.partition("?")
    return base + "_subs" + (f"?{query}" if query else "")


def redis_prefix() -> str:
    return f"{config.REDIS_PREFIX}-subs"


# --- the operator and its syncs -------------------------------------------------------------------


class _CommitClock(SyncEngine):
    """The production sync engine, noting when the merge's transaction committed: ``_merge``
    returns right after its ``transaction`` block commits, before the index and deltas."""

    committed_at: float | None = None

    async def _merge(
        self,
        provider_id: str,
        run_id: int,
        snap: Snapshot,
        rows: SnapshotRows,
        report: SyncReport,
        feeds: list[str],
    ) -> dict[str, MergeOutcome]:
        outcomes = await super()._merge(provider_id, run_id, snap, rows, report, feeds)
        self.committed_at = time.monotonic()
        return outcomes


@asynccontextmanager
async def _engine() -> AsyncIterator[_CommitClock]:
    settings = Settings(
        database_url=database_url(),
        redis_url=config.REDIS_URL,
        redis_prefix=redis_prefix(),
        secrets_keys=config.SECRETS_KEY,
    )
    db = create_engine(settings.database_url, pool_size=2)
    redis = create_redis(settings.redis_url, timeout_seconds=30.0)
    try:
        async with httpx.AsyncClient() as http:
            yield _CommitClock(
                sessions=session_factory(db),
                index=VehicleIndex(redis, RedisKeys(redis_prefix())),
                http=http,
                settings=settings,
            )
    finally:
        await redis.aclose()
        await db.dispose()


async def _clear_redis(engine: SyncEngine) -> None:
    redis = engine.index.redis
    keys = [
        k
        for pattern in RedisKeys(redis_prefix()).patterns
        async for k in redis.scan_iter(match=pattern, count=1000)
    ]
    for start in range(0, len(keys), 1000):
        await redis.unlink(*keys[start : start + 1000])


def _check_sync(report: SyncReport, step: str, counts: dict[str, int]) -> None:
    if not report.ok or not report.index_updated:
        raise RuntimeError(f"{step}: sync failed ({report.error or 'index not updated'})")
    got = {k: report.counts["vehicles"][k] for k in counts}
    if got != counts:
        raise RuntimeError(f"{step}: vehicles {got}, expected {counts}")


async def _load(before: Snapshot) -> dict[str, Any]:
    """The operator with exactly ``before``'s vehicles, in PostGIS and its own index."""
    url = database_url()
    await migrate.ensure_database(url)
    # Alembic runs its own event loop for the async engine: keep it off this one.
    await asyncio.to_thread(migrate.upgrade, url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO providers (id, name, adapter, config, enabled)
            VALUES ($1, 'Subscriptions benchmark operator', 'gbfs',
                    '{"bench": "subscriptions"}'::jsonb, true)
            ON CONFLICT (id) DO UPDATE SET enabled = true
            """,
            PROVIDER_ID,
        )
        await conn.execute("DELETE FROM vehicles WHERE provider_id = $1", PROVIDER_ID)
        await conn.execute("UPDATE providers SET feed_names = '{}' WHERE id = $1", PROVIDER_ID)
    finally:
        await conn.close()
    async with _engine() as engine:
        await _clear_redis(engine)
        started = time.perf_counter()
        report = await engine.sync_snapshot(PROVIDER_ID, before)
        seconds = time.perf_counter() - started
        _check_sync(report, "first load", {"created": len(before.vehicles)})
        # Only this operator is in the index under this prefix: it is complete.
        await engine.index.mark_ready()
    return {"seconds": seconds, "phases": report.phases}


async def _sync(after: Snapshot, moved_count: int) -> dict[str, Any]:
    async with _engine() as engine:
        started = time.monotonic()
        report = await engine.sync_snapshot(PROVIDER_ID, after)
        returned = time.monotonic()
        _check_sync(report, "the sync", {"created": 0, "updated": moved_count, "removed": 0})
        assert engine.committed_at is not None
        return {
            "started_at": started,
            "committed_at": engine.committed_at,
            "returned_at": returned,
            "seconds": returned - started,
            "commit_to_return_s": returned - engine.committed_at,
            "phases": report.phases,
            "delta_messages": report.delta_messages,
            "counts": report.counts["vehicles"],
        }


async def _teardown() -> None:
    conn = await asyncpg.connect(database_url())
    try:
        await conn.execute("DELETE FROM vehicles WHERE provider_id = $1", PROVIDER_ID)
    finally:
        await conn.close()
    async with _engine() as engine:
        await _clear_redis(engine)


# --- the API and the subscriber processes ---------------------------------------------------------


def _server_env() -> dict[str, str]:
    return server_env(
        database_url(),
        redis_prefix(),
        # Nothing may turn the operator stale mid-run (that would re-snapshot everyone).
        MOBILITY_STALE_AFTER_SECONDS="86400",
    )


def _worker_memory(pgid: int) -> list[dict[str, Any]]:
    return [m.to_json() for m in group_memory(pgid)]


def _workers_rss_kib(memory: list[dict[str, Any]]) -> int:
    return sum(int(m["rss_kib"]) for m in memory if m["role"] == "worker")


def _sockets(memory: list[dict[str, Any]]) -> dict[str, int]:
    """Open sockets per worker process, by pid (its WebSockets, plus its pool connections)."""
    counts: dict[str, int] = {}
    for m in memory:
        if m["role"] != "worker":
            continue
        pid = int(m["pid"])
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        counts[str(pid)] = sum(1 for link in links if link.startswith("socket:"))
    return counts


def _cpu(pgid: int, before: Any) -> dict[str, float]:
    spent = cpu_sample(pgid, _database_name()).minus(before)
    return {
        "seconds": spent.monotonic,
        "api_cpu_s": spent.group,
        "postgres_cpu_s": spent.postgres,
        "redis_cpu_s": spent.redis,
        "machine_busy_percent": 100.0 * spent.machine_busy / spent.machine_total
        if spent.machine_total
        else 0.0,
    }


def _profile(
    py_spy: str, memory: list[dict[str, Any]], run_dir: Path
) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling each API worker while the deltas are delivered: collapsed stacks in
    ``py-spy-<pid>.txt`` (``--py-spy``; a look at where the time goes, not a figure)."""
    profilers = []
    for m in memory:
        if m["role"] != "worker":
            continue
        out = run_dir / f"py-spy-{m['pid']}.txt"
        command = [py_spy, "record", "--pid", str(m["pid"]), "--rate", "200"]
        command += ["--format", "raw", "--output", str(out), "--nonblocking"]
        profilers.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    time.sleep(1.0)  # attached before the sync starts
    return profilers


def _database_name() -> str:
    return database_url().rsplit("/", 1)[-1].split("?", 1)[0]


@dataclass(slots=True)
class _Clients:
    processes: list[multiprocessing.process.BaseProcess]
    pipes: list[Connection]

    def ask(self, command: str, timeout_s: float = 60.0) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return [self.receive(pipe, timeout_s) for pipe in self.pipes]

    @staticmethod
    def receive(pipe: Connection, timeout_s: float) -> Any:
        if not pipe.poll(timeout_s):
            raise RuntimeError(f"a subscriber process did not answer in {timeout_s:g} s")
        return pipe.recv()

    def stop(self) -> None:
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


def _start_clients(
    url: str, boxes: Sequence[Box], processes: int, gate: int
) -> tuple[_Clients, list[int]]:
    context = multiprocessing.get_context("spawn")
    shares: list[list[tuple[int, subscription_client.BoxTuple]]] = [[] for _ in range(processes)]
    for i, box in enumerate(boxes):
        shares[i % processes].append((i, box.as_tuple()))
    clients = _Clients([], [])
    for share in shares:
        parent, child = context.Pipe()
        process = context.Process(
            target=subscription_client.run,
            args=(child, url, share, FIRST, gate),
            name="bench-subscribers",
            daemon=True,
        )
        process.start()
        child.close()
        clients.processes.append(process)
        clients.pipes.append(parent)
    opened = []
    for pipe in clients.pipes:
        tag, count = clients.receive(pipe, 900.0)
        assert tag == "ready"
        opened.append(int(count))
    return clients, opened


def _wait_for_deliveries(
    clients: _Clients, expected_total: int, *, quiet_s: float, deadline_s: float
) -> dict[str, Any]:
    """Until every expected change arrived and nothing more came for a moment, or nothing came
    for ``quiet_s``, or ``deadline_s`` passed."""
    started = time.monotonic()
    total, changed_at = -1, started
    while True:
        time.sleep(0.1)
        answers = clients.ask("status")
        now_total = sum(int(a[1]) for a in answers)
        now = time.monotonic()
        if now_total != total:
            total, changed_at = now_total, now
        if total >= expected_total and now - changed_at >= 0.5:
            why = "all expected changes arrived"
            break
        if now - changed_at >= quiet_s:
            why = f"nothing arrived for {quiet_s:g} s"
            break
        if now - started >= deadline_s:
            why = f"deadline of {deadline_s:g} s"
            break
    return {"received_changes": total, "stopped": why, "waited_s": time.monotonic() - started}


# --- the run --------------------------------------------------------------------------------------


def measure(
    sizes: Sizes,
    *,
    seed: int,
    run_dir: Path,
    workers: int = 2,
    quiet_s: float = 5.0,
    deadline_s: float = 120.0,
    py_spy: str | None = None,
) -> dict[str, Any]:
    say(
        f"subscriptions: {sizes.vehicles:,} vehicles of one operator in {_database_name()}, "
        f"{sizes.subscribers:,} subscribers from {sizes.clients} processes"
    )
    before = snapshot(sizes.vehicles, seed)
    before = replace(
        before, system=SystemInfo(system_id=PROVIDER_ID, name="Subscriptions benchmark operator")
    )
    after, moved_ids = moved(before, MOVED_SHARE, seed)
    boxes = tile_boxes(sizes.subscribers)
    exp = expected(PROVIDER_ID, before, after, boxes)
    if exp.most_tracked >= FIRST:
        raise RuntimeError(
            f"a box could track {exp.most_tracked} vehicles, not fewer than first={FIRST}: "
            "use more subscribers or fewer vehicles"
        )
    say(
        f"subscriptions: {len(boxes):,} boxes, {exp.most_in_a_box} vehicles at most in one "
        f"(at most {exp.most_tracked} tracked at once, first {FIRST}); the sync moves "
        f"{len(moved_ids):,}, which is {exp.total:,} changes for "
        f"{sum(1 for c in exp.changes if c):,} subscribers"
    )
    loaded = asyncio.run(_load(before))
    say(f"subscriptions: first load {loaded['seconds']:.1f} s")
    server = Server(GRAPHQL, free_port(), run_dir / "subscriptions-server.log", name="subs-api")
    clients: _Clients | None = None
    try:
        server.start(workers=workers, env=_server_env(), cwd=config.PROJECT_ROOT)
        server.wait_ready(workers=workers)
        assert server.process is not None
        pgid = server.process.pid
        ws_url = server.base_url.replace("http://", "ws://") + "/graphql"
        warm = asyncio.run(
            subscription_client.warm_up(ws_url, boxes[0].as_tuple(), FIRST, 4 * workers)
        )
        if not warm:
            raise RuntimeError(f"no warm-up subscription got a snapshot; see {server.log_path}")
        memory_before = _worker_memory(pgid)
        sockets_before = _sockets(memory_before)
        cpu_open = cpu_sample(pgid, _database_name())
        say(f"subscriptions: opening {len(boxes):,} subscriptions")
        opened_at = time.monotonic()
        clients, opened = _start_clients(ws_url, boxes, sizes.clients, sizes.gate)
        if not sum(opened):
            raise RuntimeError(f"no subscriber got its snapshot; see {server.log_path}")
        open_s = time.monotonic() - opened_at
        cpu_opening = _cpu(pgid, cpu_open)
        memory_open = _worker_memory(pgid)
        sockets_open = _sockets(memory_open)
        say(
            f"subscriptions: {sum(opened):,} of {len(boxes):,} got their snapshot in "
            f"{open_s:.1f} s; API workers {_workers_rss_kib(memory_before) / 1024:.0f} -> "
            f"{_workers_rss_kib(memory_open) / 1024:.0f} MiB"
        )
        profilers = _profile(py_spy, memory_open, run_dir) if py_spy else []
        cpu_start = cpu_sample(pgid, _database_name())
        say(f"subscriptions: syncing the operator with {len(moved_ids):,} vehicles moved")
        synced = asyncio.run(_sync(after, len(moved_ids)))
        waited = _wait_for_deliveries(
            clients,
            exp.total,
            quiet_s=quiet_s,
            deadline_s=deadline_s,
        )
        cpu_deltas = _cpu(pgid, cpu_start)
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        memory_deltas = _worker_memory(pgid)
        answers = clients.ask("finish", timeout_s=120.0)
        records = [r for tag, share in answers if tag == "result" for r in share]
    finally:
        if clients is not None:
            clients.stop()
        server.stop()
        asyncio.run(_teardown())
    records.sort(key=lambda r: int(r["index"]))
    # Every message as received, for a closer look (not in result.json: tens of megabytes).
    (run_dir / "subscription-records.json").write_bytes(
        orjson.dumps({"committed_at": synced["committed_at"], "records": records})
    )
    checked = check(records, exp, synced["committed_at"])
    opened_total = sum(opened)
    per_subscriber_kib = (
        _workers_rss_kib(memory_open) - _workers_rss_kib(memory_before)
    ) / opened_total
    result: dict[str, Any] = {
        "subscribers": len(boxes),
        "opened": opened_total,
        "clients": sizes.clients,
        "workers": workers,
        "vehicles": sizes.vehicles,
        "moved": len(moved_ids),
        "first": FIRST,
        "seed": seed,
        "database": _database_name(),
        "redis_prefix": redis_prefix(),
        "boxes": {
            "count": len(boxes),
            "most_vehicles": exp.most_in_a_box,
            "mean_vehicles": sum(len(s) for s in exp.snapshot) / len(boxes),
            "most_tracked": exp.most_tracked,
        },
        "first_load": loaded,
        "open_s": open_s,
        "snapshots": snapshot_stats(records),
        "sync": {k: v for k, v in synced.items() if not k.endswith("_at")},
        "wait": waited,
        "check": checked,
        "memory": {
            "before": memory_before,
            "after_open": memory_open,
            "after_deltas": memory_deltas,
            "per_subscriber_kib": per_subscriber_kib,
        },
        "sockets": {"before": sockets_before, "after_open": sockets_open},
        "cpu": {"open": cpu_opening, "deltas": cpu_deltas},
    }
    lat = checked["latency_s"]
    say(
        f"subscriptions: {checked['delivered']:,} of {checked['expected_changes']:,} changes "
        f"delivered, {checked['missed']} missed, {checked['phantom']} phantom; after the "
        f"commit p50 {_seconds(lat['p50'])}, p99 {_seconds(lat['p99'])}, max "
        f"{_seconds(lat['max'])}; {per_subscriber_kib:.0f} KiB per subscriber; API CPU "
        f"{cpu_deltas['api_cpu_s']:.1f} s for the deltas"
    )
    return result


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def run_step(mode: str, *, seed: int, run_dir: Path) -> dict[str, Any]:
    """bench.run's step: the mode's sizes; a failure is a result to report, not a crash."""
    sizes = SIZES[mode]
    try:
        return measure(sizes, seed=seed, run_dir=run_dir)
    except Exception as exc:
        say(f"subscriptions benchmark failed: {exc!r}")
        return {
            "error": f"{exc.__class__.__name__}: {exc}",
            "subscribers": sizes.subscribers,
            "vehicles": sizes.vehicles,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.subscriptions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="500 subscribers, 25,000 vehicles")
    size.add_argument(
        "--smoke", action="store_true", help="20 subscribers, 2,000 vehicles, smoke stores"
    )
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--count", type=int, help="vehicles")
    parser.add_argument("--clients", type=int, help="subscriber processes")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument(
        "--quiet", type=float, default=5.0, help="stop waiting after this long with no delta"
    )
    parser.add_argument("--deadline", type=float, default=120.0, help="wait at most this long")
    parser.add_argument(
        "--py-spy", help="path to py-spy: sample each API worker while deltas are delivered"
    )
    parser.add_argument("--results-dir", type=Path)
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.smoke:
        config.use_smoke_stores()
    base = SIZES[mode]
    sizes = replace(
        base,
        subscribers=args.subscribers or base.subscribers,
        vehicles=args.count or base.vehicles,
        clients=args.clients or base.clients,
    )
    if min(sizes.subscribers, sizes.vehicles, sizes.clients) <= 0:
        parser.error("sizes must be positive")
    run_dir: Path = args.results_dir or config.RESULTS_DIR / time.strftime(
        "subscriptions-%Y%m%dT%H%M%SZ", time.gmtime()
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    result = measure(
        sizes,
        seed=args.seed,
        run_dir=run_dir,
        quiet_s=args.quiet,
        deadline_s=args.deadline,
        py_spy=args.py_spy,
    )
    (run_dir / "subscriptions.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    say(f"raw results: {run_dir / 'subscriptions.json'}")
    if charts.available():
        finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        record = {"subscriptions": result, "mode": f"{mode} standalone", "finished_at": finished}
        for path in subscription_report.render_chart(record, run_dir).values():
            say(f"chart: {path}")
    check_ = result["check"]
    print(
        f"subscribers {result['opened']:,}/{result['subscribers']:,}; changes "
        f"{check_['delivered']:,}/{check_['expected_changes']:,}; missed {check_['missed']}, "
        f"phantom {check_['phantom']}; p99 {_seconds(check_['latency_s']['p99'])}; "
        f"{result['memory']['per_subscriber_kib']:.1f} KiB per subscriber"
    )
    return 0 if check_["wrong"] == 0 and not check_["resnapshots"] else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
