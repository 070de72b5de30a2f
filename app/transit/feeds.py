"""Staff's door to transit feeds: add, sync, list and remove (the CLI's ``mobility transit``
and the admin mutations). Who may call it (staff) is the interface's check, made before any
of these; each change is a transaction of its own, a load its own transactions
(`app/transit/loader.py`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import TransitFeed
from app.platform.db import transaction
from app.platform.errors import InvalidInput
from app.platform.names import forbidden_character
from app.platform.settings import Settings
from app.transit.loader import (
    LoadResult,
    Progress,
    UnknownTransitFeed,
    delete_versions,
    load_feed,
)

__all__ = [
    "REALTIME_KINDS",
    "SLUG",
    "FeedSummary",
    "TransitFeeds",
    "UnknownTransitFeed",
]

# Like provider ids: no ':' (a stop's id is "SLUG:stop_id"), nothing a URL must escape.
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
REALTIME_KINDS = ("trip_updates", "vehicle_positions", "service_alerts")
MAX_SOURCE_LENGTH = 2048
MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class FeedSummary:
    slug: str
    name: str
    source: str
    enabled: bool
    active_version: int | None
    timezone: str | None
    realtime: dict[str, str]
    last_loaded_at: datetime | None
    last_error: str | None
    counts: dict[str, int]
    findings: dict[str, int]  # severity -> count of rows, for the active version


def _check_url(value: str, what: str) -> str:
    value = value.strip()
    if len(value) > MAX_SOURCE_LENGTH:
        raise InvalidInput(f"{what} is longer than {MAX_SOURCE_LENGTH} characters")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        raise InvalidInput(f"{what} is not a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidInput(f"{what} must be an http(s) URL with a host")
    if url.userinfo:
        raise InvalidInput(f"{what} must not carry credentials")
    return value


def check_source(source: str, *, allow_path: bool) -> str:
    """A GTFS source: an http(s) URL, or (from the command line only) a file path."""
    source = source.strip()
    if not source:
        raise InvalidInput("the GTFS source is empty", code="INVALID_TRANSIT_SOURCE")
    if source.startswith(("http://", "https://")):
        return _check_url(source, "the GTFS source")
    if not allow_path:
        raise InvalidInput("the GTFS source must be an http(s) URL", code="INVALID_TRANSIT_SOURCE")
    if len(source) > MAX_SOURCE_LENGTH or forbidden_character(source):
        raise InvalidInput("the GTFS path is not usable", code="INVALID_TRANSIT_SOURCE")
    return source


def check_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise InvalidInput(
            f"transit feed id {slug!r} must be 1-63 characters of lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit",
            code="INVALID_TRANSIT_FEED_ID",
        )
    return slug


def check_realtime(realtime: dict[str, str | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, url in realtime.items():
        if kind not in REALTIME_KINDS:
            raise InvalidInput(f"unknown GTFS-Realtime kind {kind!r}")
        if url:
            out[kind] = _check_url(url, f"the {kind} URL")
    return out


class TransitFeeds:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    async def add(
        self,
        slug: str,
        source: str,
        *,
        name: str | None = None,
        realtime: dict[str, str | None] | None = None,
        allow_path: bool = False,
    ) -> tuple[FeedSummary, bool]:
        """Register the feed, or update its source, name and realtime URLs: (it, created).
        Loading is `sync`'s."""
        check_slug(slug)
        source = check_source(source, allow_path=allow_path)
        if name is not None:
            name = name.strip()
            if not name or len(name) > MAX_NAME_LENGTH or forbidden_character(name):
                raise InvalidInput(f"the name must be 1-{MAX_NAME_LENGTH} printable characters")
        urls = check_realtime(realtime or {})
        async with transaction(self._sessions) as session:
            feed = await session.get(TransitFeed, slug, with_for_update=True)
            created = feed is None
            if feed is None:
                feed = TransitFeed(slug=slug, name=name or slug, source=source, realtime=urls)
                session.add(feed)
            else:
                feed.source = source
                if name is not None:
                    feed.name = name
                if realtime is not None:
                    feed.realtime = urls
                feed.updated_at = datetime.now().astimezone()
            await session.flush()
        summary = await self.get(slug)
        assert summary is not None
        return summary, created

    async def sync(
        self, slug: str, *, force: bool = False, progress: Progress | None = None
    ) -> LoadResult:
        """Load the feed from its source now (app/transit/loader.py)."""
        return await load_feed(self._sessions, self._settings, slug, force=force, progress=progress)

    async def get(self, slug: str) -> FeedSummary | None:
        found = await self.list(slug)
        return found[0] if found else None

    async def list(self, slug: str | None = None) -> list[FeedSummary]:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT f.slug, f.name, f.source, f.enabled, f.active_version, "
                        "f.timezone, f.realtime, f.last_loaded_at, f.last_error, v.counts, "
                        "v.findings FROM transit_feeds f "
                        "LEFT JOIN transit_feed_versions v ON v.id = f.active_version "
                        "WHERE CAST(:slug AS text) IS NULL OR f.slug = :slug ORDER BY f.slug"
                    ),
                    {"slug": slug},
                )
            ).all()
        return [
            FeedSummary(
                slug=r[0],
                name=r[1],
                source=r[2],
                enabled=r[3],
                active_version=r[4],
                timezone=r[5],
                realtime=dict(r[6] or {}),
                last_loaded_at=r[7],
                last_error=r[8],
                counts=dict(r[9] or {}),
                findings=_severities(r[10] or []),
            )
            for r in rows
        ]

    async def remove(self, slug: str) -> bool:
        """Remove the feed and every version of it; False when there was none."""
        async with transaction(self._sessions) as session:
            conn = await session.connection()
            await conn.execute(text("SELECT 1"))  # opens the driver's transaction
            raw = await conn.get_raw_connection()
            pg: asyncpg.Connection = raw.driver_connection
            # Locked first, as a load does: a load running now finishes before this removes.
            found = await pg.fetchval(
                "SELECT slug FROM transit_feeds WHERE slug = $1 FOR UPDATE", slug
            )
            if found is None:
                return False
            await pg.execute("UPDATE transit_feeds SET active_version = NULL WHERE slug = $1", slug)
            await delete_versions(pg, slug, keep=None)
            await pg.execute("DELETE FROM transit_feeds WHERE slug = $1", slug)
        return True

    async def exists(self, slug: str) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(select(TransitFeed.slug).where(TransitFeed.slug == slug))
        return found is not None


def _severities(findings: list[dict[str, Any]]) -> dict[str, int]:
    out = {"fatal": 0, "error": 0, "warning": 0, "info": 0}
    for f in findings:
        severity = str(f.get("severity", ""))
        if severity in out:
            out[severity] += int(f.get("count", 1))
    return out
