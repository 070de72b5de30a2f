"""Strawberry output types. Hot fields are plain attributes; relations go through DataLoaders."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import orjson
import strawberry
from strawberry.scalars import JSON

from app.platform.settings import Settings
from app.platform.vocabulary import currency_exponent
from app.records import PricingPlanRecord, VehicleTypeRecord
from app.reference import ReferenceCache, ReferenceData
from app.search.schemas import StationRow, VehicleHit, ZoneRow
from app.vehicle_index import VehicleDoc
from graphql_schema.enums import (
    FORM_FACTORS,
    PROPULSION_TYPES,
    FormFactor,
    PropulsionType,
    VehicleEquipment,
    form_factor,
    propulsion_type,
    vehicle_equipment,
)
from graphql_schema.provider_types import Provider
from graphql_schema.scalars import Long

if TYPE_CHECKING:
    from graphql_schema.context import Context


_new_object = object.__new__

_Row = TypeVar("_Row")
_Extra = TypeVar("_Extra")
_View = TypeVar("_View")


@strawberry.type(description="Money in integer minor units (cents) of an ISO 4217 currency.")
class Money:
    amount_minor: Long = strawberry.field(description="Amount in minor units (e.g. cents).")
    currency: str = strawberry.field(description="ISO 4217 currency code.")

    @classmethod
    def of(cls, amount_minor: int, currency: str) -> Money:
        return cls(amount_minor=Long(amount_minor), currency=currency)

    @strawberry.field(description='Decimal amount in major units, as a string, e.g. "1.50".')
    def amount(self) -> str:
        exponent = currency_exponent(self.currency)
        return str(
            (Decimal(self.amount_minor) / (Decimal(10) ** exponent)).quantize(
                Decimal(1).scaleb(-exponent)
            )
        )


@strawberry.type
class RentalUris:
    android: str | None
    ios: str | None
    web: str | None

    @classmethod
    def from_json(cls, data: dict[str, str | None] | str | None) -> RentalUris | None:
        # JSON text as PostGIS answered it: decoded only when the field is selected.
        uris = orjson.loads(data) if isinstance(data, str) else data
        if not uris:
            return None
        return cls(android=uris.get("android"), ios=uris.get("ios"), web=uris.get("web"))


@strawberry.type(
    description="A GBFS pricing segment: from `start` (inclusive) to `end` (exclusive), `rate` is "
    "charged per started `interval` (0: once). Units are minutes for perMinPricing and "
    "kilometres for perKmPricing."
)
class PricingSegment:
    start: int
    rate: Money
    interval: int
    end: int | None


def _segments(raw: list[dict[str, Any]], currency: str) -> list[PricingSegment]:
    return [
        PricingSegment(
            start=s["start"],
            rate=Money.of(s["rate_minor"], currency),
            interval=s["interval"],
            end=s.get("end"),
        )
        for s in raw
    ]


class _OfProvider(Protocol):
    """What a provider relation resolves from: the request's reference snapshot and the id."""

    @property
    def ref(self) -> ReferenceData: ...
    @property
    def provider_id(self) -> str: ...


def _provider_of(source: _OfProvider, context: Context) -> Provider | None:
    return provider_view(source.ref, context.settings, source.provider_id)


def _resolve_provider(root: _OfProvider, info: strawberry.Info[Context, None]) -> Provider | None:
    return _provider_of(root, info.context)


@strawberry.type
class _ProviderRow:
    """A provider's reference row in the API (pricing plan, vehicle type, station, zone): its
    id, the reference snapshot its relations resolve from, its provider's id. No field returns
    this type, so the schema holds only its subclasses, each with these fields first; each
    declares its ``provider`` field last, where it stands in the schema."""

    id: strawberry.ID
    ref: strawberry.Private[ReferenceData]
    provider_id: strawberry.Private[str]


@strawberry.type(description="A GBFS pricing plan; every amount is in minor units.")
class PricingPlan(_ProviderRow):
    name: str
    description: str | None
    currency: str
    price: Money = strawberry.field(description="Base (unlock) fee, charged once.")
    is_taxable: bool
    per_km_pricing: list[PricingSegment]
    per_min_pricing: list[PricingSegment]
    surge_pricing: bool
    url: str | None

    @classmethod
    def from_model(cls, p: PricingPlanRecord, ref: ReferenceData) -> PricingPlan:
        currency = p.currency.strip()
        return cls(
            id=strawberry.ID(p.id),
            ref=ref,
            provider_id=p.provider_id,
            name=p.name,
            description=p.description,
            currency=currency,
            price=Money.of(p.price_minor, currency),
            is_taxable=p.is_taxable,
            per_km_pricing=_segments(p.per_km_pricing, currency),
            per_min_pricing=_segments(p.per_min_pricing, currency),
            surge_pricing=p.surge_pricing,
            url=p.url,
        )

    provider: Provider | None = strawberry.field(resolver=_resolve_provider)


@strawberry.type
class VehicleType(_ProviderRow):
    default_pricing_plan_id: strawberry.Private[str | None]
    form_factor: FormFactor
    propulsion_type: PropulsionType
    name: str | None
    max_range_meters: float | None
    rider_capacity: int | None
    return_constraint: str | None
    co2_grams_per_km: float | None
    default_reserve_time_minutes: int | None

    @classmethod
    def from_model(cls, t: VehicleTypeRecord, ref: ReferenceData) -> VehicleType:
        return cls(
            id=strawberry.ID(t.id),
            ref=ref,
            provider_id=t.provider_id,
            default_pricing_plan_id=t.default_pricing_plan_id,
            form_factor=form_factor(t.form_factor),
            propulsion_type=propulsion_type(t.propulsion_type),
            name=t.name,
            max_range_meters=t.max_range_meters,
            rider_capacity=t.rider_capacity,
            return_constraint=t.return_constraint,
            co2_grams_per_km=t.co2_grams_per_km,
            default_reserve_time_minutes=t.default_reserve_time_minutes,
        )

    provider: Provider | None = strawberry.field(resolver=_resolve_provider)

    @strawberry.field
    def default_pricing_plan(self) -> PricingPlan | None:
        return pricing_plan_view(self.ref, self.default_pricing_plan_id)


@strawberry.type
class VehicleTypeCount:
    ref: strawberry.Private[ReferenceData]
    vehicle_type_id: strawberry.Private[str]
    count: int

    @strawberry.field
    def vehicle_type(self) -> VehicleType | None:
        return vehicle_type_view(self.ref, self.vehicle_type_id)


@strawberry.type
class Station(_ProviderRow):
    name: str
    short_name: str | None
    lat: float
    lon: float
    distance_meters: float | None = strawberry.field(
        description="Geodesic distance in metres, rounded to the millimetre, from the `near` "
        "point or the centre of the `within` box: what `stations` orders by (then by id). Null "
        "when the station was reached through a vehicle."
    )
    capacity: int | None
    num_vehicles_available: int | None
    num_docks_available: int | None
    vehicle_types_available: list[VehicleTypeCount]
    is_installed: bool | None
    is_renting: bool | None
    is_returning: bool | None
    rental_uris: RentalUris | None
    last_reported: datetime | None

    @classmethod
    def from_row(cls, s: StationRow, ref: ReferenceData) -> Station:
        return cls(
            id=strawberry.ID(s.id),
            ref=ref,
            provider_id=s.provider_id,
            name=s.name,
            short_name=s.short_name,
            lat=s.lat,
            lon=s.lon,
            distance_meters=s.distance_meters,
            capacity=s.capacity,
            num_vehicles_available=s.num_vehicles_available,
            num_docks_available=s.num_docks_available,
            vehicle_types_available=[
                VehicleTypeCount(ref=ref, vehicle_type_id=c["vehicle_type_id"], count=c["count"])
                for c in s.vehicle_types_available
            ],
            is_installed=s.is_installed,
            is_renting=s.is_renting,
            is_returning=s.is_returning,
            rental_uris=RentalUris.from_json(s.rental_uris),
            last_reported=s.last_reported,
        )

    provider: Provider | None = strawberry.field(resolver=_resolve_provider)


@strawberry.type(description="A shared vehicle available (or, if asked, reserved/disabled).")
class Vehicle:
    id: strawberry.ID
    ref: strawberry.Private[ReferenceData]
    provider_id: strawberry.ID
    vehicle_type_id: strawberry.ID | None
    pricing_plan_id: strawberry.ID | None = strawberry.field(
        description="The effective plan: the vehicle's own, else its type's default."
    )
    station_id: strawberry.ID | None
    form_factor: FormFactor
    propulsion_type: PropulsionType
    lat: float
    lon: float
    distance_meters: float | None = strawberry.field(
        description="Geodesic (WGS84) distance in metres, rounded to the millimetre, from the "
        "`near` point or the centre of the `within` box: what search orders by (then by id). "
        "Null where no area was given (`vehicle(id:)`)."
    )
    current_range_meters: float | None
    current_fuel_percent: float | None = strawberry.field(
        description="Fuel or battery level as a fraction from 0 to 1."
    )
    is_reserved: bool
    is_disabled: bool
    # Built only when selected (most map queries do not ask for them).
    rental_uris_raw: strawberry.Private[dict[str, str | None] | str | None]
    doc: strawberry.Private[VehicleDoc]

    @strawberry.field
    def rental_uris(self) -> RentalUris | None:
        return RentalUris.from_json(self.rental_uris_raw)

    @strawberry.field
    def last_reported(self) -> datetime | None:
        return self.doc.reported_at()

    @strawberry.field(
        description="Equipment the operator provides besides what every vehicle of the type "
        "has (GBFS vehicle_equipment). Null: not reported; empty: none."
    )
    def vehicle_equipment(self) -> list[VehicleEquipment] | None:
        # Read from the record when asked: from_hit's cost stays the same for every answer.
        return vehicle_equipment(self.doc.vehicle_equipment)

    @classmethod
    def from_hit(cls, hit: VehicleHit, ref: ReferenceData) -> Vehicle:
        # Built for every search result (50 per answer): filling the instance dict in one
        # literal costs half of the dataclass __init__ with 17 keywords. The keys must be the
        # dataclass fields; tests/graphql/test_compiled_execution.py checks that they are.
        v = hit.vehicle
        vehicle = _new_object(cls)
        # strawberry.ID is a typing.NewType: the ids need no conversion at run time.
        vehicle.__dict__ = {
            "id": v.id,
            "ref": ref,
            "provider_id": v.provider_id,
            "vehicle_type_id": v.vehicle_type_id,
            "pricing_plan_id": v.pricing_plan_id,
            "station_id": v.station_id,
            "form_factor": FORM_FACTORS[v.form_factor],
            "propulsion_type": PROPULSION_TYPES[v.propulsion_type],
            "lat": v.lat,
            "lon": v.lon,
            "distance_meters": hit.distance_meters,
            "current_range_meters": v.current_range_meters,
            "current_fuel_percent": v.current_fuel_percent,
            "is_reserved": v.is_reserved,
            "is_disabled": v.is_disabled,
            "rental_uris_raw": v.rental_uris,
            "doc": v,
        }
        return vehicle

    # A method, not the shared field of the reference rows: declared fields come before
    # resolver methods in the schema, and Vehicle's provider stands among its relations.
    @strawberry.field
    def provider(self, info: strawberry.Info[Context, None]) -> Provider | None:
        return _provider_of(self, info.context)

    @strawberry.field
    def vehicle_type(self) -> VehicleType | None:
        return vehicle_type_view(self.ref, self.vehicle_type_id)

    @strawberry.field
    def pricing_plan(self) -> PricingPlan | None:
        return pricing_plan_view(self.ref, self.pricing_plan_id)

    @strawberry.field
    async def station(self, info: strawberry.Info[Context, None]) -> Station | None:
        if self.station_id is None:
            return None
        row = await info.context.loaders.station.load(self.station_id)
        return Station.from_row(row, self.ref) if row else None


@strawberry.type
class GeofencingRule:
    vehicle_type_ids: list[strawberry.ID] | None = strawberry.field(
        description="The vehicle types this rule applies to; null means every type."
    )
    ride_start_allowed: bool
    ride_end_allowed: bool
    ride_through_allowed: bool
    maximum_speed_kph: int | None
    station_parking: bool | None


def rules_from_json(rules: list[dict[str, Any]]) -> list[GeofencingRule]:
    return [
        GeofencingRule(
            vehicle_type_ids=[strawberry.ID(i) for i in r["vehicle_type_ids"]]
            if r.get("vehicle_type_ids") is not None
            else None,
            ride_start_allowed=r["ride_start_allowed"],
            ride_end_allowed=r["ride_end_allowed"],
            ride_through_allowed=r["ride_through_allowed"],
            maximum_speed_kph=r.get("maximum_speed_kph"),
            station_parking=r.get("station_parking"),
        )
        for r in rules
    ]


@strawberry.type(description="A geofencing zone; earlier zones (lower order) take precedence.")
class GeofencingZone(_ProviderRow):
    order: int
    name: str | None
    geometry: JSON = strawberry.field(description="GeoJSON MultiPolygon (WGS84).")
    rules: list[GeofencingRule]
    start: datetime | None
    end: datetime | None
    distance_meters: float | None = strawberry.field(
        description="Geodesic distance in metres (to the millimetre) from the `near` point or "
        "the centre of the `within` box to the zone's nearest point: 0 when the zone holds it. "
        "Null when zones were listed by provider without an area."
    )

    @classmethod
    def from_row(cls, z: ZoneRow, ref: ReferenceData) -> GeofencingZone:
        return cls(
            id=strawberry.ID(z.id),
            ref=ref,
            provider_id=z.provider_id,
            order=z.ordinal,
            name=z.name,
            geometry=cast(JSON, z.geometry),
            rules=rules_from_json(z.rules),
            start=z.starts_at,
            end=z.ends_at,
            distance_meters=z.distance_meters,
        )

    provider: Provider | None = strawberry.field(resolver=_resolve_provider)


@strawberry.type
class RideEndCheck:
    allowed: bool
    reason: str
    zone: GeofencingZone | None
    vehicle_type_ids: list[strawberry.ID]


# Relations resolve from the request's reference snapshot (app/reference.py): synchronous
# dictionary reads, shared by the resolvers above and by the compiled execution plans.


def _view(
    ref: ReferenceData,
    kind: str,
    key: str | None,
    rows: Mapping[str, _Row],
    build: Callable[[_Row, _Extra], _View],
    extra: _Extra,
) -> _View | None:
    """The API object for one reference row (None for no key or an unknown one), built once
    per reference snapshot as ``build(row, extra)``. Every search result asks for a view, so
    a memo hit does nothing else: no builder closure, no cast."""
    if key is None:
        return None
    view: _View | None = ref.views.get((kind, key))
    if view is None:
        row = rows.get(key)
        if row is None:
            return None
        view = ref.views[(kind, key)] = build(row, extra)
    return view


def provider_view(ref: ReferenceData, settings: Settings, provider_id: str) -> Provider | None:
    return _view(ref, "provider", provider_id, ref.providers, Provider.from_model, settings)


def vehicle_type_view(ref: ReferenceData, type_id: str | None) -> VehicleType | None:
    return _view(ref, "vehicle_type", type_id, ref.vehicle_types, VehicleType.from_model, ref)


def pricing_plan_view(ref: ReferenceData, plan_id: str | None) -> PricingPlan | None:
    return _view(ref, "pricing_plan", plan_id, ref.pricing_plans, PricingPlan.from_model, ref)


# For graphql_schema/execution.py: relation fields a compiled plan may resolve itself, with the
# same functions as the resolvers above. (type name, field name) -> f(source, context).
FAST_RELATIONS: dict[tuple[str, str], Callable[[Any, Any], Any]] = {
    **{
        (name, "provider"): _provider_of
        for name in ("Vehicle", "VehicleType", "PricingPlan", "Station", "GeofencingZone")
    },
    ("Vehicle", "rentalUris"): lambda v, _c: RentalUris.from_json(v.rental_uris_raw),
    ("Vehicle", "lastReported"): lambda v, _c: v.doc.reported_at(),
    ("Vehicle", "vehicleEquipment"): lambda v, _c: vehicle_equipment(v.doc.vehicle_equipment),
    ("Vehicle", "vehicleType"): lambda v, _c: vehicle_type_view(v.ref, v.vehicle_type_id),
    ("Vehicle", "pricingPlan"): lambda v, _c: pricing_plan_view(v.ref, v.pricing_plan_id),
    ("VehicleType", "defaultPricingPlan"): lambda t, _c: pricing_plan_view(
        t.ref, t.default_pricing_plan_id
    ),
    ("VehicleTypeCount", "vehicleType"): lambda n, _c: vehicle_type_view(n.ref, n.vehicle_type_id),
}


async def vehicles_from_hits(
    reference: ReferenceCache, hits: Sequence[VehicleHit]
) -> list[Vehicle]:
    """Search hits as GraphQL vehicles, with the reference data they point at."""
    ref = await reference.covering(
        providers={h.vehicle.provider_id for h in hits},
        types={h.vehicle.vehicle_type_id for h in hits},
        plans={h.vehicle.pricing_plan_id for h in hits},
    )
    return [Vehicle.from_hit(h, ref) for h in hits]
