"""Staff's door to public transport feeds: `transitFeeds`, `addTransitFeed`,
`syncTransitFeed` (ADMIN), over app/transit/feeds.py, the service
`mobility transit` uses too. From the API a feed's source is an http(s) URL, never a path on
the server."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from app.platform.errors import NotFound
from app.transit.feeds import FeedSummary
from app.transit.loader import LoadResult
from graphql_schema.context import Context

Info = strawberry.Info[Context, None]
log = logging.getLogger(__name__)


@strawberry.type(description="A feed's GTFS-Realtime URLs (null: not polled).")
class TransitRealtimeUrls:
    trip_updates: str | None
    vehicle_positions: str | None
    service_alerts: str | None


@strawberry.type(description="A public transport feed (GTFS) and the version loaded from it.")
class TransitFeed:
    id: strawberry.ID = strawberry.field(description="The slug, the prefix of its stop ids.")
    name: str
    source: str
    enabled: bool
    active_version: int | None = strawberry.field(description="Null until a load succeeds.")
    timezone: str | None
    realtime: TransitRealtimeUrls
    last_loaded_at: datetime | None
    last_error: str | None = strawberry.field(
        description="Why the last load failed (the previous version stayed active)."
    )
    counts: JSON = strawberry.field(description="Rows of the active version, by file.")
    findings: JSON = strawberry.field(
        description="The active version's validation findings, rows by severity."
    )

    @classmethod
    def from_domain(cls, f: FeedSummary) -> TransitFeed:
        return cls(
            id=strawberry.ID(f.slug),
            name=f.name,
            source=f.source,
            enabled=f.enabled,
            active_version=f.active_version,
            timezone=f.timezone,
            realtime=TransitRealtimeUrls(
                trip_updates=f.realtime.get("trip_updates"),
                vehicle_positions=f.realtime.get("vehicle_positions"),
                service_alerts=f.realtime.get("service_alerts"),
            ),
            last_loaded_at=f.last_loaded_at,
            last_error=f.last_error,
            counts=cast(JSON, f.counts),
            findings=cast(JSON, f.findings),
        )


@strawberry.type(description="What a load did.")
class TransitFeedLoad:
    feed: TransitFeed
    unchanged: bool = strawberry.field(
        description="The source is the active version's: nothing was loaded."
    )
    seconds: float
    footpaths: int
    findings: JSON = strawberry.field(
        description="This load's findings: [{severity, code, file, count, message}]."
    )


@strawberry.input(description="A GTFS feed to register (ADMIN).")
class TransitFeedInput:
    id: strawberry.ID = strawberry.field(description="The slug: lowercase letters, digits, '-'.")
    gtfs_url: str = strawberry.field(description="An http(s) URL of the GTFS zip.")
    name: str | None = None
    trip_updates_url: str | None = None
    vehicle_positions_url: str | None = None
    service_alerts_url: str | None = None


async def _feed(info: Info, slug: str) -> TransitFeed:
    found = await info.context.transit_feeds.get(slug)
    if found is None:
        raise NotFound(f"no transit feed {slug!r}", code="UNKNOWN_TRANSIT_FEED")
    return TransitFeed.from_domain(found)


async def _loaded(info: Info, result: LoadResult) -> TransitFeedLoad:
    return TransitFeedLoad(
        feed=await _feed(info, result.feed),
        unchanged=result.unchanged,
        seconds=round(result.seconds, 3),
        footpaths=result.footpaths,
        findings=cast(JSON, [f.as_json() for f in result.findings]),
    )


@strawberry.type
class TransitAdminQuery:
    @strawberry.field(description="Every registered transit feed (ADMIN).")
    async def transit_feeds(self, info: Info) -> list[TransitFeed]:
        await info.context.require_admin()
        return [TransitFeed.from_domain(f) for f in await info.context.transit_feeds.list()]


@strawberry.type
class TransitAdminMutation:
    @strawberry.mutation(
        description="Register a GTFS feed (or change its URL, name and realtime URLs) and "
        "load it now (ADMIN). A feed that fails to load is registered, with `lastError`; the "
        "findings say what was skipped. Loading a large city's feed takes seconds."
    )
    async def add_transit_feed(self, info: Info, input: TransitFeedInput) -> TransitFeedLoad:
        viewer = await info.context.require_admin()
        feeds = info.context.transit_feeds
        await feeds.add(
            str(input.id),
            input.gtfs_url,
            name=input.name,
            realtime={
                "trip_updates": input.trip_updates_url,
                "vehicle_positions": input.vehicle_positions_url,
                "service_alerts": input.service_alerts_url,
            },
        )
        log.info("transit feed %s registered by %s", input.id, viewer.name)
        return await _loaded(info, await feeds.sync(str(input.id)))

    @strawberry.mutation(
        description="Load the feed from its URL now (ADMIN); unchanged since the active "
        "version, nothing is loaded unless `force`."
    )
    async def sync_transit_feed(
        self, info: Info, id: strawberry.ID, force: bool = False
    ) -> TransitFeedLoad:
        viewer = await info.context.require_admin()
        result = await info.context.transit_feeds.sync(str(id), force=force)
        log.info("transit feed %s synced by %s", id, viewer.name)
        return await _loaded(info, result)
