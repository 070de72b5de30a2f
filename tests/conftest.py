"""Shared fixtures: real PostgreSQL/PostGIS and Redis, migrated with Alembic, cleaned per test."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.main import create_app
from app.platform import migrate, secret_box
from app.platform.settings import PROJECT_ROOT, Settings
from app.runtime import Runtime, open_runtime
from providers.simulators.feed_server import FeedServer, serve_in_background

TEST_DATABASE_URL = os.environ.get(
    "MOBILITY_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/mobility_test"
)
TEST_REDIS_URL = os.environ.get("MOBILITY_REDIS_URL", "redis://127.0.0.1:6379/15")


def conformance_root() -> Path:
    return Path(
        os.environ.get("MOBILITY_CONFORMANCE_DIR", PROJECT_ROOT.parent / "shared" / "conformance")
    )


def require_conformance() -> Path:
    """The reference folder; a loud failure in CI, a visible skip on a developer machine."""
    root = conformance_root()
    if not root.is_dir():
        message = f"conformance material not found at {root} (set MOBILITY_CONFORMANCE_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": TEST_DATABASE_URL,
        "redis_url": TEST_REDIS_URL,
        # Per run: Redis pub/sub channels are not per database, so two suites running at once
        # on one server (two checkouts, a developer's and CI's) would hear each other's deltas.
        "redis_prefix": f"test{os.getpid()}",
        "demo_feeds": False,
        "background_sync": False,
        # Short, but not so short that a busy machine (a loaded CI runner, the browser tests
        # beside) times out fetching from the in-process feed server: that flaked at 2 s. The
        # timeout tests set their own.
        "sync_http_timeout_seconds": 5.0,
        "sync_deadline_seconds": 10.0,
        # Password hashing at its cheapest: the suite signs up many riders.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        # The suite signs up hundreds of riders from one address; the throttle's own tests set
        # their limits (tests/graphql/test_login_throttle.py).
        "password_attempts_per_address": (100_000, 1000.0),
        # One signing key for the test process and the `mobility` processes it starts, so a
        # token obtained from one is accepted by the other.
        "jwt_secret": "test-secret-of-the-suite-0123456789abcdef",
        # Operator faults (a hanging simulator) show within seconds, not the default 20 s.
        "booking_http_timeout_seconds": 2.0,
        "booking_deadline_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings() -> Settings:
    name = make_url(TEST_DATABASE_URL).database or ""
    # The suite truncates tables: never let it near a database that is not a test database.
    if not name.endswith("_test"):
        pytest.exit(f"refusing to run tests against database {name!r}: its name must end in _test")
    return make_settings()


@pytest.fixture(scope="session")
async def migrated(settings: Settings) -> None:
    await migrate.ensure_database(settings.database_url)
    # Alembic's env runs its own event loop: keep it off this one.
    await asyncio.to_thread(migrate.upgrade, settings.database_url)


@pytest.fixture(scope="session")
async def session_runtime(settings: Settings, migrated: None) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as runtime:
        yield runtime


async def reset_state(runtime: Runtime) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "TRUNCATE providers, staff_tokens, users, bookings, idempotency_keys, "
                "organisations, transit_feeds, transit_stop_times CASCADE"
            )
        )
    # Only this suite's keys: whatever else shares the Redis server is left alone.
    keys = [
        k
        for pattern in runtime.keys.patterns
        async for k in runtime.redis.scan_iter(match=pattern, count=1000)
    ]
    if keys:
        await runtime.redis.delete(*keys)
    # An empty database's index is complete: mark it ready, as the API's start-up would.
    await runtime.index.mark_ready()


@pytest.fixture
async def runtime(session_runtime: Runtime) -> AsyncIterator[Runtime]:
    """The runtime with an empty database and an empty Redis db before each test."""
    await reset_state(session_runtime)
    session_runtime.sync._caches.clear()
    # Per-process caches and circuits start fresh, as in a new process.
    session_runtime.search._index_retry_at = -math.inf
    session_runtime.search._enabled_at = -math.inf
    session_runtime.tiles._bounds.clear()
    session_runtime.tiles._cache.clear()  # another test's tiles, within their few seconds
    session_runtime.reference.invalidate()
    session_runtime.transit.forget()
    session_runtime.transit_live.forget()
    # Secrets are sealed with the runtime's keys, whatever keys a previous test used.
    secret_box.configure(session_runtime.settings)
    yield session_runtime


@pytest.fixture
async def feed_server() -> AsyncIterator[tuple[FeedServer, str]]:
    server = FeedServer()
    async with serve_in_background(server.app) as base_url:
        yield server, base_url


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The real app over ASGI, sharing the test runtime (no lifespan: no background sync)."""
    app = create_app(runtime.settings)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client
