"""The ASGI edge: limits every request meets before any route or middleware reads it.

One mechanism for every content type and transport, so no route can be reached around it:

- **body size**: a request body over the cap of its path is refused with 413 (from its
  ``Content-Length`` before anything is read, or as soon as the streamed body passes the cap;
  nothing more is read); a WebSocket message over the cap closes the socket with 1009;
- **paths**: a path with a control character in it (``%00``, ``%0A`` …) is refused with 400
  before a route can pass it to the database or a log line.

Refusals carry a stable code in the shape their path uses: GraphQL's ``{"errors": [...]}`` on
``/graphql``, ``{"error": {"code", "message"}}`` on the REST routes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_TOO_LARGE = "BODY_TOO_LARGE"
MESSAGE_TOO_BIG = 1009  # RFC 6455
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _TooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BodyCap:
    path_prefix: str
    max_bytes: int


class RequestLimits:
    """``caps``: the first whose prefix the path starts with applies; else ``default_bytes``."""

    def __init__(self, app: ASGIApp, *, default_bytes: int, caps: Sequence[BodyCap] = ()) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.caps = tuple(caps)

    def cap_for(self, path: str) -> int:
        for cap in self.caps:
            if path.startswith(cap.path_prefix):
                return cap.max_bytes
        return self.default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.app(scope, self._websocket_receive(scope, receive, send), send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if _CONTROL.search(path):
            await _refuse(
                send, path, 400, "INVALID_PATH", "the path may not contain control characters"
            )
            return
        cap = self.cap_for(path)
        declared = _content_length(scope)
        if declared is not None and declared > cap:
            await _refuse(send, path, 413, BODY_TOO_LARGE, _too_large(cap))
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:  # else the server ends the half-sent response
                await _refuse(send, path, 413, BODY_TOO_LARGE, _too_large(cap))

    def _websocket_receive(self, scope: Scope, receive: Receive, send: Send) -> Receive:
        cap = self.cap_for(scope["path"])

        async def limited() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive":
                size = len(message.get("bytes") or b"") + len((message.get("text") or "").encode())
                if size > cap:
                    await send(
                        {
                            "type": "websocket.close",
                            "code": MESSAGE_TOO_BIG,
                            "reason": f"message over {cap} bytes",
                        }
                    )
                    return {"type": "websocket.disconnect", "code": MESSAGE_TOO_BIG}
            return message

        return limited


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(cap: int) -> str:
    return f"the request body is over {cap} bytes"


async def _refuse(send: Send, path: str, status: int, code: str, message: str) -> None:
    if path == "/graphql" or path.startswith("/graphql/"):
        payload: object = {"errors": [{"message": message, "extensions": {"code": code}}]}
    else:
        payload = {"error": {"code": code, "message": message}}
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
