"""Polite feed fetching: per-file ``last_updated + ttl`` freshness and conditional GET.

The cache lives as long as the process that syncs; a new process simply fetches everything once.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

_URL = re.compile(r"https?://[^\s'\"<>]+")


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


class FeedFetchError(Exception):
    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


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


@dataclass(slots=True)
class FeedCache:
    entries: dict[str, CachedFeed] = field(default_factory=dict)

    def mark_fresh_for(self, url: str, seconds: float) -> None:
        entry = self.entries.get(url)
        if entry is not None:
            entry.fresh_until = time.monotonic() + max(0.0, seconds)


async def fetch_json(
    client: httpx.AsyncClient, url: str, cache: FeedCache, *, headers: dict[str, str] | None = None
) -> FetchedFeed:
    """GET ``url`` as JSON, honouring freshness and validators from an earlier fetch."""
    cached = cache.entries.get(url)
    if cached is not None and cached.fresh_until > time.monotonic():
        return FetchedFeed(url, orjson.loads(cached.body), not_modified=True)

    request_headers = {"Accept": "application/json", **(headers or {})}
    if cached is not None:
        if cached.etag:
            request_headers["If-None-Match"] = cached.etag
        if cached.last_modified:
            request_headers["If-Modified-Since"] = cached.last_modified
    try:
        response = await client.get(url, headers=request_headers)
    except httpx.TimeoutException as exc:
        raise FeedFetchError(f"timed out fetching {url}", url=url) from exc
    except httpx.HTTPError as exc:
        raise FeedFetchError(f"could not fetch {url}: {exc.__class__.__name__}", url=url) from exc

    if response.status_code == 304 and cached is not None:
        return FetchedFeed(url, orjson.loads(cached.body), not_modified=True)
    if response.status_code != 200:
        raise FeedFetchError(f"HTTP {response.status_code} from {url}", url=url)
    body = response.content
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedFetchError(f"unparseable JSON from {url}: {exc}", url=url) from exc
    cache.entries[url] = CachedFeed(
        body=body,
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        fresh_until=0.0,
    )
    return FetchedFeed(url, document, not_modified=False)
