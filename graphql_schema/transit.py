"""Public transport: `stops`, `stop`, a stop's `departures`, over app/transit/service.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import strawberry

from app.platform.errors import InvalidInput
from app.search.validation import validate_area, validate_first
from app.transit.departures import Departure as DepartureData
from app.transit.service import StopHit, UnknownStop
from app.transit.timetable import RouteMode, TransitRoute
from graphql_schema.context import Context
from graphql_schema.inputs import NearInput, WithinInput

Info = strawberry.Info[Context, None]

MAX_DEPARTURES = 100

strawberry.enum(RouteMode, name="TransitMode", description="GTFS route_type, by name.")


@strawberry.type(name="TransitRoute", description="A public transport route (GTFS routes.txt).")
class TransitRouteType:
    id: strawberry.ID = strawberry.field(description="FEED:route_id")
    short_name: str | None
    long_name: str | None
    color: str | None = strawberry.field(description="Six hex digits, no '#' (GTFS).")
    text_color: str | None
    mode: RouteMode

    @classmethod
    def from_domain(cls, route: TransitRoute) -> TransitRouteType:
        return cls(
            id=strawberry.ID(route.id),
            short_name=route.short_name,
            long_name=route.long_name,
            color=route.color,
            text_color=route.text_color,
            mode=route.mode,
        )


@strawberry.type(name="TransitTrip", description="One run of a vehicle along a route.")
class TransitTripType:
    id: strawberry.ID = strawberry.field(description="FEED:trip_id")
    service_date: str = strawberry.field(description="The GTFS service day, YYYY-MM-DD.")


@strawberry.type(
    description="A departure from a stop. Times are ISO 8601 with the agency's UTC offset."
)
class Departure:
    scheduled_time: datetime
    expected_time: datetime | None = strawberry.field(
        description="With live data (GTFS-Realtime) for this trip; null without."
    )
    delay_seconds: int | None = strawberry.field(
        description="expectedTime - scheduledTime; null without live data."
    )
    cancelled: bool = strawberry.field(
        description="The trip is cancelled, or skips this stop (live data); listed at its "
        "scheduled time."
    )
    headsign: str | None
    platform: str | None = strawberry.field(description="GTFS platform_code of the stop.")
    stop_id: strawberry.ID = strawberry.field(
        description="The platform it leaves from (a station answers for its platforms)."
    )
    route: TransitRouteType
    trip: TransitTripType

    @classmethod
    def from_domain(cls, d: DepartureData, zone: ZoneInfo) -> Departure:
        return cls(
            scheduled_time=d.scheduled_time.astimezone(zone),
            expected_time=d.expected_time.astimezone(zone) if d.expected_time else None,
            delay_seconds=d.delay_seconds,
            cancelled=d.cancelled,
            headsign=d.headsign,
            platform=d.stop.platform_code,
            stop_id=strawberry.ID(d.stop.id),
            route=TransitRouteType.from_domain(d.route),
            trip=TransitTripType(
                id=strawberry.ID(d.trip.id), service_date=d.service_date.isoformat()
            ),
        )


@strawberry.type(description="A public transport stop, station or platform (GTFS stops.txt).")
class Stop:
    id: strawberry.ID = strawberry.field(description="FEED:stop_id, scoped by the feed.")
    name: str
    lat: float
    lon: float
    platform: str | None = strawberry.field(description="GTFS platform_code.")
    feed: str = strawberry.field(description="The timetable (feed slug) the stop belongs to.")
    distance_meters: float | None = strawberry.field(
        description="From the point of `stops(near:)`; null otherwise."
    )
    hit: strawberry.Private[StopHit]

    @classmethod
    def from_hit(cls, hit: StopHit) -> Stop:
        s = hit.stop
        return cls(
            id=strawberry.ID(s.id),
            name=s.name,
            lat=s.lat,
            lon=s.lon,
            platform=s.platform_code,
            feed=hit.timetable.feed,
            distance_meters=hit.distance_meters,
            hit=hit,
        )

    @strawberry.field(
        description="Departures from this stop (a station: from its platforms) at or after "
        "`from` (default: now), soonest first by expected time where live data has one, at "
        f"most `first` (default 10, at most {MAX_DEPARTURES}), within three days."
    )
    def departures(
        self,
        info: Info,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        first: int = 10,
    ) -> list[Departure]:
        if not 0 < first <= MAX_DEPARTURES:
            raise InvalidInput(
                f"first must be between 1 and {MAX_DEPARTURES}; got {first}",
                code="INVALID_FIRST",
            )
        after = from_ or datetime.now(UTC)
        if after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        found = info.context.transit.departures(self.hit, after=after, first=first)
        zone = self.hit.timetable.zone
        return [Departure.from_domain(d, zone) for d in found]


@strawberry.type
class TransitQuery:
    @strawberry.field(
        description="Public transport stops near a point (nearest first, with distance) or "
        "inside a box, from every loaded timetable."
    )
    async def stops(
        self,
        info: Info,
        near: NearInput | None = None,
        within: WithinInput | None = None,
        first: int | None = None,
    ) -> list[Stop]:
        ctx = info.context
        area = validate_area(
            ctx.settings, near.to_domain() if near else None, within.to_domain() if within else None
        )
        limit = validate_first(ctx.settings, first)
        hits = await ctx.transit.stops(near=area.near, bbox=area.bbox, first=limit)
        return [Stop.from_hit(h) for h in hits]

    @strawberry.field(description="One stop by its id (FEED:stop_id); null if there is none.")
    async def stop(self, info: Info, id: strawberry.ID) -> Stop | None:
        try:
            hit = await info.context.transit.stop(str(id))
        except UnknownStop:
            return None
        return Stop.from_hit(hit)
