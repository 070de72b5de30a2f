"""Graceful shutdown's plumbing, shared by the server (app/server.py) and the app (app/main.py).

- :class:`Shutdown`: whether this process has begun to shut down. The server begins it on
  SIGTERM; ``/readyz`` then answers 503 and every WebSocket is closed.
- :class:`GoingAway`: ASGI middleware that closes each open WebSocket with 1001 (Going Away)
  once shutdown begins. uvicorn would close them with 1012 (Service Restart) only after it
  stopped accepting; 1001 at once tells a client to reconnect, and the load balancer sends it
  to another instance. An HTTP request still running when the grace runs out (uvicorn cancels
  it) is answered 503 ``SHUTTING_DOWN`` with ``Retry-After`` rather than uvicorn's bare 500.
- :class:`RunToEnd`: operations that must not stop half-way (a reservation between the
  operator's yes and our commit) run to their end even if the request that started them is
  cancelled (uvicorn cancels what is left when the grace runs out); ``wait`` lets the process
  wait for them before it closes its pools.

docs/operations-shutdown.md describes the sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any, ParamSpec, TypeVar

__all__ = ["GOING_AWAY", "GoingAway", "RunToEnd", "Shutdown"]

log = logging.getLogger(__name__)

# RFC 6455 §7.4.1: "an endpoint is going away, such as a server going down".
GOING_AWAY = 1001

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

P = ParamSpec("P")
T = TypeVar("T")


class Shutdown:
    """This process's shutdown, begun once (from the event loop's thread)."""

    def __init__(self) -> None:
        self._began = asyncio.Event()
        #: The WebSockets open now (GoingAway adds and removes them): the server waits for
        #: them to close before it stops accepting.
        self.open_websockets = 0

    @property
    def began(self) -> bool:
        return self._began.is_set()

    def begin(self) -> None:
        self._began.set()

    async def wait(self) -> None:
        await self._began.wait()


class GoingAway:
    """Close every WebSocket with 1001 once ``shutdown`` begins (a socket accepted after that
    is closed right after its accept)."""

    def __init__(self, app: ASGIApp, shutdown: Shutdown) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
            return
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        socket = _Socket(send, self.shutdown)
        self.shutdown.open_websockets += 1
        watcher = asyncio.create_task(socket.close_on_shutdown(), name="websocket-going-away")
        try:
            await self.app(scope, receive, socket.send)
        finally:
            self.shutdown.open_websockets -= 1
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            # uvicorn cancels what is left once the grace ran out: a stable answer the client
            # can retry elsewhere (a reservation with its idempotency key), not a bare 500.
            if self.shutdown.began and not started:
                with contextlib.suppress(Exception):
                    await send(_SHUTTING_DOWN_START)
                    await send(_SHUTTING_DOWN_BODY)
            raise


_SHUTTING_DOWN_JSON = (
    b'{"error":{"code":"SHUTTING_DOWN","message":"the server is shutting down; retry the request"}}'
)
_SHUTTING_DOWN_START: Message = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_SHUTTING_DOWN_JSON)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ],
}
_SHUTTING_DOWN_BODY: Message = {"type": "http.response.body", "body": _SHUTTING_DOWN_JSON}


class _Socket:
    def __init__(self, send: Send, shutdown: Shutdown) -> None:
        self._send = send
        self._shutdown = shutdown
        # One message at a time: the app's sends and our close come from different tasks.
        self._lock = asyncio.Lock()
        self._accepted = asyncio.Event()
        self._closed = False

    async def send(self, message: Message) -> None:
        async with self._lock:
            if self._closed:
                # We closed the socket: what the app still sends (a last subscription event,
                # its own close) has nowhere to go, and uvicorn would raise on it.
                return
            await self._send(message)
            kind = message["type"]
            if kind == "websocket.accept":
                self._accepted.set()
            elif kind in ("websocket.close", "websocket.http.response.body"):
                self._closed = True

    async def close_on_shutdown(self) -> None:
        await self._shutdown.wait()
        # A socket not yet accepted is closed right after its accept (or never was one).
        await self._accepted.wait()
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(Exception):  # the client may be gone already
                await self._send(
                    {"type": "websocket.close", "code": GOING_AWAY, "reason": "server shutdown"}
                )


class RunToEnd:
    """Operations that run to their end even if their caller is cancelled."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._running: set[asyncio.Task[Any]] = set()

    def wrap(self, operation: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Awaitable[T]]:
        async def run_to_end(*args: P.args, **kwargs: P.kwargs) -> T:
            task = asyncio.create_task(operation(*args, **kwargs), name=self.name)
            self._running.add(task)
            task.add_done_callback(self._finished)
            # A cancelled caller stops waiting; the operation goes on.
            return await asyncio.shield(task)

        return run_to_end

    @property
    def running(self) -> int:
        return len(self._running)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        # Its caller may have been cancelled: the outcome is logged, not lost unnoticed.
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("%s ended with %r", self.name, exc)

    async def wait(self) -> None:
        """Until every operation running now has ended (each is bounded by its own
        deadlines)."""
        if self._running:
            log.info("waiting for %d %s operation(s) to finish", self.running, self.name)
        while self._running:
            await asyncio.wait(set(self._running))
