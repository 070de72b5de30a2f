"""The GBFS availability adapter: configuration, discovery and polite concurrent fetching.

Parsing is :func:`adapters.gbfs.parse.parse_snapshot`; this module only decides *which* URLs to
read (a ``gbfs.json`` or v3 ``manifest.json`` discovery URL, or explicit per-feed URLs), reads
them through :func:`adapters.http.fetch_json` (ETag / Last-Modified, ``last_updated + ttl``
freshness) and fails the whole sync on any unreadable feed, so the caller keeps the last good data.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from adapters.base import AdapterConfigError, AdapterError, FetchContext, check_options
from adapters.dto import Finding, Snapshot
from adapters.gbfs.documents import (
    ALL_GBFS_FEEDS,
    USED_FEEDS,
    discovery_feeds,
    document_data,
    duplicate_keys,
    is_http_url,
    is_manifest,
    manifest_gbfs_url,
    normalize_version,
    version_tuple,
)
from adapters.gbfs.overrides import OVERRIDES_FEED, FeedOverrides, parse_overrides
from adapters.gbfs.parse import parse_snapshot
from adapters.http import FeedFetchError, FetchedFeed, fetch_json

__all__ = ["GbfsAdapter"]

_OPTIONS = frozenset({"discovery_url", "feeds", "system_id", "language", "headers", "overrides"})
_VEHICLE_FEEDS = ("vehicle_status", "free_bike_status")
_CONTENT_FEEDS = (*_VEHICLE_FEEDS, "station_information", "station_status", "geofencing_zones")
# Documents checked for keys an object repeats: small ones that people edit by hand, where a
# repeated key hides a value that matters (an app's store link, a price). Large live files are
# left alone: reparsing them with the standard library on every sync would cost more than the
# rare repeat is worth.
_DUPLICATE_KEY_CHECKED = frozenset(
    {"gbfs", "manifest", "system_information", "vehicle_types", "system_pricing_plans"}
)
_DUPLICATE_KEY_MAX_BYTES = 256 * 1024
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")


class GbfsAdapter:
    """Reads one GBFS system.

    Config (``from_config``), one of:

    * ``{"discovery_url": "https://…/gbfs.json"}``, or a v3 ``manifest.json`` URL plus
      ``"system_id"`` when the manifest lists several datasets (its highest supported version
      is used);
    * ``{"feeds": {"system_information": "https://…", "vehicle_status": "https://…", …}}``:
      explicit URLs by GBFS file name; at least one feed with something to aggregate
      (vehicles, stations or zones). What a partial set lacks (e.g. ``system_information``)
      is reported as a finding on every sync, as it is when discovery lists too little.

    Optional: ``"language"`` (BCP 47; overrides the deployment default for this provider),
    ``"headers"`` (extra HTTP headers such as an API key; never logged or shown in ``repr``) and
    ``"overrides"`` (types and plans the feed lacks, id maps, excluded files:
    :mod:`adapters.gbfs.overrides`).
    """

    name: ClassVar[str] = "gbfs"

    __slots__ = ("discovery_url", "feeds", "headers", "language", "overrides", "system_id")

    def __init__(
        self,
        *,
        discovery_url: str | None = None,
        feeds: Mapping[str, str] | None = None,
        system_id: str | None = None,
        language: str | None = None,
        headers: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        if (discovery_url is None) == (feeds is None):
            raise AdapterConfigError("gbfs: give exactly one of `discovery_url` or `feeds`")
        if discovery_url is not None and not is_http_url(discovery_url):
            raise AdapterConfigError(
                f"gbfs: discovery_url must be an http(s) URL: {discovery_url!r}"
            )
        if system_id is not None and discovery_url is None:
            raise AdapterConfigError("gbfs: `system_id` only applies with `discovery_url`")
        if language is not None and not _LANGUAGE.match(language):
            raise AdapterConfigError(f"gbfs: `language` is not a BCP 47 tag: {language!r}")
        parsed = parse_overrides(overrides, language=language or "en") if overrides else None
        excluded = parsed.exclude_feeds if parsed else frozenset()
        if discovery_url is not None and excluded >= set(_CONTENT_FEEDS):
            raise AdapterConfigError(
                "gbfs: `overrides.exclude_feeds` excludes everything there is to aggregate"
            )
        self.discovery_url = discovery_url
        self.feeds = _validated_feeds(feeds, excluded) if feeds is not None else None
        self.system_id = system_id
        self.language = language
        self.headers = dict(headers or {})
        # Kept as given: localized names in supplied records resolve in each sync's language.
        self.overrides = dict(overrides) if overrides else None

    def __repr__(self) -> str:
        source = self.discovery_url or f"{len(self.feeds or {})} feeds"
        return f"GbfsAdapter({source!r}, headers={sorted(self.headers)!r})"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GbfsAdapter:
        check_options("gbfs", config, _OPTIONS)
        for key in ("discovery_url", "system_id", "language"):
            if key in config and not isinstance(config[key], str):
                raise AdapterConfigError(f"gbfs: `{key}` must be a string")
        feeds = config.get("feeds")
        if feeds is not None and not _is_str_mapping(feeds):
            raise AdapterConfigError("gbfs: `feeds` must map GBFS file names to URL strings")
        overrides = config.get("overrides")
        if overrides is not None and not isinstance(overrides, Mapping):
            raise AdapterConfigError("gbfs: `overrides` must be an object")
        headers = config.get("headers")
        if headers is not None and not _is_str_mapping(headers):
            raise AdapterConfigError("gbfs: `headers` must map header names to strings")
        for header, value in (headers or {}).items():
            if "\r" in header + value or "\n" in header + value:
                raise AdapterConfigError(f"gbfs: header {header!r} contains a line break")
        return cls(
            discovery_url=config.get("discovery_url"),
            feeds=feeds,
            system_id=config.get("system_id"),
            language=config.get("language"),
            headers=headers,
            overrides=overrides,
        )

    async def fetch_snapshot(self, ctx: FetchContext) -> Snapshot:
        language = self.language or ctx.preferred_language
        overrides = parse_overrides(self.overrides, language=language) if self.overrides else None
        excluded = overrides.exclude_feeds if overrides else frozenset()
        documents: dict[str, object] = {}
        fetched: dict[str, FetchedFeed] = {}
        version_hint: str | None = None

        if self.discovery_url is not None:
            listed, version_hint = await self._discover(
                ctx, self.discovery_url, language, documents, fetched
            )
        else:
            listed = {name: url for name, url in (self.feeds or {}).items() if name in USED_FEEDS}
        urls = {name: url for name, url in listed.items() if name not in excluded}

        names = list(urls)
        results = await asyncio.gather(
            *(self._fetch(ctx, name, urls[name]) for name in names), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                raise result  # the first failing feed in feed order: deterministic reports
            fetched[name] = result
            documents[name] = result.document

        all_urls = {name: feed.url for name, feed in fetched.items()}
        try:
            # CPU-bound (shapely, thousands of records): keep the event loop responsive.
            snapshot = await asyncio.to_thread(
                _parse,
                documents,
                fetched,
                feed_urls=all_urls,
                preferred_language=language,
                version_hint=version_hint,
                overrides=overrides,
            )
        except AdapterError as exc:
            if exc.url is None and exc.feed in all_urls:
                raise AdapterError(str(exc), feed=exc.feed, url=all_urls[exc.feed]) from exc
            raise

        if self.system_id is not None and snapshot.system.system_id != self.system_id:
            # A discovery URL that leads to another system is a config error, not data to merge.
            raise AdapterError(
                f"system_information.system_id is {snapshot.system.system_id!r}, "
                f"config expects {self.system_id!r}",
                feed="system_information",
                url=all_urls.get("system_information"),
            )
        snapshot.feeds = [
            replace(meta, not_modified=fetched[meta.name].not_modified)
            if meta.name in fetched
            else meta
            for meta in snapshot.feeds
        ]
        unlisted = sorted(excluded - set(listed))
        if unlisted:
            # Findings about the overrides come first in the report (parse_snapshot's order).
            snapshot.findings.insert(
                0,
                Finding(
                    "warning",
                    "OVERRIDE_UNUSED",
                    OVERRIDES_FEED,
                    f"exclude_feeds: the provider's feeds do not include {', '.join(unlisted)}",
                ),
            )
        _mark_fresh(ctx, snapshot)
        return snapshot

    async def _discover(
        self,
        ctx: FetchContext,
        discovery_url: str,
        language: str,
        documents: dict[str, object],
        fetched: dict[str, FetchedFeed],
    ) -> tuple[dict[str, str], str | None]:
        """Feed URLs listed by the discovery file (through a manifest if that is what we got).

        Adds the discovery documents to ``documents`` / ``fetched``; returns the URLs to read
        and the version a manifest announced, if any.
        """
        version_hint: str | None = None
        discovery = await self._fetch(ctx, "gbfs", discovery_url)
        if is_manifest(discovery.document):
            documents["manifest"], fetched["manifest"] = discovery.document, discovery
            gbfs_url, version_hint = manifest_gbfs_url(
                discovery.document, system_id=self.system_id, base_url=discovery.url
            )
            discovery = await self._fetch(ctx, "gbfs", gbfs_url)
        documents["gbfs"], fetched["gbfs"] = discovery.document, discovery

        listed = discovery_feeds(
            discovery.document, preferred_language=language, base_url=discovery.url
        )
        urls = {name: url for name, url in listed.items() if name in USED_FEEDS}
        if all(name in urls for name in _VEHICLE_FEEDS):
            # Both listed (a v2→v3 migration): read the one of the discovery file's version.
            parsed = version_tuple(normalize_version(_version_of(discovery.document))[0])
            del urls["free_bike_status" if parsed and parsed[0] >= 3 else "vehicle_status"]
        for name, url in urls.items():
            if not is_http_url(url):
                raise AdapterError(f"gbfs.json lists a non-http URL for {name}", feed=name, url=url)
        return urls, version_hint

    async def _fetch(self, ctx: FetchContext, name: str, url: str) -> FetchedFeed:
        try:
            headers = await self._headers(ctx)
            try:
                result = await self._get(ctx, url, headers)
            except FeedFetchError as exc:
                if ctx.auth is None or exc.status != 401:
                    raise
                # An OAuth2 token may have been revoked before it expired: one fresh token.
                ctx.auth.invalidate(headers)
                result = await self._get(ctx, url, await self._headers(ctx))
        except FeedFetchError as exc:
            raise AdapterError(
                str(exc), feed=name, url=url, retry_after_seconds=exc.retry_after_seconds
            ) from exc
        document_data(name, result.document, url)  # raises AdapterError when unusable
        return result

    async def _headers(self, ctx: FetchContext) -> dict[str, str]:
        headers = dict(self.headers)
        if ctx.auth is not None:
            headers.update(await ctx.auth.headers(ctx.http))
        return headers

    async def _get(self, ctx: FetchContext, url: str, headers: dict[str, str]) -> FetchedFeed:
        return await fetch_json(
            ctx.http, url, ctx.cache, headers=headers or None, max_bytes=ctx.max_feed_bytes
        )


def _mark_fresh(ctx: FetchContext, snapshot: Snapshot) -> None:
    """Spare refetching a file until its ``last_updated + ttl``, capped at ``ttl`` from now."""
    now = time.time()
    for meta in snapshot.feeds:
        if not meta.ttl or meta.last_updated is None or not meta.url:
            continue
        # The cap guards against a publisher clock ahead of ours.
        remaining = min(meta.last_updated.timestamp() + meta.ttl - now, float(meta.ttl))
        if remaining > 0:
            ctx.cache.mark_fresh_for(meta.url, remaining)


def _parse(
    documents: dict[str, object],
    fetched: Mapping[str, FetchedFeed],
    *,
    feed_urls: Mapping[str, str],
    preferred_language: str,
    version_hint: str | None,
    overrides: FeedOverrides | None,
) -> Snapshot:
    repeated = {
        name: paths
        for name, feed in fetched.items()
        if name in _DUPLICATE_KEY_CHECKED and len(feed.body) <= _DUPLICATE_KEY_MAX_BYTES
        if (paths := duplicate_keys(feed.body))
    }
    return parse_snapshot(
        documents,
        feed_urls=feed_urls,
        preferred_language=preferred_language,
        version_hint=version_hint,
        overrides=overrides,
        duplicate_keys=repeated,
    )


def _validated_feeds(
    feeds: Mapping[str, str], excluded: frozenset[str] = frozenset()
) -> dict[str, str]:
    unknown = sorted(name for name in feeds if name not in ALL_GBFS_FEEDS)
    if unknown:
        raise AdapterConfigError(
            f"gbfs: unknown feed name(s) {', '.join(unknown)}; "
            f"expected GBFS file names such as {', '.join(USED_FEEDS)}"
        )
    for name, url in feeds.items():
        if not is_http_url(url):
            raise AdapterConfigError(f"gbfs: feed {name!r} must be an http(s) URL: {url!r}")
    # Partial feed sets are accepted (real operators publish them, e.g. zones only, or status
    # only); what they lack is reported in every sync's validation report. A set with nothing
    # to show on a map is a configuration mistake.
    if not any(name in feeds for name in _CONTENT_FEEDS):
        raise AdapterConfigError(
            "gbfs: `feeds` has nothing to aggregate; give at least one of "
            + ", ".join(_CONTENT_FEEDS)
        )
    if not any(name in feeds and name not in excluded for name in _CONTENT_FEEDS):
        raise AdapterConfigError(
            "gbfs: `overrides.exclude_feeds` excludes everything there is to aggregate"
        )
    return dict(feeds)


def _is_str_mapping(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _version_of(document: object) -> object:
    return document.get("version") if isinstance(document, Mapping) else None
