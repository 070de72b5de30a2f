"""Load the synthetic fleet into ``mobility_bench`` (PostGIS) and its Redis GEO index.

    python -m bench.generate [--count N | --quick] [--seed S] [--force]

The database is created and migrated the way ``mobility migrate`` does it. Earlier bench
providers are deleted (their vehicles, types and plans go with them) and the new fleet is
COPY'd in, all in one transaction, so an interrupted load leaves the previous data intact. The
index is then filled through :meth:`app.vehicle_index.VehicleIndex.apply`, the call the sync
pipeline makes, so search reads exactly the documents production would write.

A database that already holds the requested fleet (same count, seed and generator version, in
the providers' ``config``) is reused unless ``--force``; a Redis index that lost its data is
refilled on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from app.platform import migrate
from app.platform.redis import RedisKeys, create_redis
from app.vehicle_index import VehicleIndex
from bench import config
from bench.fleet import (
    GENERATOR,
    GENERATOR_VERSION,
    OPERATORS,
    Fleet,
    Vehicle,
    chunks,
    generate_fleet,
    pricing_plan_rows,
    provider_rows,
    vehicle_type_rows,
)
from bench.progress import Progress, say
from providers.merge import PRICING_PLANS, VEHICLE_TYPES

COPY_BATCH = 50_000
INDEX_BATCH = 10_000

# vehicles columns in COPY order; updated_at takes its default.
_VEHICLE_COLUMNS = (
    "id",
    "provider_id",
    "external_id",
    "vehicle_type_id",
    "pricing_plan_id",
    "station_id",
    "geom",
    "form_factor",
    "propulsion_type",
    "is_reserved",
    "is_disabled",
    "current_range_meters",
    "current_fuel_percent",
    "rental_uris",
    "last_reported",
)
_PROVIDER_COLUMNS = (
    "id",
    "name",
    "adapter",
    "config",
    "enabled",
    "gbfs_version",
    "system_info",
    "ttl_seconds",
)
# The rows are written in the sync's own column order (providers/merge.py), so the bench loads
# exactly the tables the sync pipeline fills.
_TYPE_COLUMNS = tuple(column for column, _ in VEHICLE_TYPES.select)
_PLAN_COLUMNS = tuple(column for column, _ in PRICING_PLANS.select)

# Little-endian EWKB point with an SRID: byte order, type | SRID flag, SRID, x, y.
_EWKB_POINT = struct.Struct("<BIidd")
_EWKB_POINT_SRID = 0x20000001


def ewkb_point(lon: float, lat: float) -> bytes:
    return _EWKB_POINT.pack(1, _EWKB_POINT_SRID, 4326, lon, lat)


def _geometry_passthrough(value: bytes) -> bytes:
    return value


async def connect() -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(config.DATABASE_URL)
    # Binary COPY sends geometry as EWKB, which PostGIS's receive function reads directly;
    # this saves a staging table and an INSERT ... SELECT ST_MakePoint over a million rows.
    await conn.set_type_codec(
        "geometry",
        schema="public",
        encoder=_geometry_passthrough,
        decoder=_geometry_passthrough,
        format="binary",
    )
    return conn


@dataclass(slots=True)
class GenerateReport:
    count: int
    seed: int
    generated: bool  # False: the database already held this fleet
    index_filled: bool
    seconds: float
    phases: dict[str, float]


# --- what is there already --------------------------------------------------------------------


async def _bench_provider_ids(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT id FROM providers WHERE config->>'generator' = $1 ORDER BY id", GENERATOR
    )
    return [r["id"] for r in rows]


async def database_holds(conn: asyncpg.Connection, count: int, seed: int) -> bool:
    """True if every bench operator is there with this fleet's marker and the vehicle count."""
    rows = await conn.fetch(
        "SELECT id, config FROM providers WHERE config->>'generator' = $1", GENERATOR
    )
    wanted = {op.provider_id for op in OPERATORS}
    if {r["id"] for r in rows} != wanted:
        return False
    for r in rows:
        marker = orjson.loads(r["config"])
        if (marker.get("generator_version"), marker.get("seed"), marker.get("count")) != (
            GENERATOR_VERSION,
            seed,
            count,
        ):
            return False
    present = await conn.fetchval(
        "SELECT count(*) FROM vehicles WHERE provider_id = ANY($1::text[])", sorted(wanted)
    )
    return bool(present == count)


async def index_holds(redis: Redis, keys: RedisKeys, available: int) -> bool:
    """True if the index is marked complete, its GEO set has exactly the available vehicles, and
    every operator has its member set."""
    if not await VehicleIndex(redis, keys).is_ready():
        return False
    if await redis.zcard(keys.vehicle_geo) != available:
        return False
    for op in OPERATORS:
        if not await redis.exists(keys.provider_members(op.provider_id)):
            return False
    return True


async def available_in_database(conn: asyncpg.Connection) -> int:
    value = await conn.fetchval(
        "SELECT count(*) FROM vehicles v JOIN providers p ON p.id = v.provider_id "
        "WHERE p.config->>'generator' = $1 AND NOT v.is_reserved AND NOT v.is_disabled",
        GENERATOR,
    )
    return int(value)


# --- PostGIS ----------------------------------------------------------------------------------


async def _secondary_indexes(conn: asyncpg.Connection, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the table's indexes that back no constraint."""
    rows = await conn.fetch(
        """
        SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = $1::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname
        """,
        table,
    )
    return [(r["name"], r["definition"]) for r in rows]


def _vehicle_record(v: Vehicle) -> tuple[Any, ...]:
    return (
        v.id,
        v.provider_id,
        v.external_id,
        v.vehicle_type_id,
        v.pricing_plan_id,
        None,
        ewkb_point(v.lon, v.lat),
        v.form_factor,
        v.propulsion_type,
        v.is_reserved,
        v.is_disabled,
        v.current_range_meters,
        v.current_fuel_percent,
        orjson.dumps(v.rental_uris).decode(),
        v.last_reported,
    )


async def load_database(conn: asyncpg.Connection, fleet: Fleet, phases: dict[str, float]) -> None:
    async with conn.transaction():
        # Only this transaction: building the GiST indexes is much faster with room to sort.
        await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        old = await _bench_provider_ids(conn)
        # Loading a million rows and then building each index once is several times faster
        # than maintaining the GiST indexes row by row. The definitions are read from the
        # catalog and replayed verbatim, so the indexes stay exactly what the migrations made;
        # the transaction puts them back if anything fails.
        indexes = await _secondary_indexes(conn, "vehicles")
        started = time.perf_counter()
        for name, _ in indexes:
            await conn.execute(f'DROP INDEX "{name}"')
        if old:
            say(f"deleting the previous bench fleet ({len(old)} providers)")
            # Vehicles first, in one statement: the cascade would scan once per provider.
            await conn.execute("DELETE FROM vehicles WHERE provider_id = ANY($1::text[])", old)
            await conn.execute("DELETE FROM providers WHERE id = ANY($1::text[])", old)
        phases["delete previous"] = time.perf_counter() - started

        started = time.perf_counter()
        await conn.copy_records_to_table(
            "providers", records=provider_rows(fleet.count, fleet.seed), columns=_PROVIDER_COLUMNS
        )
        await conn.copy_records_to_table(
            "pricing_plans", records=pricing_plan_rows(), columns=_PLAN_COLUMNS
        )
        await conn.copy_records_to_table(
            "vehicle_types", records=vehicle_type_rows(), columns=_TYPE_COLUMNS
        )
        with Progress("copying vehicles into PostGIS", len(fleet.vehicles)) as progress:
            for batch in chunks(fleet.vehicles, COPY_BATCH):
                await conn.copy_records_to_table(
                    "vehicles",
                    records=[_vehicle_record(v) for v in batch],
                    columns=_VEHICLE_COLUMNS,
                )
                progress.advance(len(batch))
        phases["copy"] = time.perf_counter() - started

        started = time.perf_counter()
        for name, definition in indexes:
            say(f"building index {name}")
            await conn.execute(definition)
        phases["index build"] = time.perf_counter() - started
    started = time.perf_counter()
    say("VACUUM ANALYZE (statistics for the planner, visibility map for index-only scans)")
    # VACUUM also clears the dead rows the delete left behind; it cannot run in a transaction.
    await conn.execute("VACUUM (ANALYZE) providers, pricing_plans, vehicle_types, vehicles")
    phases["vacuum analyze"] = time.perf_counter() - started


# --- Redis ------------------------------------------------------------------------------------


async def _clear_index(redis: Redis) -> None:
    """Drop every key under the bench prefix (any index format): the db and prefix are the
    benchmark's alone, so this also clears what an interrupted fill or an older format left."""
    batch: list[bytes] = []
    for pattern in RedisKeys(config.REDIS_PREFIX).patterns:
        async for key in redis.scan_iter(match=pattern, count=1_000):
            batch.append(key)
            if len(batch) >= 1_000:
                await redis.unlink(*batch)
                batch.clear()
    if batch:
        await redis.unlink(*batch)


async def fill_index(redis: Redis, fleet: Fleet) -> None:
    index = VehicleIndex(redis, RedisKeys(config.REDIS_PREFIX))
    await _clear_index(redis)
    with Progress("filling the Redis GEO index", len(fleet.vehicles)) as progress:
        for provider_id, vehicles in fleet.by_provider().items():
            for batch in chunks(vehicles, INDEX_BATCH):
                # The sync pipeline's own call; it pipelines its writes in batches.
                await index.apply(provider_id, [v.doc() for v in batch], ())
                progress.advance(len(batch))
    # As after a full rebuild from PostGIS: until this marker is set, search reads PostGIS.
    await index.mark_ready()


# --- entry points -----------------------------------------------------------------------------


async def prepare_database() -> None:
    say(f"database {config.DATABASE_URL} (create if missing, PostGIS, migrations)")
    await migrate.ensure_database(config.DATABASE_URL)
    # Alembic runs its own event loop for the async engine: keep it off this one.
    await asyncio.to_thread(migrate.upgrade, config.DATABASE_URL)


async def mark_synced(conn: asyncpg.Connection) -> None:
    """The loaded fleet stands for its operators' last good sync: stamp it now, as a sync
    would, so search (which hides the vehicles of stale providers) serves it. Every run does
    this before its servers start, a reused fleet included."""
    await conn.execute(
        "UPDATE providers SET last_sync_at = now(), last_success_at = now(), stale = false "
        "WHERE config->>'generator' = $1",
        GENERATOR,
    )


async def ensure_fleet(count: int, seed: int, *, force: bool = False) -> GenerateReport:
    started = time.perf_counter()
    phases: dict[str, float] = {}
    await prepare_database()
    redis = create_redis(config.REDIS_URL)
    conn = await connect()
    try:
        keys = RedisKeys(config.REDIS_PREFIX)
        holds = not force and await database_holds(conn, count, seed)
        fleet: Fleet | None = None
        if holds:
            say(f"mobility_bench already holds {count:,} vehicles (seed {seed}); reusing them")
        else:
            say(f"generating {count:,} vehicles (seed {seed})")
            t = time.perf_counter()
            fleet = generate_fleet(count, seed)
            phases["generate"] = time.perf_counter() - t
            await load_database(conn, fleet, phases)
        available = fleet.available if fleet is not None else await available_in_database(conn)
        index_filled = False
        # Redis runs without persistence here: after a restart only the index needs refilling.
        if fleet is not None or not await index_holds(redis, keys, available):
            if fleet is None:
                say("the Redis index does not match the database; refilling it")
                t = time.perf_counter()
                fleet = generate_fleet(count, seed)
                phases["generate"] = time.perf_counter() - t
            t = time.perf_counter()
            await fill_index(redis, fleet)
            phases["redis index"] = time.perf_counter() - t
            index_filled = True
            if not await index_holds(redis, keys, available):
                raise RuntimeError("the Redis index does not hold the available vehicles")
        await mark_synced(conn)
    finally:
        await conn.close()
        await redis.aclose()
    seconds = time.perf_counter() - started
    if phases:
        detail = ", ".join(f"{name} {value:.1f}s" for name, value in phases.items())
        say(f"fleet ready in {seconds:.1f}s ({detail})")
    return GenerateReport(
        count=count,
        seed=seed,
        generated=not holds,
        index_filled=index_filled,
        seconds=seconds,
        phases=phases,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--count", type=int, default=config.FULL_COUNT, help="vehicles to generate")
    size.add_argument(
        "--quick", action="store_true", help=f"{config.QUICK_COUNT:,} vehicles instead"
    )
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args(argv)
    count = config.QUICK_COUNT if args.quick else args.count
    if count <= 0:
        parser.error("--count must be positive")
    asyncio.run(ensure_fleet(count, args.seed, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
