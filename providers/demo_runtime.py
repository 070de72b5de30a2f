"""Serving and registering the bundled demo operators (used by `mobility demo` and `serve`)."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.platform.settings import Settings
from providers.admin import set_booking
from providers.demo import DEMO_PROVIDERS, build_demo_feed_server
from providers.service import register_provider
from providers.simulators.feed_server import serve_in_background

log = logging.getLogger(__name__)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@asynccontextmanager
async def serve_demo_feeds(settings: Settings, *, required: bool) -> AsyncIterator[str | None]:
    """Serve the demo feeds on their configured port, unless something already serves it.

    Several API processes may start on one machine: the first serves the feeds, the others
    find the port taken and rely on it.
    """
    host, port = settings.demo_feeds_host, settings.demo_feeds_port
    if _port_in_use(host, port):
        log.info("demo feeds: %s:%s is already served; using it", host, port)
        yield settings.demo_feeds_base_url
        return
    server = build_demo_feed_server(lambda: settings.demo_feeds_base_url)
    serving = serve_in_background(server.app, host=host, port=port)
    try:
        url = await serving.__aenter__()
    except (OSError, RuntimeError) as exc:
        # Another process may have bound the port between the check and our bind.
        if required:
            raise
        log.warning("demo feeds not served here: %s", exc)
        yield None
        return
    # Only the start-up is guarded above: errors of the caller's block propagate unchanged.
    try:
        log.info("demo feeds served at %s", url)
        yield url
    finally:
        await serving.__aexit__(None, None, None)


@dataclass(frozen=True, slots=True)
class DemoTompOperator:
    """A bookable demo operator: a TOMP simulator process that also publishes GBFS."""

    slug: str
    name: str
    fleet: str
    center: tuple[float, float]
    vehicles: int
    port_offset: int  # from Settings.demo_tomp_port


# In Berlin, like the other demo operators, so one map shows them all.
DEMO_TOMP_OPERATORS: tuple[DemoTompOperator, ...] = (
    DemoTompOperator("demo-tomp-cars", "Demo BookCar (TOMP)", "car", (52.5150, 13.3990), 25, 0),
    DemoTompOperator(
        "demo-tomp-scooters", "Demo BookScoot (TOMP)", "scooter", (52.5265, 13.4230), 40, 1
    ),
)


def tomp_base_url(settings: Settings, operator: DemoTompOperator) -> str:
    return f"http://{settings.demo_feeds_host}:{settings.demo_tomp_port + operator.port_offset}"


@asynccontextmanager
async def run_demo_tomp_operators(settings: Settings) -> AsyncIterator[None]:
    """Start each bookable demo operator as its own process (as a real operator is), unless its
    port is served already (another API process started it); stop them on exit."""
    host = settings.demo_feeds_host
    started: list[asyncio.subprocess.Process] = []
    waiting: list[int] = []
    for operator in DEMO_TOMP_OPERATORS:
        port = settings.demo_tomp_port + operator.port_offset
        if _port_in_use(host, port):
            log.info("demo TOMP operator %s: %s:%s already served", operator.slug, host, port)
            continue
        started.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "providers.simulators.tomp_server",
                "--host",
                host,
                "--port",
                str(port),
                "--fleet",
                operator.fleet,
                "--center-lat",
                str(operator.center[0]),
                "--center-lon",
                str(operator.center[1]),
                "--vehicles",
                str(operator.vehicles),
                "--system-id",
                operator.slug,
                start_new_session=True,
            )
        )
        waiting.append(port)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while waiting and loop.time() < deadline:
            waiting = [p for p in waiting if not _port_in_use(host, p)]
            if waiting:
                await asyncio.sleep(0.1)
        if waiting:
            log.warning("demo TOMP operators did not start on ports %s", waiting)
        yield
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                await asyncio.wait_for(proc.wait(), timeout=5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def register_demo_providers(session: AsyncSession, settings: Settings) -> list[str]:
    slugs = []
    for demo in DEMO_PROVIDERS:
        await register_provider(
            session,
            slug=demo.slug,
            name=demo.name,
            adapter="gbfs",
            config={"discovery_url": settings.demo_feeds_base_url + demo.feed_paths["gbfs"]},
        )
        slugs.append(demo.slug)
    for operator in DEMO_TOMP_OPERATORS:
        base_url = tomp_base_url(settings, operator)
        await register_provider(
            session,
            slug=operator.slug,
            name=operator.name,
            adapter="gbfs",
            config={"discovery_url": f"{base_url}/gbfs/gbfs.json"},
        )
        await set_booking(
            session, operator.slug, {"operator": "tomp", "config": {"base_url": base_url}}
        )
        slugs.append(operator.slug)
    return slugs
