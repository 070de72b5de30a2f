"""Public transport: `stops`, `stop`, a stop's `departures` (app/transit/service.py) and
`journeys` (app/transit/journeys.py)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import strawberry

from app.platform.errors import InvalidInput
from app.reference import ReferenceData
from app.search.validation import validate_area, validate_first
from app.transit import journey_options, journeys
from app.transit.departures import Departure as DepartureData
from app.transit.realtime import Alert, translated
from app.transit.service import StopHit, UnknownStop
from app.transit.timetable import RouteMode, TransitRoute
from graphql_schema.context import Context
from graphql_schema.inputs import NearInput, WithinInput
from graphql_schema.quotes import LatLonInput, Offer
from graphql_schema.types import Money, Vehicle

Info = strawberry.Info[Context, None]

MAX_DEPARTURES = 100
MAX_DEPARTURE_BOARDS = 20


def _in_utc(instant: datetime | None) -> datetime | None:
    """A time the caller gave without an offset is read as UTC."""
    if instant is None or instant.tzinfo is not None:
        return instant
    return instant.replace(tzinfo=UTC)


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
    description="A live service alert (GTFS-Realtime ServiceAlerts) in force. Texts in the "
    "requested language where the feed has it, else its default."
)
class ServiceAlert:
    id: strawberry.ID = strawberry.field(description="The feed entity's id.")
    header: str | None
    description: str | None
    url: str | None
    cause: str = strawberry.field(description="GTFS-Realtime Cause, e.g. CONSTRUCTION.")
    effect: str = strawberry.field(description="GTFS-Realtime Effect, e.g. DETOUR.")
    severity: str

    @classmethod
    def from_domain(cls, alert: Alert, language: str | None) -> ServiceAlert:
        return cls(
            id=strawberry.ID(alert.entity_id),
            header=translated(alert.header, language),
            description=translated(alert.description, language),
            url=translated(alert.url, language),
            cause=alert.cause,
            effect=alert.effect,
            severity=alert.severity,
        )


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
    data: strawberry.Private[DepartureData]

    @strawberry.field(
        description="Live alerts in force when it departs that inform its route, its trip or "
        "its stop."
    )
    async def alerts(self, info: Info, language: str | None = None) -> list[ServiceAlert]:
        found = await info.context.transit.departure_alerts(self.data)
        return [ServiceAlert.from_domain(a, language) for a in found]

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
            data=d,
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
        description="Live alerts in force at `at` (default now) that inform this stop, its "
        "station or its platforms."
    )
    async def alerts(
        self, info: Info, at: datetime | None = None, language: str | None = None
    ) -> list[ServiceAlert]:
        when = _in_utc(at) or datetime.now(UTC)
        found = await info.context.transit.stop_alerts(self.hit, when)
        return [ServiceAlert.from_domain(a, language) for a in found]

    @strawberry.field(
        description="Departures from this stop (a station: from its platforms) at or after "
        "`from` (default: now), soonest first by expected time where live data has one, at "
        f"most `first` (default 10, at most {MAX_DEPARTURES}), within three days."
    )
    async def departures(
        self,
        info: Info,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        first: int = 10,
    ) -> list[Departure]:
        # Departure boards per operation are few on a map or a stop page; an operation that
        # asks for hundreds (aliased `stops` with nested `departures`) is refused, as the
        # cost budget refuses aliased root fields (graphql_schema/cost.py).
        boards = info.context.departure_boards
        key = id(info.operation)
        boards[key] = boards.get(key, 0) + 1
        if boards[key] > MAX_DEPARTURE_BOARDS:
            raise InvalidInput(
                f"at most {MAX_DEPARTURE_BOARDS} stops' departures in one operation; ask for "
                "fewer stops, or their departures in several requests",
                code="TOO_MANY_DEPARTURE_BOARDS",
            )
        if not 0 < first <= MAX_DEPARTURES:
            raise InvalidInput(
                f"first must be between 1 and {MAX_DEPARTURES}; got {first}",
                code="INVALID_FIRST",
            )
        after = _in_utc(from_) or datetime.now(UTC)
        found = await info.context.transit.departures(self.hit, after=after, first=first)
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


# --------------------------------------------------------------------------- journeys


@strawberry.enum(description="What a journey's leg is.")
class JourneyLegMode(enum.Enum):
    WALK = "WALK"
    VEHICLE = "VEHICLE"  # a shared vehicle, bookable with its offer
    TRANSIT = "TRANSIT"


@strawberry.type(description="Where a leg starts or ends: a point, and the stop if it is one.")
class JourneyPlace:
    lat: float
    lon: float
    name: str | None
    stop_id: strawberry.ID | None = strawberry.field(description="FEED:stop_id of a stop.")

    @classmethod
    def from_domain(cls, p: journey_options.Place) -> JourneyPlace:
        return cls(
            lat=p.lat,
            lon=p.lon,
            name=p.name,
            stop_id=strawberry.ID(p.stop.id) if p.stop is not None else None,
        )


@strawberry.type(
    description="One part of a journey. WALK: on foot. VEHICLE: a shared vehicle, with its "
    "`offer` to book it through reserveVehicle. TRANSIT: a public transport trip, with its "
    "route and trip. Times are ISO 8601 in UTC."
)
class JourneyLeg:
    mode: JourneyLegMode
    from_: JourneyPlace = strawberry.field(name="from")
    to: JourneyPlace
    departure_time: datetime
    arrival_time: datetime
    duration_seconds: int
    distance_meters: float | None = strawberry.field(
        description="Walking: geodesic; a vehicle: the ride estimate; null for transit."
    )
    vehicle: Vehicle | None
    offer: Offer | None = strawberry.field(
        description="The priced ride to book (a last-mile vehicle: valid while the offer "
        "lasts; ask `quote` again on arrival)."
    )
    route: TransitRouteType | None
    trip: TransitTripType | None
    headsign: str | None
    realtime: bool = strawberry.field(description="Transit times from live data.")


@strawberry.type(
    description="A way from `from` to `to`. `price` is the shared vehicles' (transit fares "
    "are not included: `transitFaresIncluded` is false whenever a transit leg is used)."
)
class Journey:
    departure_time: datetime
    arrival_time: datetime
    duration_seconds: int
    boardings: int = strawberry.field(description="Vehicles and transit trips boarded.")
    transfers: int = strawberry.field(description="boardings - 1 (0 at least).")
    price: Money | None = strawberry.field(
        description="The shared vehicles' estimated total; null when no shared vehicle is "
        "used, when one has no pricing plan, or when they are priced in several currencies."
    )
    transit_fares_included: bool
    modes: list[str] = strawberry.field(
        description="Form factors of the shared vehicles and 'transit'; ['walk'] on foot."
    )
    legs: list[JourneyLeg]


@strawberry.type(description="The journeys found, earliest arrival first.")
class JourneyPlan:
    journeys: list[Journey]
    vehicles_considered: bool = strawberry.field(
        description="False when the departure is not soon: shared vehicles are offered only "
        "for journeys departing within MOBILITY_TRANSIT_VEHICLES_WITHIN_MINUTES of now."
    )


def _leg(part: journey_options.Part, ref: ReferenceData) -> JourneyLeg:
    leg = JourneyLeg(
        mode=JourneyLegMode.WALK,
        from_=JourneyPlace.from_domain(part.start),
        to=JourneyPlace.from_domain(part.end),
        departure_time=part.departure.astimezone(UTC),
        arrival_time=part.arrival.astimezone(UTC),
        duration_seconds=round((part.arrival - part.departure).total_seconds()),
        distance_meters=None,
        vehicle=None,
        offer=None,
        route=None,
        trip=None,
        headsign=None,
        realtime=False,
    )
    if isinstance(part, journey_options.WalkPart):
        leg.distance_meters = part.meters
    elif isinstance(part, journey_options.VehiclePart):
        vehicle = Vehicle.from_hit(part.hit, ref)
        leg.mode = JourneyLegMode.VEHICLE
        leg.distance_meters = part.ride.meters
        leg.vehicle = vehicle
        leg.offer = Offer.from_domain(part.offer, vehicle)
    else:
        leg.mode = JourneyLegMode.TRANSIT
        leg.route = TransitRouteType.from_domain(part.route)
        leg.trip = TransitTripType(
            id=strawberry.ID(part.trip.id), service_date=part.service_date.isoformat()
        )
        leg.headsign = part.headsign
        leg.realtime = part.realtime
    return leg


def _journey(j: journey_options.PlannedJourney, ref: ReferenceData) -> Journey:
    price = None
    if not j.unpriced_vehicles and len(j.prices) <= 1:
        p = j.prices[0] if j.prices else None
        price = Money.of(p.total_minor, p.currency) if p is not None else None
    uses_transit = any(isinstance(p, journey_options.TransitPart) for p in j.parts)
    return Journey(
        departure_time=j.departure.astimezone(UTC),
        arrival_time=j.arrival.astimezone(UTC),
        duration_seconds=round((j.arrival - j.departure).total_seconds()),
        boardings=j.boardings,
        transfers=j.transfers,
        price=price,
        transit_fares_included=not uses_transit,
        modes=sorted(j.modes),
        legs=[_leg(p, ref) for p in j.parts],
    )


@strawberry.type
class JourneyQuery:
    @strawberry.field(
        description="Journeys from `from` to `to` departing at `departAt` (default now), or "
        "arriving by `arriveBy` and leaving as late as they can (then latest departure first): "
        "walking the whole way, a shared vehicle the whole way, and public transport with "
        "the first and last mile on foot or on a shared vehicle. The Pareto set over arrival, "
        "price and boardings, diverse across modes and operators, earliest arrival first, at "
        "most `first`. docs/transit.md, 'Journeys'."
    )
    async def journeys(
        self,
        info: Info,
        from_: Annotated[LatLonInput, strawberry.argument(name="from")],
        to: LatLonInput,
        depart_at: datetime | None = None,
        arrive_by: datetime | None = None,
        first: int = 5,
    ) -> JourneyPlan:
        ctx = info.context
        await ctx.require_vehicles_read()
        service = journeys.JourneyService(ctx.settings, ctx.transit, ctx.search, ctx.reference)
        plan = await service.plan(
            origin=from_.to_domain(),
            destination=to.to_domain(),
            depart_at=_in_utc(depart_at),
            arrive_by=_in_utc(arrive_by),
            first=first,
            viewer_orgs=await ctx.search_viewer_organisations(),
        )
        return JourneyPlan(
            journeys=[_journey(j, plan.reference) for j in plan.journeys],
            vehicles_considered=plan.vehicles_considered,
        )
