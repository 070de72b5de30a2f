"""/livez, /health and /readyz (app/probes.py) against the real stores: each readiness check's
state, a database that never answers, and an instance that has begun to shut down."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import text

from app.main import create_app
from app.platform.db import create_engine
from app.platform.shutdown import Shutdown
from app.probes import readiness
from app.runtime import Runtime

# A database that accepts connections and never answers is given up on within a few of these.
CHECK_TIMEOUT = 0.5


@contextlib.asynccontextmanager
async def _client(runtime: Runtime, shutdown: Shutdown) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime.settings, shutdown=shutdown)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never says a word (a hung database)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_livez_and_health_answer_without_the_stores(runtime: Runtime) -> None:
    async with _client(runtime, Shutdown()) as client:
        for path in ("/livez", "/health"):
            response = await client.get(path)
            assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_with_every_store(runtime: Runtime) -> None:
    async with _client(runtime, Shutdown()) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "migrations": "at_head",
            "search": "index",
            "lifecycle": "serving",
        },
    }


async def test_without_the_index_search_falls_back_and_stays_ready(runtime: Runtime) -> None:
    await runtime.redis.delete(runtime.keys.index_ready)
    async with _client(runtime, Shutdown()) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["search"] == "postgis_fallback"


async def test_a_schema_behind_the_migrations_is_not_ready(runtime: Runtime) -> None:
    async with runtime.engine.begin() as conn:
        [current] = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        await conn.execute(text("UPDATE alembic_version SET version_num = 'an_older_revision'"))
    try:
        async with _client(runtime, Shutdown()) as client:
            response = await client.get("/readyz")
    finally:
        async with runtime.engine.begin() as conn:
            await conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": current[0]}
            )
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["migrations"] == "behind"
    assert body["checks"]["database"] == "ok"


async def test_a_hung_database_fails_the_probe_in_time(runtime: Runtime) -> None:
    async with _silent_server() as port:
        engine = create_engine(f"postgresql://postgres@127.0.0.1:{port}/nowhere_test")
        hung = dataclasses.replace(
            runtime,
            engine=engine,
            settings=runtime.settings.model_copy(
                update={"readiness_check_timeout_seconds": CHECK_TIMEOUT}
            ),
        )
        try:
            ready, checks = await readiness(hung, Shutdown())
        finally:
            await engine.dispose()
    assert not ready
    assert checks == {
        "database": "timeout",
        "migrations": "unknown",
        "search": "unavailable",
        "lifecycle": "serving",
    }


async def test_not_ready_once_shutdown_began(runtime: Runtime) -> None:
    shutdown = Shutdown()
    async with _client(runtime, shutdown) as client:
        assert (await client.get("/readyz")).status_code == 200
        shutdown.begin()
        response = await client.get("/readyz")
        # Still alive: only readiness says "send no more".
        assert (await client.get("/livez")).status_code == 200
    assert response.status_code == 503
    assert response.json()["checks"]["lifecycle"] == "shutting_down"
    assert response.json()["checks"]["database"] == "ok"
