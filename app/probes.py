"""The probes a load balancer or Kubernetes asks (docs/operations-shutdown.md).

- ``GET /livez``: the process answers. No I/O: a store that is down must not get a live
  process restarted.
- ``GET /readyz``: the process can serve: the database answers, its schema is at the
  migrations' head, and search has its Redis index or the PostGIS fallback. 503 with each
  check's state otherwise, and from the moment shutdown begins (the instance drains).
- ``GET /health``: kept for existing monitors; the same as ``/livez``.

Each readiness check has its own deadline (``MOBILITY_READINESS_CHECK_TIMEOUT_SECONDS``), and
they run together: a hung store makes the probe say so in time, not hang it. The states are
stable codes; no host, SQL or exception text is shown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from functools import lru_cache

from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.platform.migrate import alembic_config
from app.platform.shutdown import Shutdown
from app.runtime import Runtime

__all__ = ["migration_heads", "readiness", "router"]

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The head revision(s) of migrations/ (read from the files once per process)."""
    # The URL is not used to list scripts; alembic_config needs one.
    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


async def _timed(check: Awaitable[str], seconds: float, on_timeout: str, on_error: str) -> str:
    try:
        async with asyncio.timeout(seconds):
            return await check
    except TimeoutError:
        return on_timeout
    except Exception as exc:  # a probe reports states; the reason goes to the log only
        log.warning("readiness check failed: %r", exc)
        return on_error


async def _database(runtime: Runtime) -> str:
    async with runtime.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return "ok"


async def _migrations(runtime: Runtime) -> str:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        current = frozenset(str(row[0]) for row in rows)
    return "at_head" if current == migration_heads() else "behind"


async def _index(runtime: Runtime) -> str:
    return "index" if await runtime.index.is_ready() else "postgis_fallback"


async def readiness(runtime: Runtime, shutdown: Shutdown) -> tuple[bool, dict[str, str]]:
    """(ready, each check's state)."""
    seconds = runtime.settings.readiness_check_timeout_seconds
    database, migrations, index = await asyncio.gather(
        _timed(_database(runtime), seconds, "timeout", "unreachable"),
        _timed(_migrations(runtime), seconds, "unknown", "unknown"),
        # Redis missing or slow: search answers from PostGIS (app/search/service.py).
        _timed(_index(runtime), seconds, "postgis_fallback", "postgis_fallback"),
    )
    # The fallback reads the database: without it, search has nothing to serve from.
    search = index if database == "ok" else "unavailable"
    lifecycle = "shutting_down" if shutdown.began else "serving"
    checks = {
        "database": database,
        "migrations": migrations,
        "search": search,
        "lifecycle": lifecycle,
    }
    ready = (
        database == "ok"
        and migrations == "at_head"
        and search != "unavailable"
        and lifecycle == "serving"
    )
    return ready, checks


router = APIRouter()


@router.get("/livez")
@router.get("/health")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ready, checks = await readiness(request.app.state.runtime, request.app.state.shutdown)
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
        headers={"cache-control": "no-store"},
    )
