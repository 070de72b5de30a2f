"""Root query: each resolver validates through the service, calls it once, maps the result."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.search.ride_end import RideEndQuestion
from graphql_schema.accounts import AccountQuery
from graphql_schema.api_keys import ApiKeyQuery
from graphql_schema.booking import BookingQuery
from graphql_schema.context import Context
from graphql_schema.enums import FormFactor
from graphql_schema.inputs import (
    NearInput,
    StationFilterInput,
    VehicleFilterInput,
    WithinInput,
    area_search,
    vehicle_search,
)
from graphql_schema.organisations import OrganisationQuery
from graphql_schema.paging import VehicleConnection
from graphql_schema.policies import PolicyQuery
from graphql_schema.provider_types import Provider
from graphql_schema.quotes import QuoteQuery
from graphql_schema.reports import ReportQuery
from graphql_schema.transit import JourneyQuery, TransitQuery
from graphql_schema.transit_admin import TransitAdminQuery
from graphql_schema.types import (
    GeofencingZone,
    RideEndCheck,
    Station,
    Vehicle,
    vehicles_from_hits,
)
from graphql_schema.webhooks import WebhookQuery

Info = strawberry.Info[Context, None]


PageSize = Annotated[
    int | None,
    strawberry.argument(
        description="Page size, 1 to MOBILITY_MAX_FIRST (200 by default); without it, "
        "MOBILITY_DEFAULT_FIRST (50)."
    ),
]


@strawberry.type
class Query(
    QuoteQuery,
    AccountQuery,
    BookingQuery,
    OrganisationQuery,
    WebhookQuery,
    ApiKeyQuery,
    PolicyQuery,
    ReportQuery,
    TransitQuery,
    JourneyQuery,
    TransitAdminQuery,
):
    @strawberry.field(description="Every operator this service aggregates.")
    async def providers(self, info: Info) -> list[Provider]:
        ctx = info.context
        orgs = await ctx.search_viewer_organisations()
        rows = await ctx.search.providers(orgs)
        return [Provider.from_model(p, ctx.settings) for p in rows]

    @strawberry.field(
        description="Vehicles near a point or inside a bounding box. Give exactly one of "
        "`near` / `within`. Nearest first: by geodesic distance from the `near` point or the "
        "box's centre (`distanceMeters`), ties by id. Filters and visibility apply before "
        "`first` (at most MOBILITY_MAX_FIRST, 200 by default). To go past `first`, page with "
        "`vehiclesConnection`."
    )
    async def vehicles(
        self,
        info: Info,
        near: NearInput | None = None,
        within: WithinInput | None = None,
        filter: VehicleFilterInput | None = None,
        first: int | None = None,
    ) -> list[Vehicle]:
        ctx = info.context
        search = await vehicle_search(ctx, near, within, filter, first)
        hits = await ctx.search.vehicles(
            area=search.area, flt=search.flt, first=search.first, viewer_orgs=search.viewer_orgs
        )
        return await vehicles_from_hits(ctx.reference, hits)

    @strawberry.field(
        description="The vehicles of `vehicles`, in the same order, in pages (Relay): at most "
        "`first` per page (at most MOBILITY_MAX_FIRST); pass a page's `pageInfo.endCursor` as "
        "`after`, with the same `near`/`within` and `filter`, for the next one. Paging through "
        "returns every vehicle of the area once, none skipped, while the data stands still. "
        "A cursor of another query, or not one of ours, is refused with INVALID_CURSOR."
    )
    async def vehicles_connection(
        self,
        info: Info,
        near: NearInput | None = None,
        within: WithinInput | None = None,
        filter: VehicleFilterInput | None = None,
        first: PageSize = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="The `endCursor` of the previous page of this same query; omit "
                "for the first page."
            ),
        ] = None,
    ) -> VehicleConnection:
        ctx = info.context
        search = await vehicle_search(ctx, near, within, filter, first)
        page = await ctx.search.vehicle_page(
            area=search.area,
            flt=search.flt,
            first=search.first,
            after=after,
            viewer_orgs=search.viewer_orgs,
        )
        return await VehicleConnection.from_page(ctx.reference, page)

    @strawberry.field(description="One vehicle by its provider-scoped id.")
    async def vehicle(self, info: Info, id: strawberry.ID) -> Vehicle | None:
        await info.context.require_vehicles_read()
        orgs = await info.context.search_viewer_organisations()
        hit = await info.context.search.vehicle(str(id), viewer_orgs=orgs)
        if hit is None:
            return None
        [vehicle] = await vehicles_from_hits(info.context.reference, [hit])
        return vehicle

    @strawberry.field(
        description="Stations near a point or inside a box, nearest to the point or the box's "
        "centre first, ties by id; `first` applies after every filter."
    )
    async def stations(
        self,
        info: Info,
        near: NearInput | None = None,
        within: WithinInput | None = None,
        filter: StationFilterInput | None = None,
        first: int | None = None,
    ) -> list[Station]:
        ctx = info.context
        flt = filter or StationFilterInput()
        search = await area_search(ctx, near, within, flt.providers, first)
        rows = await ctx.search.stations(
            area=search.area,
            flt=flt.to_domain(search.providers),
            first=search.first,
            viewer_orgs=search.viewer_orgs,
        )
        ref = await ctx.reference.covering(
            providers={s.provider_id for s in rows},
            types={c["vehicle_type_id"] for s in rows for c in s.vehicle_types_available},
        )
        return [Station.from_row(s, ref) for s in rows]

    @strawberry.field(
        description="Geofencing zones touching an area, nearest to the `near` point or the "
        "`within` box's centre first (zones holding it: 0), ties by id; or, with `providers` "
        "and no area, each provider's zones in feed order. `first` applies after every filter."
    )
    async def geofencing_zones(
        self,
        info: Info,
        near: NearInput | None = None,
        within: WithinInput | None = None,
        providers: list[strawberry.ID] | None = None,
        first: int | None = None,
    ) -> list[GeofencingZone]:
        ctx = info.context
        search = await area_search(ctx, near, within, providers, first, required=providers is None)
        rows = await ctx.search.zones(
            area=search.area,
            providers=search.providers,
            first=search.first,
            viewer_orgs=search.viewer_orgs,
        )
        ref = await ctx.reference.covering(providers={z.provider_id for z in rows})
        return [GeofencingZone.from_row(z, ref) for z in rows]

    @strawberry.field(
        description="May a ride end at this point? Give `vehicleId`, `vehicleTypeId`, or "
        "`providerId` with `formFactor`. Evaluated with GBFS precedence: the first zone (in feed "
        "order) with a rule for the vehicle type, then the operator's global rules."
    )
    async def ride_end_check(
        self,
        info: Info,
        lat: float,
        lon: float,
        vehicle_id: strawberry.ID | None = None,
        vehicle_type_id: strawberry.ID | None = None,
        provider_id: strawberry.ID | None = None,
        form_factor: FormFactor | None = None,
    ) -> RideEndCheck:
        orgs = await info.context.search_viewer_organisations()
        question = RideEndQuestion(
            lat=lat,
            lon=lon,
            vehicle_id=str(vehicle_id) if vehicle_id is not None else None,
            vehicle_type_id=str(vehicle_type_id) if vehicle_type_id is not None else None,
            provider_id=str(provider_id) if provider_id is not None else None,
            form_factor=form_factor.value if form_factor is not None else None,
        )
        answer = await info.context.search.ride_end_check(question, orgs)
        zone = answer.zone
        ref = await info.context.reference.covering(providers=[zone.provider_id] if zone else [])
        return RideEndCheck(
            allowed=answer.allowed,
            reason=answer.reason,
            zone=GeofencingZone.from_row(zone, ref) if zone else None,
            vehicle_type_ids=[strawberry.ID(t) for t in answer.vehicle_type_ids],
        )
