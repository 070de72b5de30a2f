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
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.platform.settings import Settings

__all__ = ["guarded_protocol", "run"]

log = logging.getLogger(__name__)


def guarded_protocol(header_timeout: float, body_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline for each request's headers and body."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(header_timeout, self._headers_late)

        def data_received(self, data: bytes) -> None:
            # A keep-alive connection's next request starts: its headers are due in time.
            if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
                self._arm(header_timeout, self._headers_late)
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            if not self.transport.is_closing():
                self._arm(body_timeout, self._body_late)

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

    return GuardedHttpToolsProtocol


_BODY_TIMEOUT_JSON = (
    b'{"error":{"code":"REQUEST_TIMEOUT","message":"the request body came too slowly"}}'
)
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: %d\r\n\r\n" % len(_BODY_TIMEOUT_JSON)
    + _BODY_TIMEOUT_JSON
)


def run(settings: Settings, host: str, port: int) -> None:
    # No log config of uvicorn's own: its loggers go to the root handler (app/platform/logs.py)
    # at the root's level (MOBILITY_LOG_LEVEL), so its lines have our format and fields.
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,
        http=guarded_protocol(
            settings.http_header_timeout_seconds, settings.http_body_timeout_seconds
        ),
        limit_concurrency=settings.max_connections,
        ws_max_size=settings.max_request_bytes,
        timeout_keep_alive=5,
    )
