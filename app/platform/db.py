"""Database plumbing: the async engine, sessions, and the transaction boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def async_url(database_url: str) -> str:
    """``postgresql://...`` (what operators configure) to the asyncpg dialect SQLAlchemy needs."""
    url = make_url(database_url)
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def plain_url(database_url: str) -> str:
    """The libpq form asyncpg itself accepts (``postgresql://``)."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    # No pre-ping: it costs a round trip on every checkout, which the search fallback cannot
    # afford; connections are recycled instead, and a connection broken by a server restart
    # fails one request, not a request per checkout.
    return create_async_engine(
        async_url(database_url),
        pool_size=pool_size,
        max_overflow=10,
        pool_recycle=1800,
        # Database errors must not carry statement parameters into messages and logs: they
        # hold operator credentials, ingest secrets and token hashes.
        hide_parameters=True,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """The boundary: commit on success, roll back on error. Services only flush."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


P = ParamSpec("P")
T = TypeVar("T")


def in_transaction(
    factory: async_sessionmaker[AsyncSession],
    operation: Callable[Concatenate[AsyncSession, P], Awaitable[T]],
) -> Callable[P, Awaitable[T]]:
    """``operation`` (a function whose first argument is the session) as one transaction of
    its own, with the same remaining signature: what a service object hands its callers so
    they hold no session."""

    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        async with transaction(factory) as session:
            return await operation(session, *args, **kwargs)

    return run


def in_session(
    factory: async_sessionmaker[AsyncSession],
    read: Callable[Concatenate[AsyncSession, P], Awaitable[T]],
) -> Callable[P, Awaitable[T]]:
    """``read`` (a function whose first argument is the session) in one short session of its
    own, with the same remaining signature; nothing is committed."""

    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        async with factory() as session:
            return await read(session, *args, **kwargs)

    return run
