"""Serving and registering the bundled demo operators (used by `mobility demo` and `serve`)."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import Settings
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
    return slugs
