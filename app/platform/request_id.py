"""The request id: one id per API request, carried wherever the request's work goes, so that
every log line of that work can be found with it (docs/operations-logs.md).

- :data:`REQUEST_ID` holds the current id (a context variable: each request, task and delivery
  has its own; asyncio tasks started inside one inherit it). The log formatters
  (app/platform/logs.py) add it to every line.
- :class:`RequestIdMiddleware` (the app's outermost ASGI middleware, app/main.py) takes a
  well-formed incoming ``X-Request-Id`` or makes one, sets it for the request, and returns it
  in the response's headers (HTTP, and the WebSocket handshake).
- :func:`outbound_event_hooks`: httpx hooks for the operator calls' client (app/runtime.py):
  the id goes out as ``X-Request-Id`` and each call is logged with it.
- Tasks carry it in a message label (app/task_queue.py); webhook deliveries in their outbox
  event's row (app/fleet/outbox.py).
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HEADER",
    "REQUEST_ID",
    "RequestIdMiddleware",
    "current",
    "new_request_id",
    "outbound_event_hooks",
    "well_formed",
]

HEADER = "X-Request-Id"
_HEADER_KEY = b"x-request-id"
# An incoming id is taken as it is only if it is short and of a charset that needs no escaping
# anywhere it goes (a log line, a header, a label): a caller's UUID, ULID or tracing id fits.
MAX_LENGTH = 128
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    # 128 random bits in hex: unguessable and unique without coordination between processes.
    return os.urandom(16).hex()


def well_formed(value: str | bytes | None) -> str | None:
    """``value`` as an id if it is one we accept as given, else None."""
    if value is None:
        return None
    raw = value.encode("ascii", "replace") if isinstance(value, str) else value
    return raw.decode("ascii") if _WELL_FORMED.fullmatch(raw) else None


def current() -> str | None:
    return REQUEST_ID.get()


class RequestIdMiddleware:
    """Pure ASGI and cheap (the search's hot path goes through it): one scan of the request's
    headers, a context variable set, one header added to the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == _HEADER_KEY:
                given = value
                break
        request_id = well_formed(given) or new_request_id()
        header = (_HEADER_KEY, request_id.encode("ascii"))
        # The message types that carry the response's headers: an HTTP answer, a WebSocket
        # handshake accepted, or refused with an HTTP answer of its own.
        starts = (
            ("http.response.start",)
            if kind == "http"
            else ("websocket.accept", "websocket.http.response.start")
        )

        async def send_with_id(message: Message) -> None:
            if message["type"] in starts:
                # A new list: an app may answer with a list it keeps and sends again.
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


# --- outbound calls -------------------------------------------------------------------------


def _loggable_url(url: httpx.URL) -> str:
    """Scheme, host, port and path: never the user info or the query, where a credential may
    ride."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def outbound_event_hooks(logger: logging.Logger) -> dict[str, list[Any]]:
    """``event_hooks`` for an httpx client whose calls carry the request id: the header on each
    request, and one INFO line per answer on ``logger`` (method, URL without query or user
    info, status, time to the answer's headers). A call that gets no answer is logged by its
    caller (e.g. the booking flow's own line), with the same request id."""

    async def on_request(request: httpx.Request) -> None:
        request_id = REQUEST_ID.get()
        if request_id is not None:
            request.headers[HEADER] = request_id
        request.extensions["mobility_started"] = time.perf_counter()

    async def on_response(response: httpx.Response) -> None:
        request = response.request
        started = request.extensions.get("mobility_started")
        elapsed_ms = (
            round((time.perf_counter() - started) * 1000, 1) if isinstance(started, float) else None
        )
        url = _loggable_url(request.url)
        logger.info(
            "call %s %s: %d",
            request.method,
            url,
            response.status_code,
            extra={
                "method": request.method,
                "url": url,
                "status": response.status_code,
                "elapsed_ms": elapsed_ms,
            },
        )

    return {"request": [on_request], "response": [on_response]}
