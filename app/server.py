"""The HTTP server of ``mobility serve``: uvicorn, with the limits a public endpoint needs that
uvicorn does not set by itself.

- **Header deadline**: a request's headers must be complete within
  ``MOBILITY_HTTP_HEADER_TIMEOUT_SECONDS`` of its first byte (or of the connection), or the
  connection is closed. uvicorn waits forever, so a few hundred sockets trickling partial
  headers (slowloris) would hold the process's connections.
- **Body deadline**: the whole body within ``MOBILITY_HTTP_BODY_TIMEOUT_SECONDS`` of the
  headers (a slow-body client gets 408, or a closed connection if the answer had started).
- **Connection cap**: at most ``MOBILITY_MAX_CONNECTIONS`` connections and requests in flight
  per process; past it new requests are answered 503 (uvicorn's ``limit_concurrency``).
- **WebSocket messages** at most ``MOBILITY_MAX_REQUEST_BYTES`` (uvicorn's ``ws_max_size``;
  app/platform/edge.py checks the same inside the app).
- **Graceful shutdown** (:class:`GracefulServer`, docs/operations-shutdown.md): on SIGTERM or
  SIGINT, ``/readyz`` answers 503 and every WebSocket is closed with 1001 at once; after
  ``MOBILITY_SHUTDOWN_DRAIN_SECONDS`` (and the WebSockets' close handshakes) the server stops
  accepting and in-flight requests get ``MOBILITY_SHUTDOWN_GRACE_SECONDS`` to finish; then the
  lifespan stops the background loops and waits for booking operations still running. The
  process exits 0. A second signal skips the drain (uvicorn's own shutdown at once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import multiprocess

from app.main import create_app
from app.platform import metrics
from app.platform.logs import configure_logging
from app.platform.settings import Settings
from app.platform.shutdown import Shutdown

__all__ = ["GracefulServer", "GuardedHttpToolsProtocol", "MobilityConfig", "run"]

log = logging.getLogger(__name__)


class MobilityConfig(uvicorn.Config):
    """uvicorn's configuration with our deadlines, which travel with it to every worker
    process (``--workers``: the configuration is pickled into each)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers and body (its
    configuration's). A module-level class: worker processes unpickle it by name."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        config = self.config
        self._header_timeout = getattr(config, "header_timeout", MobilityConfig.header_timeout)
        self._body_timeout = getattr(config, "body_timeout", MobilityConfig.body_timeout)
        super().connection_made(transport)
        self._arm(self._header_timeout, self._headers_late)

    def data_received(self, data: bytes) -> None:
        # A keep-alive connection's next request starts: its headers are due in time.
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm(self._header_timeout, self._headers_late)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if not self.transport.is_closing():
            self._arm(self._body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the socket is the WebSocket protocol's from here on
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, late: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _body_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_started:
            self.transport.write(_REQUEST_TIMEOUT)
        if self.cycle is not None:
            self.cycle.disconnected = True  # the app's next receive() sees the client gone
            self.cycle.message_event.set()
        self.transport.close()


_BODY_TIMEOUT_JSON = (
    b'{"error":{"code":"REQUEST_TIMEOUT","message":"the request body came too slowly"}}'
)
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: %d\r\n\r\n" % len(_BODY_TIMEOUT_JSON)
    + _BODY_TIMEOUT_JSON
)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, draining first on the first SIGTERM or SIGINT."""

    def __init__(
        self, config: uvicorn.Config, shutdown: Shutdown, drain_seconds: float, grace_seconds: float
    ) -> None:
        super().__init__(config)
        self.shutdown_state = shutdown
        self.drain_seconds = drain_seconds
        self.grace_seconds = grace_seconds
        self._signalled_at: float | None = None

    #: A worker of ``--workers``: a second SIGTERM is its supervisor passing on the signal
    #: the whole process group already got (systemd, Ctrl-C), not a request to hurry.
    ignore_repeated_sigterm: bool = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if (
            self._signalled_at is not None
            and self.ignore_repeated_sigterm
            and sig == signal.SIGTERM
        ):
            return
        if self._signalled_at is None and sig in (signal.SIGTERM, signal.SIGINT):
            # A signal handler: only note the time. on_tick, on the event loop, does the rest.
            # Not recorded as captured, so uvicorn does not re-raise it once done and the
            # process exits 0 (a clean stop, not a death by signal).
            self._signalled_at = time.monotonic()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._signalled_at is not None and not self.should_exit:
            self._drain(time.monotonic() - self._signalled_at)
        return await super().on_tick(counter)

    def _drain(self, elapsed: float) -> None:
        if not self.shutdown_state.began:
            log.info(
                "shutting down: draining for %gs, then up to %gs for in-flight work",
                self.drain_seconds,
                self.grace_seconds,
            )
            self.shutdown_state.begin()  # /readyz says 503; WebSockets get 1001
            return
        if elapsed < self.drain_seconds:
            return
        after_drain = elapsed - self.drain_seconds
        if self.shutdown_state.open_websockets and after_drain < self.grace_seconds:
            return  # their close handshakes are still under way
        # What is left of the grace is uvicorn's to wait for in-flight requests (whole
        # seconds: its setting is an int), then it cancels them.
        self.config.timeout_graceful_shutdown = max(1, math.ceil(self.grace_seconds - after_drain))
        self.should_exit = True


class _GracefulWorker(multiprocess.Process):
    """One worker process of ``--workers N`` running the graceful server. Built in the
    supervising process and unpickled in the worker with its configuration, whose app factory
    holds the worker's own :class:`Shutdown` (pickled together, so one object there)."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], settings: Settings
    ) -> None:
        self.settings = settings
        super().__init__(config, sockets)

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            # In the worker, which starts with nothing configured (spawned, not forked): the
            # log format and level `mobility serve` has (app/cli.py).
            configure_logging(self.settings.log_level or "INFO", self.settings.log_format or "json")
            server = _graceful_server(self.config, self.settings)
            server.ignore_repeated_sigterm = True
            self._server = server
        return self._server


class _Supervisor(multiprocess.Multiprocess):
    """uvicorn's supervisor of ``--workers N``, starting graceful workers. uvicorn builds its
    workers by the module name ``Process`` (in init_processes, restart_all and when one died);
    the supervising process runs nothing else of uvicorn's, so that name is pointed at ours
    while it supervises. On SIGTERM it sends SIGTERM to each worker, which then drains as a
    single process does."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], settings: Settings
    ) -> None:
        super().__init__(config, sockets)
        self.settings = settings

    def run(self) -> None:
        settings = self.settings

        def worker(config: uvicorn.Config, sockets: list[socket.socket]) -> _GracefulWorker:
            return _GracefulWorker(config, sockets, settings)

        original = multiprocess.Process
        multiprocess.Process = worker  # type: ignore[misc,assignment]
        try:
            super().run()
        finally:
            multiprocess.Process = original  # type: ignore[misc]
            for process in self.processes:
                if process.pid is not None:
                    metrics.release_process(process.pid)

    def keep_subprocess_alive(self) -> None:
        # A worker that died (killed, out of memory) never ran its lifespan's exit: its live
        # gauges (connections, pool use) would be summed into every scrape from now on.
        before = {p.pid for p in self.processes}
        super().keep_subprocess_alive()
        for pid in before - {p.pid for p in self.processes}:
            if pid is not None:
                metrics.release_process(pid)


def _graceful_server(config: uvicorn.Config, settings: Settings) -> GracefulServer:
    factory = config.app
    assert isinstance(factory, functools.partial)
    return GracefulServer(
        config,
        factory.keywords["shutdown"],
        drain_seconds=settings.shutdown_drain_seconds,
        grace_seconds=settings.shutdown_grace_seconds,
    )


def run(settings: Settings, host: str, port: int, *, workers: int = 1) -> None:
    """Serve until stopped; ``workers`` processes share the port (uvicorn's supervisor)."""
    # No log config of uvicorn's own: its loggers go to the root handler (app/platform/logs.py)
    # at the root's level (MOBILITY_LOG_LEVEL), so its lines have our format and fields.
    config = MobilityConfig(
        # The factory, called by uvicorn in the serving process, shares that process's
        # shutdown with its server.
        functools.partial(create_app, settings, shutdown=Shutdown()),
        factory=True,
        host=host,
        port=port,
        log_config=None,
        http=GuardedHttpToolsProtocol,
        limit_concurrency=settings.max_connections,
        ws_max_size=settings.max_request_bytes,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=max(1, math.ceil(settings.shutdown_grace_seconds)),
        workers=workers,
    )
    config.header_timeout = settings.http_header_timeout_seconds
    config.body_timeout = settings.http_body_timeout_seconds
    if workers > 1:
        _Supervisor(config, [config.bind_socket()], settings).run()
        return
    server = _graceful_server(config, settings)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run: the lifespan or the bind failed
