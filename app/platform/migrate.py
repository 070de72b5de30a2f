"""Database setup: create the database and the PostGIS extension if missing, then migrate."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

# app/platform/migrate.py: the migrations are at the project's root.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def _connect_kwargs(database_url: str, database: str) -> dict[str, object]:
    url = make_url(database_url)
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username or "postgres",
        "password": url.password,
        "database": database,
    }


async def ensure_database(database_url: str) -> bool:
    """Create the database (and PostGIS in it) if missing. Returns True if it was created."""
    name = make_url(database_url).database
    if not name:
        raise ValueError("MOBILITY_DATABASE_URL names no database")
    created = False
    admin = await asyncpg.connect(**_connect_kwargs(database_url, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Identifiers cannot be bound parameters; quote_ident-style escaping instead.
            await admin.execute(f'CREATE DATABASE "{name.replace(chr(34), chr(34) * 2)}"')
            created = True
    finally:
        await admin.close()
    conn = await asyncpg.connect(**_connect_kwargs(database_url, name))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    finally:
        await conn.close()
    return created


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
