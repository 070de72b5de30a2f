"""Quotes and trip options: `quote` and `tripOptions`, over app/booking/quotes.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from adapters.gbfs.pricing import PriceBreakdown as PriceBreakdownData
from app.booking import offers, quotes
from app.booking.estimates import LatLon, TripRanking
from app.booking.quotes import QuoteService, TripMode
from app.reference import ReferenceData
from graphql_schema.context import Context
from graphql_schema.enums import FormFactor
from graphql_schema.types import Money, Vehicle

Info = strawberry.Info[Context, None]

strawberry.enum(
    TripRanking,
    name="TripOptionRanking",
    description="TOTAL_PRICE: cheapest first (walking is free; unpriced last; ties by "
    "arrival); ARRIVAL_TIME: earliest arrival first (ties by price). Prices in another "
    "currency than most options' rank after them: amounts are not compared across currencies.",
)


strawberry.enum(
    TripMode,
    name="TripOptionMode",
    description="WALK: the whole way on foot (no vehicle, no offer, free); VEHICLE: walk to a "
    "shared vehicle and ride it.",
)


@strawberry.input(description="A point in WGS84 degrees.")
class LatLonInput:
    lat: float
    lon: float

    def to_domain(self) -> LatLon:
        return LatLon(self.lat, self.lon)


@strawberry.type(
    name="PriceBreakdown",
    description="An estimate's parts under the operator's GBFS pricing plan; total = unlock "
    "fee + time + distance (never below zero).",
)
class PriceBreakdownType:
    unlock_fee: Money = strawberry.field(description="The plan's price, charged once.")
    time_price: Money = strawberry.field(description="Every per-minute segment.")
    distance_price: Money = strawberry.field(description="Every per-km segment.")
    total: Money

    @classmethod
    def from_domain(cls, p: PriceBreakdownData) -> PriceBreakdownType:
        return cls(
            unlock_fee=Money.of(p.base_minor, p.currency),
            time_price=Money.of(p.time_minor, p.currency),
            distance_price=Money.of(p.distance_minor, p.currency),
            total=Money.of(p.total_minor, p.currency),
        )


@strawberry.type(
    description="A priced ride on one vehicle. Pass `id` when reserving to book at this "
    "estimate; it is valid until `validUntil`."
)
class Offer:
    id: strawberry.ID
    vehicle: Vehicle
    price: Money | None = strawberry.field(
        description="Estimated total; null when the operator publishes no pricing plan."
    )
    price_breakdown: PriceBreakdownType | None
    ride_minutes: int = strawberry.field(
        description="Estimated ride time, rounded up to whole minutes (what is priced)."
    )
    ride_distance_meters: int = strawberry.field(
        description="Estimated ride distance (straight line times a detour factor), rounded "
        "up to whole metres (what is priced)."
    )
    valid_until: datetime

    @classmethod
    def from_domain(cls, offer: offers.Offer, vehicle: Vehicle) -> Offer:
        price = offer.price
        return cls(
            id=strawberry.ID(offer.id),
            vehicle=vehicle,
            price=Money.of(price.total_minor, price.currency) if price is not None else None,
            price_breakdown=PriceBreakdownType.from_domain(price) if price is not None else None,
            ride_minutes=offer.ride_minutes,
            ride_distance_meters=offer.ride_meters,
            valid_until=offer.valid_until,
        )


@strawberry.type(
    description="One way to make the trip: walk the whole way (mode WALK), or walk to this "
    "vehicle and ride it (mode VEHICLE)."
)
class TripOption:
    mode: TripMode
    offer: Offer | None = strawberry.field(description="Null when walking.")
    vehicle: Vehicle | None = strawberry.field(description="Null when walking.")
    walk_distance_meters: float = strawberry.field(
        description="Geodesic distance from the start point to the vehicle (walking: to the "
        "destination)."
    )
    walk_minutes: int = strawberry.field(description="Walking time, rounded up.")
    ride_minutes: int = strawberry.field(
        description="Ride time, rounded up (what is priced); 0 when walking."
    )
    ride_distance_meters: int = strawberry.field(description="0 when walking.")
    arrival_time: datetime = strawberry.field(
        description="Now plus the unrounded walking and riding times."
    )
    price: Money | None = strawberry.field(
        description="Null when the vehicle is unpriced. Walking: zero, in the currency most "
        "options are priced in (null when none is)."
    )

    @classmethod
    def from_domain(cls, option: quotes.TripOption, ref: ReferenceData) -> TripOption:
        price = option.price
        money = Money.of(price.total_minor, price.currency) if price is not None else None
        if option.offer is None or option.hit is None:  # walking the whole way
            return cls(
                mode=TripMode.WALK,
                offer=None,
                vehicle=None,
                walk_distance_meters=option.walk.meters,
                walk_minutes=option.walk.whole_minutes,
                ride_minutes=0,
                ride_distance_meters=0,
                arrival_time=option.arrival_time,
                price=money,
            )
        vehicle = Vehicle.from_hit(option.hit, ref)
        return cls(
            mode=TripMode.VEHICLE,
            offer=Offer.from_domain(option.offer, vehicle),
            vehicle=vehicle,
            walk_distance_meters=option.walk.meters,
            walk_minutes=option.walk.whole_minutes,
            ride_minutes=option.offer.ride_minutes,
            ride_distance_meters=option.offer.ride_meters,
            arrival_time=option.arrival_time,
            price=money,
        )


def _service(info: Info) -> QuoteService:
    ctx = info.context
    return QuoteService(ctx.settings, ctx.search, ctx.reference)


@strawberry.type
class QuoteQuery:
    @strawberry.field(
        description="Ways to go from `from` to `to`: walking the whole way (mode WALK), and "
        "available vehicles near `from`, each with walk, ride and price estimates and an offer "
        "to book it. Options that walking or another option beats (no earlier, no cheaper, no "
        "fewer transfers) are left out; the rest are chosen so every mode and operator appears "
        "before a second option of one operator's form factor, and ranked by `rankBy`. "
        "Estimates and the rules: docs/quotes.md."
    )
    async def trip_options(
        self,
        info: Info,
        from_: Annotated[LatLonInput, strawberry.argument(name="from")],
        to: LatLonInput,
        form_factors: list[FormFactor] | None = None,
        first: int = 10,
        rank_by: TripRanking = TripRanking.TOTAL_PRICE,
    ) -> list[TripOption]:
        await info.context.require_vehicles_read()
        found = await _service(info).trip_options(
            origin=from_.to_domain(),
            destination=to.to_domain(),
            form_factors=frozenset(f.value for f in form_factors)
            if form_factors is not None
            else None,
            first=first,
            ranking=rank_by,
            viewer_orgs=await info.context.search_viewer_organisations(),
        )
        return [TripOption.from_domain(o, found.reference) for o in found.options]

    @strawberry.field(
        description="An offer for one vehicle: give exactly one of `to` (where the ride ends) "
        "or `minutes` (how long it lasts; the distance is then estimated from the form "
        "factor's average speed)."
    )
    async def quote(
        self,
        info: Info,
        vehicle_id: strawberry.ID,
        to: LatLonInput | None = None,
        minutes: int | None = None,
    ) -> Offer:
        await info.context.require_vehicles_read()
        found = await _service(info).quote(
            vehicle_id=str(vehicle_id),
            to=to.to_domain() if to is not None else None,
            minutes=minutes,
            viewer_orgs=await info.context.search_viewer_organisations(),
        )
        return Offer.from_domain(found.offer, Vehicle.from_hit(found.hit, found.reference))
