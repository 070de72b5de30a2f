"""Migrations run from empty, downgrade to base, and match the ORM models."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.models import Base
from app.platform import migrate
from app.platform.db import async_url
from tests.conftest import TEST_DATABASE_URL

# A database of its own: downgrading must never pull tables from under other tests.
SCRATCH_URL = str(make_url(TEST_DATABASE_URL).set(database="mobility_migrations_test"))
TABLES = {
    "providers",
    "vehicle_types",
    "pricing_plans",
    "stations",
    "vehicles",
    "geofencing_zones",
    "system_regions",
    "sync_runs",
}


async def _tables() -> set[str]:
    url = make_url(SCRATCH_URL)
    conn = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_upgrade_from_empty_downgrade_to_base_and_upgrade_again() -> None:
    await migrate.ensure_database(SCRATCH_URL)
    await asyncio.to_thread(migrate.downgrade, SCRATCH_URL, "base")
    assert not (await _tables()) & TABLES

    await asyncio.to_thread(migrate.upgrade, SCRATCH_URL)
    assert await _tables() >= TABLES

    await asyncio.to_thread(migrate.downgrade, SCRATCH_URL, "base")
    assert not (await _tables()) & TABLES
    await asyncio.to_thread(migrate.upgrade, SCRATCH_URL)
    assert await _tables() >= TABLES


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": False}
    )
    diffs = compare_metadata(context, Base.metadata)
    # The spatial indexes are written by hand in the migrations (on geom::geography and on
    # geom); models do not declare them. PostGIS's own table is not ours either.
    hand_written = {"ix_vehicles_geog", "ix_vehicles_geom", "ix_stations_geog", "ix_stations_geom"}
    hand_written.add("ix_geofencing_zones_geom")
    return [
        d
        for d in diffs
        if not (isinstance(d, tuple) and d[0] == "remove_index" and d[1].name in hand_written)
        and not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "spatial_ref_sys")
    ]


@pytest.mark.usefixtures("migrated")
async def test_models_match_the_migrated_schema() -> None:
    engine = create_async_engine(async_url(TEST_DATABASE_URL))
    try:
        async with engine.connect() as connection:
            diffs = await connection.run_sync(_diff)
    finally:
        await engine.dispose()
    assert diffs == [], "\n".join(map(str, diffs))
