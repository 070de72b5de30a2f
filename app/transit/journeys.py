"""Journeys from a point to a point: walking, shared vehicles and public transport combined.

The candidates, for one departure instant:

- walking the whole way, and riding a shared vehicle the whole way (the trip options of
  app/booking/quotes.py: walk to it, ride it);
- public transport, per loaded feed, from RAPTOR (app/transit/raptor.py), with
  - a first mile on foot (stops within ``transit_access_walk_meters``), or on one of the
    nearest shared vehicles (the nearest of each operator and form factor, at most
    ``transit_vehicle_options``), ridden to any stop within ``transit_vehicle_access_meters``;
  - a last mile on foot, or on a vehicle parked near the stop alighted at (within
    ``transit_egress_vehicle_walk_meters``), ridden to the destination, when that is sooner.

Every vehicle leg is estimated and priced as trip options are (walking model, ride speeds,
the operator's GBFS plan) and carries a signed offer the app can book with, through the
existing flow. Shared vehicles are offered only when the journey departs soon
(``transit_vehicles_within_minutes``): where they will be later is not known.

The journeys kept and chosen, and their parts: `app/transit/journey_options.py`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.admission import COSTLY, slots
from app.booking.estimates import LatLon, PlanTerms, RideModel, ride_to, walk_to
from app.booking.offers import issue_offer, offer_signing_key
from app.platform.errors import InvalidInput
from app.platform.settings import Settings
from app.reference import ReferenceCache, ReferenceData
from app.search.schemas import VehicleFilter, VehicleHit
from app.search.service import SearchService
from app.search.validation import Area, check_point, validate_first
from app.transit import raptor, raptor_journey
from app.transit.journey_options import (
    JourneyPlan,
    Part,
    Place,
    PlannedJourney,
    TransitPart,
    VehiclePart,
    WalkPart,
    choose,
    leave_late,
    pareto,
    planned_journey,
)
from app.transit.service import StopHit, TransitService, check_instant
from app.transit.timetable import Timetable, TransitStop
from geo.areas import Near
from geo.distance import geodesic_meters, sphere_meters


@dataclass(slots=True)
class _Vehicle:
    hit: VehicleHit
    at: LatLon
    plan: PlanTerms | None
    walk_meters: float  # from where the rider starts using it (origin, or the egress stop)


@dataclass(slots=True)
class _Context:
    origin: LatLon
    destination: LatLon
    depart: datetime
    now: datetime
    valid_until: datetime
    key: bytes
    access_vehicles: list[_Vehicle] = field(default_factory=list)
    egress_vehicles: list[_Vehicle] = field(default_factory=list)


def _place(p: LatLon, name: str | None = None) -> Place:
    return Place(p.lat, p.lon, name)


def _stop_place(stop: TransitStop) -> Place:
    return Place(stop.lat, stop.lon, stop.name, stop)


def _meters(a: LatLon, b: LatLon) -> float:
    return geodesic_meters(a.lat, a.lon, b.lat, b.lon)


def _at(instant: datetime, minutes: float) -> datetime:
    return instant + timedelta(minutes=minutes)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class JourneyService:
    settings: Settings
    transit: TransitService
    search: SearchService
    reference: ReferenceCache
    clock: Callable[[], datetime] = field(default=_now, kw_only=True)
    model: RideModel = field(init=False)

    def __post_init__(self) -> None:
        self.model = RideModel.from_settings(self.settings)

    async def plan(
        self,
        *,
        origin: LatLon,
        destination: LatLon,
        depart_at: datetime | None = None,
        arrive_by: datetime | None = None,
        first: int | None = None,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> JourneyPlan:
        if depart_at is not None and arrive_by is not None:
            raise InvalidInput("give departAt or arriveBy, not both", code="INVALID_TIME")
        check_point(origin.lat, origin.lon, "from")
        check_point(destination.lat, destination.lon, "to")
        cap = self.settings.max_trip_distance_meters
        if geodesic_meters(origin.lat, origin.lon, destination.lat, destination.lon) > cap:
            raise InvalidInput(f"from and to are more than {cap:g} m apart", code="TRIP_TOO_LONG")
        limit = validate_first(self.settings, first)
        # An expensive operation: a few at a time per process, waiting without a connection.
        async with slots(COSTLY, self.settings.max_concurrent_costly_operations):
            if arrive_by is not None:
                return await self._arrive_by(origin, destination, arrive_by, limit, viewer_orgs)
            return await self._plan(origin, destination, depart_at, limit, viewer_orgs)

    async def _arrive_by(
        self,
        origin: LatLon,
        destination: LatLon,
        deadline: datetime,
        limit: int,
        viewer_orgs: frozenset[uuid.UUID],
    ) -> JourneyPlan:
        """Journeys arriving by `deadline`, leaving as late as they can.

        The forward search answers "leaving at d, when do I arrive?", and the earliest
        arrival never decreases as d grows, so the latest d from which a journey that boards
        something arrives in time is found by bisection (to the minute, within the search's
        horizon, at most four hours back). The journeys of that departure and of the window's
        start (which keep the ones with fewer transfers) that arrive in time, each left as
        late as it can be, and walking the whole way (leaving just in time) make the
        candidates; the answer is their Pareto set over (departure, price, boardings)."""
        if deadline.tzinfo is None:
            raise InvalidInput("arriveBy needs a UTC offset", code="INVALID_TIME")
        deadline = deadline.astimezone(UTC)
        check_instant(deadline, self.clock(), "arriveBy")
        window = timedelta(minutes=min(self.settings.transit_horizon_minutes, 240))

        async def in_time(depart: datetime) -> tuple[list[PlannedJourney], JourneyPlan]:
            plan = await self._plan(origin, destination, depart, None, viewer_orgs)
            return [j for j in plan.journeys if j.arrival <= deadline and j.boardings], plan

        lo, hi = deadline - window, deadline
        found, plan = await in_time(lo)
        candidates = list(found)
        if found:
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                later, later_plan = await in_time(mid)
                if later:
                    lo, found, plan = mid, later, later_plan
                else:
                    hi = mid
            candidates += found
        # Walking the whole way, leaving just in time.
        on_foot = walk_to(self.model, _meters(origin, destination)).minutes
        leave = deadline - timedelta(minutes=on_foot)
        candidates.append(self._walk_all_the_way(origin, destination, leave))
        chosen = choose([leave_late(j) for j in candidates], limit, arrive_by=True)
        return JourneyPlan(chosen, plan.reference, plan.vehicles_considered)

    async def _plan(
        self,
        origin: LatLon,
        destination: LatLon,
        depart_at: datetime | None,
        limit: int | None,
        viewer_orgs: frozenset[uuid.UUID],
    ) -> JourneyPlan:
        """The journeys leaving at `depart_at`: at most `limit` chosen (None: the whole
        front, for `_arrive_by`)."""
        now = self.clock()
        depart = now if depart_at is None else depart_at
        if depart.tzinfo is None:
            raise InvalidInput("departAt needs a UTC offset", code="INVALID_TIME")
        depart = depart.astimezone(UTC)
        check_instant(depart, now, "departAt")
        live = abs(depart - now) <= timedelta(minutes=self.settings.transit_vehicles_within_minutes)
        ctx = _Context(
            origin,
            destination,
            depart,
            now,
            now + timedelta(seconds=self.settings.quote_ttl_seconds),
            offer_signing_key(self.settings),
        )
        hits: list[VehicleHit] = []
        if live:
            hits = await self._vehicles(ctx, viewer_orgs)
        ref = await self.reference.covering(
            providers={h.vehicle.provider_id for h in hits},
            types={h.vehicle.vehicle_type_id for h in hits},
            plans={h.vehicle.pricing_plan_id for h in hits},
        )
        self._attach_plans(ctx, ref)
        candidates = [self._walk_all_the_way(origin, destination, depart)]
        candidates += [self._ride_all_the_way(ctx, v) for v in ctx.access_vehicles]
        candidates += await self._transit(ctx)
        front = pareto(candidates) if limit is None else choose(candidates, limit)
        return JourneyPlan(front, ref, live)

    # ------------------------------------------------------------------ shared vehicles

    async def _vehicles(self, ctx: _Context, viewer_orgs: frozenset[uuid.UUID]) -> list[VehicleHit]:
        """The nearest vehicle of each operator and form factor near the origin (first mile
        and the whole way), and vehicles near the destination's stops (last mile)."""
        s = self.settings
        near_origin = await self.search.vehicles(
            area=Area(Near(ctx.origin.lat, ctx.origin.lon, s.trip_options_radius_meters), None),
            flt=VehicleFilter(),
            first=s.max_first,
            viewer_orgs=viewer_orgs,
        )
        picked: dict[tuple[str, str], VehicleHit] = {}
        for hit in near_origin:  # nearest first
            picked.setdefault((hit.vehicle.provider_id, hit.vehicle.form_factor), hit)
        firsts = sorted(picked.values(), key=lambda h: h.distance_meters or 0.0)
        firsts = firsts[: s.transit_vehicle_options]
        ctx.access_vehicles = [
            _Vehicle(h, LatLon(h.vehicle.lat, h.vehicle.lon), None, h.distance_meters or 0.0)
            for h in firsts
        ]
        radius = s.transit_vehicle_access_meters + s.transit_egress_vehicle_walk_meters
        near_destination = await self.search.vehicles(
            area=Area(Near(ctx.destination.lat, ctx.destination.lon, radius), None),
            flt=VehicleFilter(),
            first=s.max_first,
            viewer_orgs=viewer_orgs,
        )
        # A vehicle taken for the first mile cannot wait at the far end for the last one.
        taken = {h.vehicle.id for h in firsts}
        ctx.egress_vehicles = [
            _Vehicle(h, LatLon(h.vehicle.lat, h.vehicle.lon), None, 0.0)
            for h in near_destination
            if h.vehicle.id not in taken
        ]
        return firsts + list(near_destination)

    def _attach_plans(self, ctx: _Context, ref: ReferenceData) -> None:
        for v in [*ctx.access_vehicles, *ctx.egress_vehicles]:
            plan_id = v.hit.vehicle.pricing_plan_id
            plan = ref.pricing_plans.get(plan_id) if plan_id is not None else None
            v.plan = PlanTerms.from_model(plan) if plan is not None else None

    def _vehicle_part(
        self,
        ctx: _Context,
        v: _Vehicle,
        start: Place,
        end: LatLon,
        end_place: Place,
        departure: datetime,
    ) -> VehiclePart:
        ride = ride_to(self.model, v.hit.vehicle.form_factor, v.at, end)
        price = v.plan.price(ride) if v.plan is not None else None
        offer = issue_offer(
            ctx.key,
            vehicle_id=v.hit.vehicle.id,
            price=price,
            ride=ride,
            destination=end,
            valid_until=ctx.valid_until,
        )
        return VehiclePart(
            start, end_place, departure, _at(departure, ride.minutes), v.hit, ride, price, offer
        )

    # ------------------------------------------------------------------ direct

    def _walk_all_the_way(
        self, origin: LatLon, destination: LatLon, depart: datetime
    ) -> PlannedJourney:
        meters = _meters(origin, destination)
        arrival = _at(depart, walk_to(self.model, meters).minutes)
        part = WalkPart(_place(origin), _place(destination), depart, arrival, meters)
        return PlannedJourney((part,), depart, arrival, (), False)

    def _ride_all_the_way(self, ctx: _Context, v: _Vehicle) -> PlannedJourney:
        walk = walk_to(self.model, v.walk_meters)
        at_vehicle = _at(ctx.depart, walk.minutes)
        vehicle_place = _place(v.at)
        parts: list[Part] = [
            WalkPart(_place(ctx.origin), vehicle_place, ctx.depart, at_vehicle, v.walk_meters)
        ]
        ride = self._vehicle_part(
            ctx, v, vehicle_place, ctx.destination, _place(ctx.destination), at_vehicle
        )
        parts.append(ride)
        return planned_journey(parts)

    # ------------------------------------------------------------------ transit

    async def _transit(self, ctx: _Context) -> list[PlannedJourney]:
        s = self.settings
        reach = max(s.transit_access_walk_meters, s.transit_vehicle_access_meters)
        starts = await self.transit.stops(
            near=Near(ctx.origin.lat, ctx.origin.lon, reach), bbox=None, first=500
        )
        ends = await self.transit.stops(
            near=Near(ctx.destination.lat, ctx.destination.lon, reach), bbox=None, first=500
        )
        by_feed: dict[str, tuple[list[StopHit], list[StopHit]]] = {}
        for hit in starts:
            by_feed.setdefault(hit.timetable.feed, ([], []))[0].append(hit)
        for hit in ends:
            by_feed.setdefault(hit.timetable.feed, ([], []))[1].append(hit)
        found: list[PlannedJourney] = []
        for access_hits, egress_hits in by_feed.values():
            if not access_hits or not egress_hits:
                continue
            timetable = access_hits[0].timetable
            view = await self.transit.realtime_view(timetable)
            realtime = view.trip_times() if view is not None else None
            # RAPTOR is CPU work: off the event loop, as the loader's parsing is.
            found += await asyncio.to_thread(
                self._transit_in_feed, ctx, timetable, access_hits, egress_hits, realtime
            )
        return found

    def _transit_in_feed(
        self,
        ctx: _Context,
        timetable: Timetable,
        access_hits: list[StopHit],
        egress_hits: list[StopHit],
        realtime: raptor_journey.Realtime | None,
    ) -> list[PlannedJourney]:
        s = self.settings
        planner = raptor.planner_for(timetable)
        # First miles: on foot, or on each nearby vehicle (ridden to the stop).
        firsts: list[tuple[_Vehicle | None, dict[int, datetime]]] = []
        on_foot = {
            h.stop.index: _at(ctx.depart, walk_to(self.model, h.distance_meters or 0.0).minutes)
            for h in access_hits
            if (h.distance_meters or 0.0) <= s.transit_access_walk_meters
        }
        if on_foot:
            firsts.append((None, on_foot))
        for v in ctx.access_vehicles:
            at_vehicle = walk_to(self.model, v.walk_meters).minutes
            ride_access = {
                h.stop.index: _at(
                    ctx.depart,
                    at_vehicle
                    + s.transit_vehicle_handover_minutes
                    + ride_to(
                        self.model, v.hit.vehicle.form_factor, v.at, LatLon(h.stop.lat, h.stop.lon)
                    ).minutes,
                )
                for h in access_hits
            }
            firsts.append((v, ride_access))
        # Last miles: on foot, or (where sooner) a vehicle parked near the stop.
        walk_egress = {
            h.stop.index: round(walk_to(self.model, h.distance_meters or 0.0).minutes * 60)
            for h in egress_hits
            if (h.distance_meters or 0.0) <= s.transit_access_walk_meters
        }
        by_vehicle: dict[int, tuple[int, _Vehicle]] = {}
        # The sphere first (a microsecond), the ellipsoid (sixty) only for the pairs near
        # enough: hundreds of stops times a hundred vehicles.
        rough = s.transit_egress_vehicle_walk_meters * 1.01
        for h in egress_hits:
            for v in ctx.egress_vehicles:
                if sphere_meters(h.stop.lat, h.stop.lon, v.at.lat, v.at.lon) > rough:
                    continue
                to_vehicle = geodesic_meters(h.stop.lat, h.stop.lon, v.at.lat, v.at.lon)
                if to_vehicle > s.transit_egress_vehicle_walk_meters:
                    continue
                seconds = round(
                    (
                        walk_to(self.model, to_vehicle).minutes
                        + ride_to(
                            self.model, v.hit.vehicle.form_factor, v.at, ctx.destination
                        ).minutes
                    )
                    * 60
                )
                best = by_vehicle.get(h.stop.index)
                if seconds < walk_egress.get(h.stop.index, 1 << 30) and (
                    best is None or seconds < best[0]
                ):
                    by_vehicle[h.stop.index] = (seconds, v)
        lasts: list[dict[int, int]] = [walk_egress] if walk_egress else []
        if by_vehicle:
            mixed = dict(walk_egress)
            mixed.update({stop: seconds for stop, (seconds, _) in by_vehicle.items()})
            lasts.append(mixed)
        out: list[PlannedJourney] = []
        for vehicle, access in firsts:
            for egress in lasts:
                for j in planner.journeys(
                    access=access,
                    egress=egress,
                    depart_at=ctx.depart,
                    max_transfers=s.transit_max_transfers,
                    horizon=timedelta(minutes=s.transit_horizon_minutes),
                    realtime=realtime,
                ):
                    egress_vehicle = by_vehicle.get(j.egress.stop)
                    use_vehicle = egress_vehicle is not None and egress is not walk_egress
                    out.append(
                        self._from_raptor(
                            ctx,
                            timetable,
                            j,
                            vehicle,
                            egress_vehicle[1] if use_vehicle and egress_vehicle else None,
                        )
                    )
        return out

    def _from_raptor(
        self,
        ctx: _Context,
        timetable: Timetable,
        j: raptor_journey.Journey,
        first_vehicle: _Vehicle | None,
        last_vehicle: _Vehicle | None,
    ) -> PlannedJourney:
        parts: list[Part] = []
        first_stop = timetable.stops[j.access.stop]
        origin = _place(ctx.origin)
        if first_vehicle is None:
            meters = geodesic_meters(ctx.origin.lat, ctx.origin.lon, first_stop.lat, first_stop.lon)
            parts.append(
                WalkPart(origin, _stop_place(first_stop), ctx.depart, j.access.arrival, meters)
            )
        else:
            at_vehicle = _at(ctx.depart, walk_to(self.model, first_vehicle.walk_meters).minutes)
            vehicle_place = _place(first_vehicle.at)
            parts.append(
                WalkPart(origin, vehicle_place, ctx.depart, at_vehicle, first_vehicle.walk_meters)
            )
            parts.append(
                self._vehicle_part(
                    ctx,
                    first_vehicle,
                    vehicle_place,
                    LatLon(first_stop.lat, first_stop.lon),
                    _stop_place(first_stop),
                    at_vehicle,
                )
            )
        for leg in j.legs[1:-1]:
            if isinstance(leg, raptor_journey.TransitLeg):
                trip = timetable.trips[leg.trip]
                parts.append(
                    TransitPart(
                        _stop_place(timetable.stops[leg.board_stop]),
                        _stop_place(timetable.stops[leg.alight_stop]),
                        leg.departure,
                        leg.arrival,
                        timetable.routes[leg.route],
                        trip,
                        leg.service_date,
                        trip.stop_headsigns[leg.board_position] or trip.headsign,
                        leg.realtime,
                        timetable.feed,
                    )
                )
            elif isinstance(leg, raptor_journey.WalkLeg):
                a, b = timetable.stops[leg.from_stop], timetable.stops[leg.to_stop]
                parts.append(
                    WalkPart(
                        _stop_place(a),
                        _stop_place(b),
                        leg.departure,
                        leg.arrival,
                        geodesic_meters(a.lat, a.lon, b.lat, b.lon),
                    )
                )
        last_stop = timetable.stops[j.egress.stop]
        destination = _place(ctx.destination)
        if last_vehicle is None:
            meters = geodesic_meters(
                last_stop.lat, last_stop.lon, ctx.destination.lat, ctx.destination.lon
            )
            parts.append(
                WalkPart(
                    _stop_place(last_stop),
                    destination,
                    j.egress.departure,
                    j.egress.arrival,
                    meters,
                )
            )
        else:
            to_vehicle = geodesic_meters(
                last_stop.lat, last_stop.lon, last_vehicle.at.lat, last_vehicle.at.lon
            )
            at_vehicle = _at(j.egress.departure, walk_to(self.model, to_vehicle).minutes)
            vehicle_place = _place(last_vehicle.at)
            parts.append(
                WalkPart(
                    _stop_place(last_stop),
                    vehicle_place,
                    j.egress.departure,
                    at_vehicle,
                    to_vehicle,
                )
            )
            parts.append(
                self._vehicle_part(
                    ctx, last_vehicle, vehicle_place, ctx.destination, destination, at_vehicle
                )
            )
        return planned_journey(parts)


__all__ = ["JourneyService"]
