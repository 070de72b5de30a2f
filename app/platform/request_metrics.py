"""Every HTTP request timed and counted (``mobility_http_request_duration_seconds``), outermost
of the app so refusals at the edge count too.

The ``route`` label is the route's template (``/tiles/{layer}/{z}/{x}/{y}.mvt``), which routing
leaves in the scope, never the path a client sent: a client choosing paths must not choose
label values. Paths answered before routing (the GraphQL fast path) are named by the app;
anything else unrouted is ``unmatched``.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.platform.metrics import HTTP_REQUESTS

__all__ = ["RequestMetrics"]

_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
# A method is the client's word too: any other than these is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    def __init__(self, app: ASGIApp, *, known_paths: Collection[str] = ()) -> None:
        self.app = app
        self.known_paths = frozenset(known_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an app that raised before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if not isinstance(template, str):
                path = scope["path"]
                template = path if path in self.known_paths else "unmatched"
            HTTP_REQUESTS.labels(
                template,
                scope["method"] if scope["method"] in _METHODS else "other",
                _STATUS_CLASSES.get(status // 100, "other"),
            ).observe(time.perf_counter() - started)
