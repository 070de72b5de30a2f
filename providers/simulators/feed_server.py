"""A local GBFS feed server: a real HTTP endpoint that plays an operator for tests, demo and bench.

It owns serving feed documents over HTTP the way a well-behaved operator does (strong ETag,
Last-Modified, 304 answers to conditional GETs) plus fault injection per path, so the sync
pipeline's error handling is tested against real sockets rather than mocked transports.
:func:`serve_in_background` runs any ASGI app on a free local port inside the caller's loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

__all__ = ["DocumentFactory", "FeedServer", "serve_in_background"]

logger = logging.getLogger(__name__)

#: Produces a feed document at request time: raw bytes are served as-is, dicts as JSON.
DocumentFactory: TypeAlias = Callable[[], bytes | dict[str, Any]]
_Source: TypeAlias = bytes | DocumentFactory

_JSON = "application/json"
# A hanging request gives up on its own after this long, so nothing outlives a forgotten test.
_HANG_LIMIT_SECONDS = 300.0
_STREAM_CHUNK = 64 * 1024


@dataclass(slots=True)
class _Fault:
    """What a test asked to go wrong on one path; the fields combine (delay, then fail)."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    body: bytes | None = None
    content_type: str | None = _JSON
    hang: bool = False
    redirect_to: str | None = None  # answer 302 with this Location
    trickle: tuple[int, float] | None = None  # (bytes per chunk, seconds between chunks)
    oversize: tuple[int, bool] | None = None  # (body bytes, declare Content-Length)
    # The status applies to this many more requests only (None: until reset): a blip.
    remaining: int | None = None


@dataclass(slots=True)
class _OAuth2Endpoint:
    path: str
    client_id: str
    client_secret: str
    expires_in: int


@dataclass(slots=True)
class _Validators:
    """The validators of the body last served on a path."""

    etag: str
    last_modified: float  # whole seconds: HTTP dates carry no fractions


class FeedServer:
    """Routes ``/<system>/<file>.json`` to static bytes or to a document factory.

    Counters (``request_counts``, ``not_modified_counts``) are keyed by request path, so a test
    can assert that a client revalidated instead of refetching.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # dates Last-Modified; injectable so tests need no sleeping
        self._routes: dict[str, _Source] = {}
        self._faults: dict[str, _Fault] = {}
        self._validators: dict[str, _Validators] = {}
        self._app: Starlette | None = None
        self.request_counts: Counter[str] = Counter()
        self.not_modified_counts: Counter[str] = Counter()
        # Body bytes handed to the server for streamed answers (oversize, trickle): what a
        # client that stopped reading early did not make us produce.
        self.streamed_bytes: Counter[str] = Counter()
        # Access control like an operator's API: path prefix -> the headers a request must carry.
        self._required: dict[str, dict[str, str]] = {}
        self._oauth2: _OAuth2Endpoint | None = None
        # Bearer tokens the OAuth2 endpoint issued and that are still valid (not revoked).
        self.issued_tokens: list[str] = []
        self.refused_requests: Counter[str] = Counter()
        # The headers of the latest request per path (what a client sent where).
        self.last_headers: dict[str, dict[str, str]] = {}

    # -- routes -------------------------------------------------------------------------------

    @property
    def paths(self) -> list[str]:
        return sorted(self._routes)

    def add_static(self, path: str, body: bytes) -> None:
        self._routes[_normalize(path)] = bytes(body)

    def add_dynamic(self, path: str, fn: DocumentFactory) -> None:
        self._routes[_normalize(path)] = fn

    def add_directory(self, system: str, directory: Path) -> list[str]:
        """Serve every ``*.json`` file of ``directory`` unchanged under ``/<system>/<name>``.

        Files are read once, now: a snapshot folder is immutable test material. Returns the
        registered paths.
        """
        if not directory.is_dir():
            raise NotADirectoryError(f"not a directory: {directory}")
        added = []
        for file in sorted(directory.glob("*.json")):
            path = f"/{system.strip('/')}/{file.name}"
            self.add_static(path, file.read_bytes())
            added.append(path)
        if not added:
            raise FileNotFoundError(f"no *.json files in {directory}")
        return added

    # -- access control -----------------------------------------------------------------------

    def require_headers(self, prefix: str, headers: Mapping[str, str]) -> None:
        """Answer 401 on paths under ``prefix`` unless the request carries these exact headers
        (an API key header, or ``Authorization: Bearer …``)."""
        self._required[_normalize(prefix)] = dict(headers)

    def require_oauth2(self, prefix: str) -> None:
        """Answer 401 on paths under ``prefix`` unless the request carries a bearer token the
        OAuth2 endpoint issued and that was not revoked."""
        self._required[_normalize(prefix)] = {}

    def add_oauth2_token_endpoint(
        self, path: str, *, client_id: str, client_secret: str, expires_in: int = 3600
    ) -> None:
        """An OAuth2 client-credentials token endpoint (RFC 6749 4.4, client_secret_basic)."""
        self._oauth2 = _OAuth2Endpoint(_normalize(path), client_id, client_secret, expires_in)

    def revoke_tokens(self) -> None:
        self.issued_tokens.clear()

    def _authorized(self, request: Request, path: str) -> bool:
        for prefix, headers in self._required.items():
            if not path.startswith(prefix):
                continue
            if not headers:  # OAuth2: any token we issued
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or token not in self.issued_tokens:
                    return False
            elif any(request.headers.get(k) != v for k, v in headers.items()):
                return False
        return True

    async def _token(self, request: Request) -> Response:
        endpoint = self._oauth2
        if endpoint is None or request.scope["path"] != endpoint.path:
            return _error(404, "no token endpoint here")
        expected = (
            "Basic "
            + base64.b64encode(f"{endpoint.client_id}:{endpoint.client_secret}".encode()).decode()
        )
        form = parse_qs((await request.body()).decode())
        if request.headers.get("authorization") != expected:
            return _error(401, "invalid_client")
        if form.get("grant_type") != ["client_credentials"]:
            return _error(400, "unsupported_grant_type")
        token = secrets.token_urlsafe(16)
        self.issued_tokens.append(token)
        return Response(
            orjson.dumps(
                {"access_token": token, "token_type": "Bearer", "expires_in": endpoint.expires_in}
            ),
            media_type=_JSON,
        )

    # -- fault injection ----------------------------------------------------------------------

    def fail(
        self,
        path: str,
        status: int = 500,
        *,
        headers: Mapping[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        """Answer ``status`` with a JSON error body (instead of the document) until reset, or
        for the next ``times`` requests only, with extra ``headers`` (e.g.
        ``{"Retry-After": "120"}`` on a 429 or 503)."""
        fault = self._fault(path)
        fault.status = status
        fault.headers = dict(headers or {})
        fault.remaining = times

    def delay(self, path: str, seconds: float) -> None:
        """Wait ``seconds`` before answering, e.g. to trip a client's timeout."""
        self._fault(path).delay_seconds = seconds

    def redirect(self, path: str, location: str) -> None:
        """Answer 302 Found pointing at ``location`` (absolute, or a path on this server)."""
        self._fault(path).redirect_to = location

    def set_body(self, path: str, raw_bytes: bytes, *, content_type: str | None = _JSON) -> None:
        """Serve these exact bytes with status 200, e.g. malformed or schema-breaking JSON, or
        an HTML error page (``content_type="text/html"``); ``None`` sends no Content-Type."""
        fault = self._fault(path)
        fault.body = bytes(raw_bytes)
        fault.content_type = content_type

    def hang(self, path: str) -> None:
        """Accept the request and answer nothing (not even headers) until the client gives up."""
        self._fault(path).hang = True

    def trickle(self, path: str, *, chunk_bytes: int = 16, interval_seconds: float = 0.25) -> None:
        """Send the body ``chunk_bytes`` at a time, pausing between chunks: every read returns
        within a read timeout, yet the whole body takes as long as the pauses add up to."""
        self._fault(path).trickle = (max(1, chunk_bytes), interval_seconds)

    def oversize(self, path: str, size_bytes: int, *, declare_length: bool = True) -> None:
        """Answer 200 with a syntactically valid JSON document of ``size_bytes``, produced as it
        is sent (the server never holds it); with or without a Content-Length header."""
        if size_bytes < 64:
            raise ValueError("an oversize body is at least 64 bytes")
        self._fault(path).oversize = (size_bytes, declare_length)

    def reset(self, path: str | None = None) -> None:
        """Clear injected faults on ``path``, or on every path. Counters are kept."""
        if path is None:
            self._faults.clear()
        else:
            self._faults.pop(_normalize(path), None)

    def reset_counts(self) -> None:
        self.request_counts.clear()
        self.not_modified_counts.clear()

    def _fault(self, path: str) -> _Fault:
        return self._faults.setdefault(_normalize(path), _Fault())

    # -- HTTP ---------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        if self._app is None:
            self._app = Starlette(
                routes=[
                    Route("/{path:path}", self._handle, methods=["GET"]),
                    Route("/{path:path}", self._token, methods=["POST"]),
                ]
            )
        return self._app

    async def _handle(self, request: Request) -> Response:
        path: str = request.scope["path"]
        self.request_counts[path] += 1
        self.last_headers[path] = dict(request.headers)
        if not self._authorized(request, path):
            self.refused_requests[path] += 1
            return _error(401, "missing or invalid credentials")

        fault = self._faults.get(path)
        if fault is not None and fault.redirect_to is not None:
            return Response(status_code=302, headers={"Location": fault.redirect_to})
        if fault is not None and fault.delay_seconds > 0:
            await asyncio.sleep(fault.delay_seconds)
        if fault is not None and fault.hang:
            await _wait_for_disconnect(request)
            return Response(status_code=504)  # nobody is listening any more
        if fault is not None and fault.status is not None and fault.remaining != 0:
            if fault.remaining is not None:
                fault.remaining -= 1
            return _error(fault.status, f"injected failure on {path}", fault.headers)
        if fault is not None and fault.oversize is not None:
            return self._oversize(path, *fault.oversize)

        if fault is not None and fault.body is not None:
            body = fault.body
        else:
            source = self._routes.get(path)
            if source is None:
                return _error(404, f"no feed at {path}")
            try:
                body = _render(source)
            except Exception:
                # A broken generator is a bug in the simulator, not a feed fault: log it loudly
                # and answer like a broken operator would, so the client's error path runs.
                logger.exception("feed generator for %s failed", path)
                return _error(500, f"feed generator for {path} failed")

        validators = self._validators_for(path, body)
        headers = {
            "ETag": validators.etag,
            "Last-Modified": formatdate(validators.last_modified, usegmt=True),
        }
        trickle = fault.trickle if fault is not None else None
        if trickle is None and _not_modified(request, validators):
            self.not_modified_counts[path] += 1
            return Response(status_code=304, headers=headers)
        media_type = _JSON if fault is None else fault.content_type
        if trickle is not None:  # always the full body: a slow answer, not a quick 304
            return self._trickle(path, body, *trickle, headers, media_type)
        return Response(body, status_code=200, headers=headers, media_type=media_type)

    def _oversize(self, path: str, size: int, declare_length: bool) -> Response:
        head = b'{"last_updated": 1700000000, "ttl": 0, "version": "2.3", "data": {"bikes": ['
        tail = b"]}}"
        padding = size - len(head) - len(tail)

        async def body() -> AsyncIterator[bytes]:
            for chunk in (head, *_spaces(padding), tail):
                self.streamed_bytes[path] += len(chunk)
                yield chunk
                # Sending to a client that hung up does not suspend: without this the whole
                # body would be produced before the disconnect is noticed.
                await asyncio.sleep(0)

        headers = {"Content-Length": str(size)} if declare_length else {}
        return StreamingResponse(body(), headers=headers, media_type=_JSON)

    def _trickle(
        self,
        path: str,
        body: bytes,
        chunk_bytes: int,
        interval: float,
        headers: dict[str, str],
        media_type: str | None,
    ) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), chunk_bytes):
                if start:
                    await asyncio.sleep(interval)
                chunk = body[start : start + chunk_bytes]
                self.streamed_bytes[path] += len(chunk)
                yield chunk

        return StreamingResponse(chunks(), headers=headers, media_type=media_type)

    def _validators_for(self, path: str, body: bytes) -> _Validators:
        etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
        known = self._validators.get(path)
        # Only the latest body per path is remembered: dynamic feeds change every few seconds
        # for as long as the demo runs, and a per-body history would grow without bound.
        if known is None or known.etag != etag:
            known = _Validators(etag=etag, last_modified=float(int(self._clock())))
            self._validators[path] = known
        return known


def _normalize(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _render(source: _Source) -> bytes:
    if isinstance(source, bytes):
        return source
    document = source()
    return document if isinstance(document, bytes) else orjson.dumps(document)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"error": message, "status": status}),
        status_code=status,
        headers=dict(headers or {}),
        media_type=_JSON,
    )


def _spaces(count: int) -> Generator[bytes, None, None]:
    block = b" " * _STREAM_CHUNK
    while count > 0:
        yield block[: min(count, _STREAM_CHUNK)]
        count -= _STREAM_CHUNK


async def _wait_for_disconnect(request: Request) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_HANG_LIMIT_SECONDS):
            # A GET's one (empty) body message, then nothing until the client disconnects.
            while (await request.receive())["type"] != "http.disconnect":
                pass


def _not_modified(request: Request, validators: _Validators) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        # RFC 9110 §13.1.2: If-None-Match uses the weak comparison, and when present it wins
        # over If-Modified-Since.
        candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in candidates or validators.etag in candidates
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since).timestamp()
    except (TypeError, ValueError, IndexError):
        return False  # an unparseable date is ignored, as RFC 9110 requires
    return since >= validators.last_modified


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn 0.54 has no config switch for this; its default swaps the process-wide
        # SIGINT/SIGTERM handlers, which would steal Ctrl+C from pytest or the CLI.
        yield


@contextlib.asynccontextmanager
async def serve_in_background(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, shutdown_timeout: int = 5
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` in the current event loop; yield its base URL.

    ``port=0`` binds a free port chosen by the OS. On exit the server stops accepting, lets
    in-flight requests finish for up to ``shutdown_timeout`` seconds, and is awaited.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # None: leave the levels of uvicorn's loggers alone (the API server shares them).
        log_level=None,
        log_config=None,  # never reconfigure the embedding process's logging
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=shutdown_timeout,
    )
    server = _EmbeddedServer(config)

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit as exc:
            # uvicorn exits the process when it cannot bind; inside a task that would escape
            # the event loop and end the whole test session.
            raise RuntimeError(f"uvicorn could not start on {host}:{port}") from exc

    task = asyncio.create_task(run(), name=f"feed-server {host}:{port}")
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the startup error
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield _base_url(server)
    finally:
        server.should_exit = True
        await task


def _base_url(server: uvicorn.Server) -> str:
    sockname = server.servers[0].sockets[0].getsockname()
    bound_host, bound_port = str(sockname[0]), int(sockname[1])
    if bound_host in ("0.0.0.0", "::", ""):
        bound_host = "127.0.0.1"  # a wildcard bind is reachable on loopback
    elif ":" in bound_host:
        bound_host = f"[{bound_host}]"
    return f"http://{bound_host}:{bound_port}"
