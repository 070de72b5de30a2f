"""Target 7: a full vehicle snapshot merged into PostGIS and Redis, beside a raw ``COPY``.

    python -m bench.ingest [--count 100000] [--repeat 3] [--seed S] [--smoke]

What is timed, for one operator (``bench-ingest``) with ``count`` vehicles:

- **raw COPY**: the snapshot's rows, already encoded (geometry as EWKB), written into the
  ``vehicles`` table with one binary ``COPY`` and committed. Nothing else: no staging, no
  comparison, no Redis. This is the fastest way PostgreSQL accepts those rows, the reference.
- **first load**: :meth:`providers.sync.SyncEngine.sync_snapshot` with the snapshot, into an
  empty operator: the production path after the adapter has parsed the feeds (advisory lock,
  run record, rows built from the DTOs, COPY into staging, upsert, delete, commit, Redis GEO
  index rebuilt, deltas published).
- **steady state**: the same call again with 10% of the vehicles moved (new position and
  ``last_reported``); only those rows may be written, and the test of that is the sync's own
  counts, checked here against the set of vehicles this module moved.

Each figure is the median of ``repeat`` rounds; before every timed step the operator's rows are
deleted and the table vacuumed, so the COPY and the first load start from the same table state.
The benchmark's database already holds the search fleet (a million vehicles in a full run), so
both write into a table and indexes of production size.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from adapters.dto import (
    FeedMeta,
    FormFactor,
    PricingPlan,
    PricingSegment,
    PropulsionType,
    RentalUris,
    Snapshot,
    SystemInfo,
    Vehicle,
    VehicleType,
)
from app.platform.db import create_engine, session_factory
from app.platform.redis import RedisKeys, create_redis
from app.platform.settings import Settings
from app.vehicle_index import VehicleIndex
from bench import config
from bench.fleet import CITIES
from bench.generate import connect, ewkb_point, prepare_database
from bench.progress import say
from providers.merge import VEHICLES
from providers.rows import build_rows
from providers.sync import SyncEngine, SyncReport

PROVIDER_ID = "bench-ingest"
MOVED_SHARE = 0.10
DEFAULT_COUNT = 100_000
DEFAULT_REPEAT = 3
REPORTED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

# (external id, form factor, propulsion, range) of the operator's four vehicle types.
_TYPES = (
    ("scooter", FormFactor.SCOOTER_STANDING, PropulsionType.ELECTRIC, 40_000.0),
    ("bike", FormFactor.BICYCLE, PropulsionType.ELECTRIC_ASSIST, 60_000.0),
    ("moped", FormFactor.SCOOTER_SEATED, PropulsionType.ELECTRIC, 80_000.0),
    ("car", FormFactor.CAR, PropulsionType.COMBUSTION, 600_000.0),
)


def _redis_prefix() -> str:
    # Its own keys beside the search fleet's: the search index is never touched.
    return f"{config.REDIS_PREFIX}-ingest"


# --- the snapshot -----------------------------------------------------------------------------


def snapshot(count: int, seed: int) -> Snapshot:
    """The operator's full state as an adapter would return it after parsing its feeds."""
    rng = random.Random(seed)
    types = [
        VehicleType(
            external_id=ext,
            form_factor=ff,
            propulsion_type=prop,
            name=ext.title(),
            max_range_meters=rng_range,
            default_pricing_plan_id=f"plan-{ext}",
        )
        for ext, ff, prop, rng_range in _TYPES
    ]
    plans = [
        PricingPlan(
            external_id=f"plan-{ext}",
            name=f"{ext.title()} per minute",
            currency="EUR",
            price_minor=100,
            is_taxable=True,
            per_min_pricing=(PricingSegment(start=0, rate_minor=25, interval=1),),
        )
        for ext, *_ in _TYPES
    ]
    vehicles: list[Vehicle] = []
    for n in range(count):
        city = CITIES[n % len(CITIES)]
        min_lat, min_lon, max_lat, max_lon = city.box
        ext, _ff, _prop, max_range = _TYPES[rng.randrange(len(_TYPES))]
        external_id = f"v{n:07d}"
        vehicles.append(
            Vehicle(
                external_id=external_id,
                lat=round(rng.uniform(min_lat, max_lat), 7),
                lon=round(rng.uniform(min_lon, max_lon), 7),
                is_reserved=rng.random() < 0.02,
                is_disabled=rng.random() < 0.01,
                vehicle_type_id=ext,
                current_range_meters=round(rng.uniform(0.1, 1.0) * max_range),
                current_fuel_percent=None,
                rental_uris=RentalUris(
                    android=f"ingest://vehicle/{external_id}",
                    ios=f"ingest://vehicle/{external_id}",
                    web=f"https://ingest.example.com/v/{external_id}",
                ),
                last_reported=REPORTED_AT,
            )
        )
    return Snapshot(
        version="3.0",
        system=SystemInfo(system_id=PROVIDER_ID, name="Ingest benchmark operator"),
        vehicle_types=types,
        pricing_plans=plans,
        vehicles=vehicles,
        feeds=[
            FeedMeta(name=name, url=f"http://127.0.0.1/{name}.json", last_updated=None, ttl=60)
            for name in ("vehicle_status", "vehicle_types", "system_pricing_plans")
        ],
    )


def moved(snap: Snapshot, share: float, seed: int) -> tuple[Snapshot, set[str]]:
    """A copy of ``snap`` where ``share`` of the vehicles moved about 100-300 m and reported
    a minute later; returns it and the external ids of the moved vehicles."""
    rng = random.Random(seed + 1)
    picked = set(rng.sample(range(len(snap.vehicles)), round(len(snap.vehicles) * share)))
    later = REPORTED_AT + timedelta(minutes=1)
    vehicles = list(snap.vehicles)
    for n in picked:
        v = vehicles[n]
        # At least 1e-3 degrees (over 70 m) in latitude: never a no-op move after rounding.
        dlat = rng.choice((-1, 1)) * rng.uniform(0.001, 0.0027)
        dlon = rng.uniform(-0.0027, 0.0027)
        vehicles[n] = replace(
            v, lat=round(v.lat + dlat, 7), lon=round(v.lon + dlon, 7), last_reported=later
        )
    ids = {snap.vehicles[n].external_id for n in picked}
    return replace(snap, vehicles=vehicles), ids


def copy_rows(snap: Snapshot) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The ``vehicles`` table's columns and the snapshot's rows for them, geometry as EWKB:
    the same values the merge writes, from the same row builder, encoded once, up front."""
    staged = [name for name, _ in VEHICLES.stage_columns]
    lat_at, lon_at, id_at = staged.index("lat"), staged.index("lon"), staged.index("id")
    columns = [name for name, _ in VEHICLES.select]
    # The merge derives geom and external_id in SQL (app/vehicle.MERGE_SELECT); the rest are
    # staged values as they are.
    picks: list[int | None] = [
        None if c in ("geom", "external_id") else staged.index(c) for c in columns
    ]
    geom_at, external_at = columns.index("geom"), columns.index("external_id")
    prefix = len(PROVIDER_ID) + 1
    records: list[tuple[Any, ...]] = []
    for row in build_rows(PROVIDER_ID, snap).vehicles:
        record = [None if i is None else row[i] for i in picks]
        record[geom_at] = ewkb_point(row[lon_at], row[lat_at])
        record[external_at] = row[id_at][prefix:]
        records.append(tuple(record))
    return columns, records


# --- the steps ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Round:
    copy_s: float
    first_load_s: float
    steady_s: float
    first_load_phases: dict[str, float]
    steady_phases: dict[str, float]


async def _ensure_provider(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        INSERT INTO providers (id, name, adapter, config, enabled)
        VALUES ($1, 'Ingest benchmark operator', 'gbfs', '{"bench": "ingest"}'::jsonb, false)
        ON CONFLICT (id) DO NOTHING
        """,
        PROVIDER_ID,
    )


async def _reset(conn: asyncpg.Connection, engine: SyncEngine) -> None:
    """The operator without vehicles, the table vacuumed, its Redis keys gone."""
    await conn.execute("DELETE FROM vehicles WHERE provider_id = $1", PROVIDER_ID)
    await conn.execute("VACUUM (ANALYZE) vehicles")
    redis = engine.index.redis
    keys = [
        k
        for pattern in RedisKeys(_redis_prefix()).patterns
        async for k in redis.scan_iter(match=pattern, count=1000)
    ]
    if keys:
        await redis.delete(*keys)


async def _raw_copy(
    conn: asyncpg.Connection, columns: list[str], records: list[tuple[Any, ...]]
) -> float:
    started = time.perf_counter()
    async with conn.transaction():
        await conn.copy_records_to_table("vehicles", records=records, columns=columns)
    return time.perf_counter() - started


def _check(report: SyncReport, step: str, expected: dict[str, int]) -> None:
    if not report.ok:
        raise RuntimeError(f"{step}: the sync failed: {report.error}")
    if not report.index_updated:
        raise RuntimeError(f"{step}: the Redis index was not updated")
    got = {k: report.counts["vehicles"][k] for k in expected}
    if got != expected:
        raise RuntimeError(f"{step}: vehicles {got}, expected {expected}")


async def _timed_sync(engine: SyncEngine, snap: Snapshot) -> tuple[float, SyncReport]:
    started = time.perf_counter()
    report = await engine.sync_snapshot(PROVIDER_ID, snap)
    return time.perf_counter() - started, report


async def _indexed(engine: SyncEngine) -> int:
    return int(await engine.index.redis.scard(engine.index.keys.provider_members(PROVIDER_ID)))


def _phases(phases: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in phases.items())


async def measure(count: int, repeat: int, seed: int) -> dict[str, Any]:
    await prepare_database()
    say(f"ingest: building a {count:,}-vehicle snapshot and its COPY rows")
    first = snapshot(count, seed)
    second, moved_ids = moved(first, MOVED_SHARE, seed)
    columns, records = copy_rows(first)
    available = sum(1 for v in first.vehicles if not v.is_reserved and not v.is_disabled)
    # Independently of the sync: a moved vehicle is an updated row, nothing else changes.
    steady_expected = {"created": 0, "updated": len(moved_ids), "removed": 0}

    settings = Settings(
        database_url=config.DATABASE_URL,
        redis_url=config.REDIS_URL,
        redis_prefix=_redis_prefix(),
        secrets_keys=config.SECRETS_KEY,
    )
    db = create_engine(settings.database_url, pool_size=2)
    redis = create_redis(settings.redis_url, timeout_seconds=30.0)
    conn = await connect()  # geometry sent as EWKB, as the generator loads it
    rounds: list[Round] = []
    try:
        async with httpx.AsyncClient() as http:
            engine = SyncEngine(
                sessions=session_factory(db),
                index=VehicleIndex(redis, RedisKeys(_redis_prefix())),
                http=http,
                settings=settings,
            )
            await _ensure_provider(conn)
            for n in range(1, repeat + 1):
                await _reset(conn, engine)
                copy_s = await _raw_copy(conn, columns, records)
                await _reset(conn, engine)
                # The provider's feed list was recorded by the last round: a fresh operator.
                await conn.execute(
                    "UPDATE providers SET feed_names = '{}' WHERE id = $1", PROVIDER_ID
                )
                first_s, report = await _timed_sync(engine, first)
                _check(report, "first load", {"created": count, "updated": 0, "removed": 0})
                first_phases = report.phases
                if (indexed := await _indexed(engine)) != available:
                    raise RuntimeError(f"first load: {indexed} indexed, {available} available")
                steady_s, report = await _timed_sync(engine, second)
                _check(report, "steady state", steady_expected)
                rounds.append(Round(copy_s, first_s, steady_s, first_phases, report.phases))
                say(
                    f"ingest round {n}/{repeat}: raw COPY {copy_s:.2f}s, first load "
                    f"{first_s:.2f}s ({_phases(first_phases)}), steady state "
                    f"({len(moved_ids):,} moved) {steady_s:.2f}s ({_phases(report.phases)})"
                )
            await _reset(conn, engine)
    finally:
        await conn.close()
        await redis.aclose()
        await db.dispose()

    copy_s = statistics.median(r.copy_s for r in rounds)
    first_s = statistics.median(r.first_load_s for r in rounds)
    steady_s = statistics.median(r.steady_s for r in rounds)
    return {
        "count": count,
        "repeat": repeat,
        "moved": len(moved_ids),
        "rounds": [
            {
                "copy_s": r.copy_s,
                "first_load_s": r.first_load_s,
                "steady_s": r.steady_s,
                "first_load_phases": r.first_load_phases,
                "steady_phases": r.steady_phases,
            }
            for r in rounds
        ],
        "copy_s": copy_s,
        "first_load_s": first_s,
        "steady_s": steady_s,
        "first_load_ratio": first_s / copy_s,
        "steady_ratio": steady_s / copy_s,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--smoke", action="store_true", help="the smoke run's stores")
    args = parser.parse_args(argv)
    if args.count <= 0 or args.repeat <= 0:
        parser.error("--count and --repeat must be positive")
    if args.smoke:
        config.use_smoke_stores()
    result = asyncio.run(measure(args.count, args.repeat, args.seed))
    print(
        f"raw COPY {result['copy_s']:.3f}s; first load {result['first_load_s']:.3f}s "
        f"({result['first_load_ratio']:.2f}x); steady state {result['steady_s']:.3f}s "
        f"({result['steady_ratio']:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
