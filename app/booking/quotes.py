"""Quotes and trip options: what a ride would cost and when it would arrive, as signed offers.

Three layers, so the rules unit-test without a database:

* **Estimates** (pure, :mod:`app.booking.estimates`): walk to the vehicle, ride to the
  destination, the price of that ride under the operator's GBFS pricing plan (computed by
  :mod:`adapters.gbfs.pricing`, the one price computation), and the choice and ranking of
  options (walking the whole way, a Pareto set over arrival, price and transfers, diverse).
* **Offers** (pure, given a key, :mod:`app.booking.offers`): stateless signed tokens carrying
  what was quoted, so the booking service can accept an offer id without any storage
  (:func:`app.booking.offers.verify_offer`).
* **The service** (:class:`QuoteService`, here): finds vehicles through the search service, so
  the same visibility rules apply (stale providers, reserved and disabled vehicles are hidden),
  and reads pricing plans from the reference cache.

The estimate model, its rounding, and the error codes are described in docs/quotes.md.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from adapters.gbfs.pricing import PriceBreakdown
from app.admission import COSTLY, slots
from app.booking.estimates import (
    LatLon,
    Leg,
    PlanTerms,
    RideModel,
    TripEstimate,
    TripRanking,
    choose_trip_estimates,
    estimate_trip,
    estimate_walk,
    local_currency,
    ride_for_minutes,
    ride_to,
)
from app.booking.offers import Offer, issue_offer, offer_signing_key
from app.platform.errors import DomainError, InvalidInput, NotFound
from app.platform.settings import Settings
from app.reference import ReferenceCache, ReferenceData
from app.search.schemas import VehicleFilter, VehicleHit
from app.search.service import SearchService
from app.search.validation import Area, validate_first
from geo.areas import Near, valid_lat, valid_lon
from geo.distance import geodesic_meters

__all__ = [
    "Quote",
    "QuoteService",
    "TripMode",
    "TripOption",
    "TripOptions",
    "VehicleNotAvailable",
    "VehicleNotFound",
]

# A quote is for one rental; a week covers the longest car rentals priced per minute, and keeps
# amounts far inside what a JSON number carries exactly.
MAX_QUOTE_MINUTES = 7 * 24 * 60


# --------------------------------------------------------------------------- errors


class VehicleNotFound(NotFound):
    code = "VEHICLE_NOT_FOUND"


class VehicleNotAvailable(DomainError):
    """The vehicle exists but cannot be rented now: reserved, disabled, or its operator's data
    is stale (search hides it for the same reasons)."""

    code = "VEHICLE_UNAVAILABLE"


# --------------------------------------------------------------------------- service


@dataclass(frozen=True, slots=True)
class Quote:
    offer: Offer
    hit: VehicleHit
    reference: ReferenceData  # the snapshot the price was read from, to show the vehicle


class TripMode(Enum):
    WALK = "walk"  # the whole way on foot: no vehicle, no offer
    VEHICLE = "vehicle"  # walk to a shared vehicle, ride it


@dataclass(frozen=True, slots=True)
class TripOption:
    walk: Leg
    ride: Leg  # empty when walking
    arrival_time: datetime
    # A vehicle's: its offer's. Walking's: zero in the local currency (the one most options are
    # priced in), None when no option is priced.
    price: PriceBreakdown | None
    offer: Offer | None = None  # None: walking
    hit: VehicleHit | None = None  # None: walking

    @property
    def mode(self) -> TripMode:
        return TripMode.WALK if self.offer is None else TripMode.VEHICLE


@dataclass(frozen=True, slots=True)
class TripOptions:
    options: list[TripOption]
    reference: ReferenceData


def _check_point(point: LatLon, what: str) -> None:
    # Same wording and code as the search's checks: one mistake, one error, in every query.
    if not (math.isfinite(point.lat) and valid_lat(point.lat)):
        raise InvalidInput(
            f"{what}: latitude {point.lat} is out of range; use a value from -90 to 90",
            code="INVALID_COORDINATES",
        )
    if not (math.isfinite(point.lon) and valid_lon(point.lon)):
        raise InvalidInput(
            f"{what}: longitude {point.lon} is out of range; use a value from -180 to 180",
            code="INVALID_COORDINATES",
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class QuoteService:
    """Stateless apart from its collaborators: cheap to build per request."""

    def __init__(
        self,
        settings: Settings,
        search: SearchService,
        reference: ReferenceCache,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.search = search
        self.reference = reference
        self.clock = clock
        self.model = RideModel.from_settings(settings)

    def _plan(self, ref: ReferenceData, plan_id: str | None) -> PlanTerms | None:
        plan = ref.pricing_plans.get(plan_id) if plan_id is not None else None
        return PlanTerms.from_model(plan) if plan is not None else None

    def _check_distance(self, start: LatLon, end: LatLon) -> None:
        # A shared vehicle's ride, not a journey across the world (which would be offered as a
        # ride of weeks): the same bound for a quote to a point and for trip options.
        cap = self.settings.max_trip_distance_meters
        if geodesic_meters(start.lat, start.lon, end.lat, end.lon) > cap:
            raise InvalidInput(
                f"the destination is more than {cap / 1000:g} km away: shared vehicles are "
                "quoted for rides up to that distance",
                code="TRIP_TOO_LONG",
            )

    def _valid_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.settings.quote_ttl_seconds)

    async def quote(
        self,
        *,
        vehicle_id: str,
        to: LatLon | None = None,
        minutes: int | None = None,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> Quote:
        """An offer for renting ``vehicle_id`` to ``to``, or for ``minutes``. Another
        organisation's private fleet (not in ``viewer_orgs``) is not found."""
        if (to is None) == (minutes is None):
            raise InvalidInput(
                "give exactly one of `to` (where the ride ends) or `minutes` (how long it lasts)"
            )
        if to is not None:
            _check_point(to, "to")
        if minutes is not None and not 0 < minutes <= MAX_QUOTE_MINUTES:
            raise InvalidInput(f"minutes must be between 1 and {MAX_QUOTE_MINUTES}; got {minutes}")
        # Each read takes a connection only while it runs, one after another: a request never
        # holds two.
        hit = await self.search.vehicle_record(vehicle_id)
        # The provider sets first (re-read if this provider is new to them), then who may see
        # it: a private fleet added a moment ago is hidden at once.
        servable = await self.search.servable_providers(
            including=[hit.vehicle.provider_id] if hit is not None else []
        )
        hidden = await self.search.hidden_providers(viewer_orgs)
        if hit is None or hit.vehicle.provider_id in hidden:
            raise VehicleNotFound(f"no vehicle {vehicle_id!r}")
        vehicle = hit.vehicle
        if vehicle.is_reserved or vehicle.is_disabled:
            raise VehicleNotAvailable(f"vehicle {vehicle_id!r} is not available to rent now")
        if vehicle.provider_id not in servable:
            raise VehicleNotAvailable(
                f"vehicle {vehicle_id!r} is not available to rent now: its operator's data is "
                "out of date"
            )
        ref = await self.reference.covering(
            providers=[vehicle.provider_id],
            types=[vehicle.vehicle_type_id],
            plans=[vehicle.pricing_plan_id],
        )
        if to is not None:
            self._check_distance(LatLon(vehicle.lat, vehicle.lon), to)
            ride = ride_to(self.model, vehicle.form_factor, LatLon(vehicle.lat, vehicle.lon), to)
        else:
            assert minutes is not None
            ride = ride_for_minutes(self.model, vehicle.form_factor, minutes)
        plan = self._plan(ref, vehicle.pricing_plan_id)
        offer = issue_offer(
            offer_signing_key(self.settings),
            vehicle_id=vehicle.id,
            price=plan.price(ride) if plan is not None else None,
            ride=ride,
            destination=to,
            valid_until=self._valid_until(self.clock()),
        )
        return Quote(offer, hit, ref)

    async def trip_options(
        self,
        *,
        origin: LatLon,
        destination: LatLon,
        form_factors: frozenset[str] | None = None,
        first: int | None = None,
        ranking: TripRanking = TripRanking.TOTAL_PRICE,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> TripOptions:
        """Walking the whole way, and one option per available vehicle within
        ``trip_options_radius_meters`` of ``origin`` that walking or another option does not
        beat (:func:`~app.booking.estimates.choose_trip_estimates`), diverse across modes and
        operators, ranked, at most ``first``.

        Candidates are the nearest ``max_first`` vehicles in that radius (search's own page
        cap): ranking is by price or arrival, not distance, so the cut comes after ranking;
        the cap keeps a dense city centre from costing thousands of estimates."""
        _check_point(origin, "from")
        _check_point(destination, "to")
        self._check_distance(origin, destination)
        limit = validate_first(self.settings, first)
        # An expensive operation: a few at a time per process, waiting without a connection.
        async with slots(COSTLY, self.settings.max_concurrent_costly_operations):
            return await self._trip_options(
                origin, destination, form_factors, limit, ranking, viewer_orgs
            )

    async def _trip_options(
        self,
        origin: LatLon,
        destination: LatLon,
        form_factors: frozenset[str] | None,
        limit: int,
        ranking: TripRanking,
        viewer_orgs: frozenset[uuid.UUID],
    ) -> TripOptions:
        near = Near(origin.lat, origin.lon, self.settings.trip_options_radius_meters)
        hits = await self.search.vehicles(
            area=Area(near, None),
            flt=VehicleFilter(form_factors=form_factors),
            first=self.settings.max_first,
            viewer_orgs=viewer_orgs,
        )
        # After the search gave its connection back: a reload of reference data takes one.
        ref = await self.reference.covering(
            providers={h.vehicle.provider_id for h in hits},
            types={h.vehicle.vehicle_type_id for h in hits},
            plans={h.vehicle.pricing_plan_id for h in hits},
        )
        now = self.clock()
        by_id = {h.vehicle.id: h for h in hits}
        plans: dict[str | None, PlanTerms | None] = {}
        estimates: list[TripEstimate] = [estimate_walk(self.model, origin, destination, now)]
        for hit in hits:
            v = hit.vehicle
            if v.pricing_plan_id not in plans:  # a fleet shares a handful of plans
                plans[v.pricing_plan_id] = self._plan(ref, v.pricing_plan_id)
            walk_meters = hit.distance_meters
            if walk_meters is None:  # radius searches measure it; kept correct regardless
                walk_meters = geodesic_meters(origin.lat, origin.lon, v.lat, v.lon)
            estimates.append(
                estimate_trip(
                    self.model,
                    vehicle_id=v.id,
                    form_factor=v.form_factor,
                    vehicle_at=LatLon(v.lat, v.lon),
                    walk_meters=walk_meters,
                    destination=destination,
                    plan=plans[v.pricing_plan_id],
                    now=now,
                    provider_id=v.provider_id,
                )
            )
        key = offer_signing_key(self.settings)
        valid_until = self._valid_until(now)
        local = local_currency(estimates)
        options = []
        # Offers are signed only for the options returned.
        for e in choose_trip_estimates(estimates, ranking, limit):
            if e.vehicle_id is None:
                free = PriceBreakdown(local, 0, 0, 0, 0) if local is not None else None
                options.append(TripOption(e.walk, e.ride, e.arrival_time, free))
                continue
            offer = issue_offer(
                key,
                vehicle_id=e.vehicle_id,
                price=e.price,
                ride=e.ride,
                destination=destination,
                valid_until=valid_until,
            )
            options.append(
                TripOption(e.walk, e.ride, e.arrival_time, e.price, offer, by_id[e.vehicle_id])
            )
        return TripOptions(options, ref)
