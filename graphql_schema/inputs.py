"""Input types, and their conversion to the search service's plain data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import strawberry

from app.search.schemas import StationFilter, VehicleFilter
from app.search.validation import Area, validate_area, validate_first
from geo.areas import BBox, Near
from graphql_schema.enums import FormFactor, PropulsionType, VehicleEquipment

if TYPE_CHECKING:
    from graphql_schema.context import Context


@strawberry.input(description="A point and a radius around it (metres, geodesic).")
class NearInput:
    lat: float
    lon: float
    radius_meters: float = 500.0

    def to_domain(self) -> Near:
        return Near(self.lat, self.lon, self.radius_meters)


@strawberry.input(description="A bounding box in WGS84 degrees.")
class WithinInput:
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float

    def to_domain(self) -> BBox:
        return BBox(self.min_lat, self.min_lon, self.max_lat, self.max_lon)


@strawberry.input
class VehicleFilterInput:
    form_factors: list[FormFactor] | None = None
    propulsion_types: list[PropulsionType] | None = None
    providers: list[strawberry.ID] | None = None
    min_range_meters: float | None = None
    equipment: list[VehicleEquipment] | None = strawberry.field(
        default=None,
        description="Only vehicles that have all of these on board (GBFS vehicle_equipment); "
        "a vehicle whose operator does not report its equipment has none. Empty: any.",
    )
    include_reserved: bool = False
    include_disabled: bool = False

    def to_domain(self, providers: frozenset[str] | None) -> VehicleFilter:
        return VehicleFilter(
            form_factors=frozenset(f.value for f in self.form_factors)
            if self.form_factors is not None
            else None,
            propulsion_types=frozenset(p.value for p in self.propulsion_types)
            if self.propulsion_types is not None
            else None,
            providers=providers,
            min_range_meters=self.min_range_meters,
            equipment=frozenset(e.value for e in self.equipment) if self.equipment else None,
            include_reserved=self.include_reserved,
            include_disabled=self.include_disabled,
        )


@strawberry.input
class StationFilterInput:
    providers: list[strawberry.ID] | None = None
    min_vehicles_available: int | None = None
    min_docks_available: int | None = None

    def to_domain(self, providers: frozenset[str] | None) -> StationFilter:
        return StationFilter(
            providers=providers,
            min_vehicles_available=self.min_vehicles_available,
            min_docks_available=self.min_docks_available,
        )


@dataclass(frozen=True, slots=True)
class AreaSearch:
    """The validated arguments every map search takes (`vehicles`, `vehiclesConnection`,
    `vehicleUpdates`, `stations`, `geofencingZones`): the area, the page size and the providers
    asked for, with the organisations whose private fleets the caller sees."""

    area: Area
    first: int
    providers: frozenset[str] | None
    viewer_orgs: frozenset[uuid.UUID]


async def area_search(
    ctx: Context,
    near: NearInput | None,
    within: WithinInput | None,
    providers: list[strawberry.ID] | None,
    first: int | None,
    *,
    required: bool = True,
) -> AreaSearch:
    """The arguments validated; without ``required``, no area at all is allowed too."""
    settings = ctx.settings
    area = validate_area(
        settings,
        near.to_domain() if near else None,
        within.to_domain() if within else None,
        required=required,
    )
    limit = validate_first(settings, first)
    viewer_orgs = await ctx.search_viewer_organisations()
    # A private fleet the caller may not see is an unknown provider here too.
    wanted = await ctx.search.validate_providers(
        [str(p) for p in providers] if providers is not None else None, viewer_orgs
    )
    return AreaSearch(area, limit, wanted, viewer_orgs)


@dataclass(frozen=True, slots=True)
class VehicleSearch:
    """The validated arguments of a vehicle search (`vehicles`, `vehiclesConnection`,
    `vehicleUpdates`), with the organisations whose private fleets the caller sees."""

    area: Area
    flt: VehicleFilter
    first: int
    viewer_orgs: frozenset[uuid.UUID]


async def vehicle_search(
    ctx: Context,
    near: NearInput | None,
    within: WithinInput | None,
    filter: VehicleFilterInput | None,
    first: int | None,
) -> VehicleSearch:
    """Who may search (an API key needs ``vehicles:read``), then the arguments validated."""
    await ctx.require_vehicles_read()
    flt = filter or VehicleFilterInput()
    search = await area_search(ctx, near, within, flt.providers, first)
    return VehicleSearch(
        search.area, flt.to_domain(search.providers), search.first, search.viewer_orgs
    )
