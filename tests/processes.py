"""Real `mobility` processes for tests: API servers, workers, the scheduler, each in its own
process group so a test can kill one the way a host dies (SIGKILL, no clean-up)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from app.platform.settings import Settings
from tests.conftest import conformance_root


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a `mobility` process use these settings' stores."""
    env = dict(os.environ)
    env.update(
        {
            "MOBILITY_ENVIRONMENT": "test",
            "MOBILITY_DATABASE_URL": settings.database_url,
            "MOBILITY_REDIS_URL": settings.redis_url,
            "MOBILITY_REDIS_PREFIX": settings.redis_prefix,
            "MOBILITY_REDIS_CLUSTER": "true" if settings.redis_cluster else "false",
            "MOBILITY_DEMO_FEEDS": "false",
            "MOBILITY_BACKGROUND_SYNC": "false",
            "MOBILITY_SYNC_MIN_INTERVAL_SECONDS": str(settings.sync_min_interval_seconds),
            "MOBILITY_SYNC_MAX_INTERVAL_SECONDS": str(settings.sync_max_interval_seconds),
            "MOBILITY_SYNC_HTTP_TIMEOUT_SECONDS": str(settings.sync_http_timeout_seconds),
            "MOBILITY_SYNC_DEADLINE_SECONDS": str(settings.sync_deadline_seconds),
            "MOBILITY_CONFORMANCE_DIR": str(conformance_root()),
            "MOBILITY_BOOKING_HTTP_TIMEOUT_SECONDS": str(settings.booking_http_timeout_seconds),
            "MOBILITY_BOOKING_DEADLINE_SECONDS": str(settings.booking_deadline_seconds),
            "MOBILITY_PASSWORD_ATTEMPTS_PER_ADDRESS": json.dumps(
                list(settings.password_attempts_per_address)
            ),
        }
    )
    if settings.jwt_secret is not None:
        env["MOBILITY_JWT_SECRET"] = settings.jwt_secret
    if settings.sync_claim_lease_seconds is not None:
        env["MOBILITY_SYNC_CLAIM_LEASE_SECONDS"] = str(settings.sync_claim_lease_seconds)
    env.update(extra)
    return env


@contextmanager
def mobility_process(
    args: Sequence[str], settings: Settings, log: Path, **extra_env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`mobility ARGS...` as a child process group, killed on exit; output appended to log."""
    with external_process(
        [sys.executable, "-m", "app.cli", *args], log, env=process_env(settings, **extra_env)
    ) as proc:
        yield proc


@contextmanager
def external_process(
    args: Sequence[str], log: Path, *, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A program (Prometheus, say, or a `mobility` command) in its own process group, killed
    on exit; output appended to log."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(args), env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], within_seconds: float, what: str, logs: list[Path]
) -> None:
    """Poll until the predicate holds; on time-out fail with the processes' recent output."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    dump = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists()
    )
    raise AssertionError(f"timed out waiting for {what}\n{dump}")
