"""Polite, defensive feed fetching: per-file ``last_updated + ttl`` freshness, conditional GET,
a size cap read as a stream, a content-type check, and the operator's ``Retry-After``.

The cache lives as long as the process that syncs; a new process simply fetches everything once.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

_URL = re.compile(r"https?://[^\s'\"<>]+")

_Fetched = TypeVar("_Fetched")


def redact_url(url: str) -> str:
    """The URL without credentials or query string: feeds often carry API keys there."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def redact_urls(text: str) -> str:
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


#: Larger feed bodies are refused (settings: ``sync_max_feed_bytes``). The largest real GBFS
#: files (a city's 10,000-vehicle ``vehicle_status``) are a few megabytes.
DEFAULT_MAX_FEED_BYTES = 20 * 1024 * 1024

# Media types a feed may come with. JSON under any name, and the generic types that
# misconfigured static hosting sends for a ``.json`` file (S3's octet-stream, raw text):
# refusing those would refuse working feeds. Anything else (above all an HTML error or login
# page answered with 200) is not a feed. A missing Content-Type is tolerated.
_TOLERATED_MEDIA_TYPES = frozenset(
    {
        "application/octet-stream",
        "binary/octet-stream",
        "text/plain",
        "application/javascript",
        "text/javascript",
        "application/x-javascript",
    }
)
# RFC 9110 §10.2.3: Retry-After is meaningful with 503 (and 429, RFC 6585 §4).
_RETRY_AFTER_STATUSES = frozenset({429, 503})


MAX_REDIRECTS = 5


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = httpx.URL(url)
    return parts.scheme, parts.host, parts.port


# Retries of transient failures within one fetch (see fetch_json).
DEFAULT_ATTEMPTS = 3
RETRY_BASE_SECONDS = 0.25
RETRY_MAX_SECONDS = 2.0
_TRANSIENT_STATUSES = frozenset({502, 503, 504})


class FeedFetchError(Exception):
    """A feed could not be read. ``retry_after_seconds`` is what the operator asked us to wait
    (429 / 503 with ``Retry-After``), if it said so."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        retry_after_seconds: float | None = None,
        status: int | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.retry_after_seconds = retry_after_seconds
        self.status = status  # the HTTP status, when the operator answered with an error
        self.transient = transient  # worth another attempt right away (fetch_json retries)


@dataclass(slots=True)
class CachedFeed:
    body: bytes
    etag: str | None
    last_modified: str | None
    fresh_until: float  # monotonic clock; 0 when the feed gave no ttl


@dataclass(slots=True)
class FetchedFeed:
    url: str
    document: object  # parsed JSON
    not_modified: bool  # 304, or still within last_updated + ttl: served from our cache
    # The bytes the document was parsed from: some checks need what parsing discards (a key
    # an object repeats keeps only its last value).
    body: bytes = b""


@dataclass(slots=True)
class FeedCache:
    entries: dict[str, CachedFeed] = field(default_factory=dict)

    def mark_fresh_for(self, url: str, seconds: float) -> None:
        entry = self.entries.get(url)
        if entry is not None:
            entry.fresh_until = time.monotonic() + max(0.0, seconds)


async def fetch_json(
    client: httpx.AsyncClient,
    url: str,
    cache: FeedCache,
    *,
    headers: dict[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_FEED_BYTES,
    attempts: int = DEFAULT_ATTEMPTS,
) -> FetchedFeed:
    """GET ``url`` as JSON, honouring freshness and validators from an earlier fetch.

    The body is read as a stream and refused once it passes ``max_bytes`` (decoded size, so a
    compressed bomb is caught too): a broken or hostile operator cannot make us hold more.
    Every failure is a :class:`FeedFetchError`.

    A transient failure (connection refused or reset, 502/503/504 without ``Retry-After``) is
    retried up to ``attempts`` times in all, after exponential waits with full jitter: a blip
    on one file need not fail the sync. Timeouts are not retried (an operator that is slow to
    answer is not helped by more requests; the sync's deadline bounds everything anyway), nor
    is anything the operator meant (4xx, 429, ``Retry-After``, bad content).
    """
    return await _retried(attempts, lambda: _fetch_once(client, url, cache, headers, max_bytes))


async def _retried(attempts: int, fetch: Callable[[], Awaitable[_Fetched]]) -> _Fetched:
    """``fetch()`` tried up to ``attempts`` times in all while it fails transiently
    (``FeedFetchError.transient``), after exponential waits with full jitter; the last failure
    is raised."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(max(1, attempts)),
        wait=wait_random_exponential(multiplier=RETRY_BASE_SECONDS, max=RETRY_MAX_SECONDS),
        retry=retry_if_exception(lambda exc: isinstance(exc, FeedFetchError) and exc.transient),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fetch()
    raise AssertionError("unreachable: tenacity re-raises the last failure")


async def _fetch_once(
    client: httpx.AsyncClient,
    url: str,
    cache: FeedCache,
    headers: dict[str, str] | None,
    max_bytes: int,
) -> FetchedFeed:
    cached = cache.entries.get(url)
    if cached is not None and cached.fresh_until > time.monotonic():
        return FetchedFeed(url, orjson.loads(cached.body), not_modified=True, body=cached.body)
    got = await _conditional_get(
        client, url, cached, "application/json", headers, max_bytes, _check_content_type
    )
    if got is None:
        assert cached is not None
        return FetchedFeed(url, orjson.loads(cached.body), not_modified=True, body=cached.body)
    body, etag, last_modified = got
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedFetchError(f"unparseable JSON from {url}: {exc}", url=url) from exc
    cache.entries[url] = CachedFeed(
        body=body, etag=etag, last_modified=last_modified, fresh_until=0.0
    )
    return FetchedFeed(url, document, not_modified=False, body=body)


async def _conditional_get(
    client: httpx.AsyncClient,
    url: str,
    cached: CachedFeed | None,
    accept: str,
    headers: dict[str, str] | None,
    max_bytes: int,
    check_content_type: Callable[[httpx.Response, str], None],
) -> tuple[bytes, str | None, str | None] | None:
    """GET with the validators of ``cached``: the body with its ETag and Last-Modified, or
    None when the server answered 304 (what is cached still holds)."""
    request_headers = {"Accept": accept, **(headers or {})}
    if cached is not None:
        if cached.etag:
            request_headers["If-None-Match"] = cached.etag
        if cached.last_modified:
            request_headers["If-Modified-Since"] = cached.last_modified
    target = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            # Redirects are followed here, not by httpx: httpx keeps custom headers (an API
            # key) when a redirect leaves for another host; here the caller's headers go to
            # the origin it named only.
            async with client.stream(
                "GET", target, headers=request_headers, follow_redirects=False
            ) as response:
                if response.is_redirect and response.next_request is not None:
                    following = str(response.next_request.url)
                    if _origin(following) != _origin(url):
                        request_headers = {"Accept": accept}
                    target = following
                    continue
                if response.status_code == 304 and cached is not None:
                    return None
                if response.status_code != 200:
                    raise _status_error(response, url)
                check_content_type(response, url)
                body = await _read_capped(response, url, max_bytes)
                return body, response.headers.get("ETag"), response.headers.get("Last-Modified")
        raise FeedFetchError(f"more than {MAX_REDIRECTS} redirects from {url}", url=url)
    except httpx.TimeoutException as exc:
        raise FeedFetchError(f"timed out fetching {url}", url=url) from exc
    except httpx.HTTPError as exc:
        raise FeedFetchError(
            f"could not fetch {url}: {exc.__class__.__name__}",
            url=url,
            transient=isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError)),
        ) from exc


@dataclass(slots=True)
class FetchedBody:
    url: str
    body: bytes
    not_modified: bool  # 304: the body is the one fetched before


# What a binary feed (GTFS-Realtime's protobuf) may come as: anything but a document meant
# for people or another format (an HTML error page, a JSON or XML error answered with 200).
_NOT_BINARY = re.compile(r"html|json|xml", re.IGNORECASE)


def _check_binary_content_type(response: httpx.Response, url: str) -> None:
    media_type = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if media_type and _NOT_BINARY.search(media_type):
        raise FeedFetchError(
            f"{url} answered with content type {media_type}, not a binary feed", url=url
        )


async def fetch_bytes(
    client: httpx.AsyncClient,
    url: str,
    cache: FeedCache,
    *,
    accept: str = "application/x-protobuf, application/octet-stream;q=0.9, */*;q=0.1",
    headers: dict[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_FEED_BYTES,
    attempts: int = DEFAULT_ATTEMPTS,
) -> FetchedBody:
    """GET a binary feed (GTFS-Realtime) as ``fetch_json`` gets a JSON one: conditional GET,
    the size cap read as a stream, redirects kept to the caller's origin for its headers,
    transient failures retried, every failure a :class:`FeedFetchError`."""

    async def fetch_once() -> FetchedBody:
        cached = cache.entries.get(url)
        got = await _conditional_get(
            client, url, cached, accept, headers, max_bytes, _check_binary_content_type
        )
        if got is None:
            assert cached is not None
            return FetchedBody(url, cached.body, not_modified=True)
        body, etag, last_modified = got
        cache.entries[url] = CachedFeed(body, etag, last_modified, fresh_until=0.0)
        return FetchedBody(url, body, not_modified=False)

    return await _retried(attempts, fetch_once)


def _status_error(response: httpx.Response, url: str) -> FeedFetchError:
    status = response.status_code
    retry_after = None
    if status in _RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    message = f"HTTP {status} from {url}"
    if retry_after is not None:
        message += f" (the operator asks to retry after {math.ceil(retry_after)}s)"
    return FeedFetchError(
        message,
        url=url,
        retry_after_seconds=retry_after,
        status=status,
        transient=status in _TRANSIENT_STATUSES and retry_after is None,
    )


def _check_content_type(response: httpx.Response, url: str) -> None:
    content_type = response.headers.get("Content-Type")
    if not content_type:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if (
        media_type.endswith(("/json", "+json"))
        or media_type in _TOLERATED_MEDIA_TYPES
        or not media_type  # e.g. "; charset=utf-8" alone: as good as missing
    ):
        return
    hint = " (an error or login page?)" if "html" in media_type else ""
    raise FeedFetchError(f"{url} answered with content type {media_type}, not JSON{hint}", url=url)


async def _read_capped(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        # Refused before reading a byte of it.
        raise FeedFetchError(_too_large(url, max_bytes, f"declares {int(declared)} bytes"), url=url)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FeedFetchError(_too_large(url, max_bytes, "sent more"), url=url)
    return bytes(body)


def _too_large(url: str, max_bytes: int, detail: str) -> str:
    return f"feed {url} is larger than the {max_bytes}-byte limit ({detail}); refused"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date.

    None when absent or unreadable; a date in the past is 0. ``now`` (POSIX seconds) is for
    tests.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None  # RFC 9110 dates are GMT; a date without a zone is not one
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds
