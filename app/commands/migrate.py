"""``mobility migrate``: the database and its PostGIS extension if missing, then the schema at
head."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import make_url

from app.commands.console import say
from app.platform import migrate
from app.platform.settings import Settings

__all__ = ["run"]


async def run(settings: Settings) -> int:
    name = make_url(settings.database_url).database
    say(f"[1/2] database {name!r} and PostGIS extension...")
    created = await migrate.ensure_database(settings.database_url)
    say(f"      {'created' if created else 'already present'}")
    say("[2/2] applying migrations...")
    # Alembic runs its own event loop for the async engine: run it off this one.
    await asyncio.to_thread(migrate.upgrade, settings.database_url)
    say("      schema at head")
    return 0
