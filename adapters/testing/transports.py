"""Misbehaving operators, as httpx transports handed to an adapter through ``FetchContext.http``.

An adapter must do all its HTTP through the client it is given, so the kit can make every
request fail in a chosen way without knowing the adapter's URLs. :class:`CountingTransport`
wraps a real transport and counts requests: an adapter that makes its own client shows up as
one that made no request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

__all__ = ["FAULTS", "CountingTransport", "fault_transport"]

#: Fault name -> what the operator does to every request.
FAULTS = {
    "connection_refused": "the operator is unreachable (connection refused)",
    "timeout": "the operator does not answer in time (read timeout)",
    "http_500": "the operator answers HTTP 500",
    "http_429": "the operator answers HTTP 429 with Retry-After: 120",
    "truncated_json": "the operator's real response, cut in half",
    "html_page": "the operator answers 200 with an HTML error page",
}
RETRY_AFTER_SECONDS = 120.0

_Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that went through it; answers them with ``handler`` if given, else
    over the network."""

    def __init__(self, handler: _Handler | None = None) -> None:
        self.requests = 0
        self._handler = handler
        self._network = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self._handler is not None:
            return await self._handler(request)
        return await self._network.handle_async_request(request)

    async def real_response(self, request: httpx.Request) -> httpx.Response:
        """The operator's actual answer, fully read."""
        response = await self._network.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self._network.aclose()


def fault_transport(fault: str) -> CountingTransport:
    """A transport on which every request meets ``fault`` (a key of :data:`FAULTS`)."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    transport: CountingTransport

    async def handle(request: httpx.Request) -> httpx.Response:
        if fault == "connection_refused":
            raise httpx.ConnectError("connection refused (contract kit)", request=request)
        if fault == "timeout":
            raise httpx.ReadTimeout("read timed out (contract kit)", request=request)
        if fault == "http_500":
            return httpx.Response(500, json={"error": "internal error"}, request=request)
        if fault == "http_429":
            headers = {"Retry-After": f"{RETRY_AFTER_SECONDS:.0f}"}
            return httpx.Response(
                429, headers=headers, json={"error": "slow down"}, request=request
            )
        if fault == "html_page":
            page = b"<!doctype html><html><body><h1>Service unavailable</h1></body></html>"
            headers = {"Content-Type": "text/html; charset=utf-8"}
            return httpx.Response(200, headers=headers, content=page, request=request)
        real = await transport.real_response(request)
        body = real.content[: len(real.content) // 2]
        kept = {
            k: v
            for k, v in real.headers.items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        }
        return httpx.Response(real.status_code, headers=kept, content=body, request=request)

    transport = CountingTransport(handle)
    return transport
