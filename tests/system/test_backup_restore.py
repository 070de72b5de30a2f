"""Backup and restore as docs/operations.md tells it: ``pg_dump --format=custom`` of the live
database, ``pg_restore`` into a new one, and the restored database holds every row of every
table (bookings and their events included), answers searches, and is at the migrations' head.
Redis holds nothing that is not rebuilt from PostgreSQL (the search index), so it is not
backed up.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from app.platform.db import plain_url
from app.runtime import Runtime, open_runtime
from app.search.validation import Area
from app.vehicle import VehicleFilter
from geo.areas import Near
from tests.booking_support import RESERVE, START, bookable_operator, gql, key, sign_up
from tests.conftest import make_settings

pytestmark = pytest.mark.usefixtures("runtime")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found (Debian's postgresql-client-15)")
    return path


async def _checksums(url: str) -> dict[str, tuple[int, str]]:
    """Every table of the public schema: its row count and an md5 over its rows' text, in a
    fixed order (the rows as PostgreSQL prints them, geometry included)."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
                "AND table_name <> 'spatial_ref_sys' ORDER BY table_name"
            )
        ]
        out = {}
        for table in tables:
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, E'\\n' "
                f"ORDER BY t::text), '')) AS digest FROM \"{table}\" t"
            )
            assert row is not None
            out[table] = (int(row["n"]), str(row["digest"]))
        return out
    finally:
        await conn.close()


async def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, list(args), capture_output=True, text=True, check=False
    )


async def _revision(url: str) -> str:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return str(await conn.fetchval("SELECT version_num FROM alembic_version"))
    finally:
        await conn.close()


async def test_a_dump_restored_into_a_new_database_holds_everything(
    runtime: Runtime, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    pg_dump, pg_restore = _tool("pg_dump"), _tool("pg_restore")
    async with bookable_operator(runtime, "backupscoot") as (sim, _):
        rider, _ = await sign_up(api)
        vehicle_id = f"backupscoot:{sim.vehicles[0].vehicle_id}"
        reserved = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, rider)
        booking = reserved["data"]["reserveVehicle"]["booking"]
        started = await gql(api, START, {"bookingId": booking["id"], "key": key()}, rider)
        assert started["data"]["startTrip"]["booking"]["state"] == "STARTED"

    source = runtime.settings.database_url
    url = make_url(source)
    restored_name = f"mobility_restore_{os.getpid()}_test"
    restored = url.set(database=restored_name).render_as_string(hide_password=False)
    dump = tmp_path / "mobility.dump"
    connection = ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432)]
    connection += ["--username", url.username or "postgres"]
    dumped = await _run(
        pg_dump,
        *connection,
        "--format=custom",
        "--no-owner",
        "--file",
        str(dump),
        "--dbname",
        url.database or "",
    )
    assert dumped.returncode == 0, dumped.stderr
    admin = await asyncpg.connect(plain_url(url.set(database="postgres").render_as_string(False)))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{restored_name}"')
        await admin.execute(f'CREATE DATABASE "{restored_name}"')
        restore = await _run(
            pg_restore,
            *connection,
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            restored_name,
            str(dump),
        )
        assert restore.returncode == 0, restore.stderr

        before, after = await asyncio.gather(_checksums(source), _checksums(restored))
        assert after == before
        assert before["bookings"][0] == 1
        assert before["booking_events"][0] >= 2
        # The schema is where the code expects it: nothing to migrate.
        assert await _revision(restored) == await _revision(source) != ""

        # The restored database serves: a runtime on it (its own Redis keys, an empty index,
        # rebuilt from PostgreSQL as after a Redis loss) answers a search as the source does.
        area = Area(near=Near(sim.vehicles[1].lat, sim.vehicles[1].lon, 5000), bbox=None)
        expected = await runtime.search.vehicles(area=area, flt=VehicleFilter(), first=500)
        settings = make_settings(database_url=restored, redis_prefix=f"restore{os.getpid()}")
        async with open_runtime(settings) as other:
            try:
                assert await other.sync.ensure_index_ready()
                hits = await other.search.vehicles(area=area, flt=VehicleFilter(), first=500)
            finally:
                keys = [k async for k in other.redis.scan_iter(match=f"{settings.redis_prefix}:*")]
                if keys:
                    await other.redis.delete(*keys)
        assert [h.vehicle.id for h in hits] == [h.vehicle.id for h in expected]
        # Every vehicle of the operator but the one on a ride.
        assert len(hits) == len(sim.vehicles) - 1
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{restored_name}" WITH (FORCE)')
        await admin.close()
