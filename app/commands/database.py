"""The database a command works in: sessions on one connection for as long as the command
runs, the engine disposed when it ends (a command is one short process, not a server that
needs a pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.platform.db import create_engine, session_factory
from app.platform.settings import Settings

__all__ = ["database"]


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()
