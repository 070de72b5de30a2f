"""Live data applied to the timetable: expected times per stop, cancellations, alerts.

Pure functions over a `Timetable` (app/transit/timetable.py) and a `RealtimeSnapshot`
(app/transit/realtime.py); times are seconds since the service day's start, the timetable's
reference, so an expected time is an instant as ``service_day_start(day) + seconds``.

The rules are GTFS-Realtime's (docs/transit.md, "Live data"):

- A trip update is matched to a trip by its trip id, to a service day by its ``start_date`` or,
  when it has none, by inference: of the days the trip's service runs, the one on which the trip
  runs nearest the feed's timestamp (0 if it is running then). A frequency-based trip's instance
  is the one whose ``start_time`` the update gives.
- Each stop time update is matched to a stop by ``stop_sequence``, else by ``stop_id`` (the
  first visit after the previous matched stop).
- An event's absolute ``time`` wins over its ``delay``: the delay is then the time less the
  scheduled instant (the service day's start in the agency's zone plus the scheduled seconds).
- A stop without an update takes the delay of the nearest update before it (propagation); stops
  before the first update have no prediction (the schedule holds), unless the trip update gives
  a trip-wide ``delay``. A SKIPPED stop is flagged and the delay propagates over it. NO_DATA
  ends propagation: it and the stops after it (until the next update) have no prediction.
- Within one stop: an arrival without a departure gives the departure the arrival's delay; a
  departure without an arrival gives the arrival the delay propagated from upstream or, when
  there is none, the departure's own, and never a later arrival than the departure.
- A CANCELED (or DELETED) trip update cancels the trip on that day: every stop is cancelled.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.transit.realtime import (
    Alert,
    AlertContext,
    RealtimeSnapshot,
    StopRelationship,
    StopTimeEvent,
    StopTimeUpdate,
    TripRelationship,
    TripUpdate,
    alerts_for,
)
from app.transit.timetable import Timetable, TransitTrip

__all__ = [
    "ExpectedStop",
    "ExpectedTimes",
    "MatchReport",
    "RealtimeView",
    "expected_times",
    "match_report",
    "update_service_date",
]

_CANCELLING = frozenset({TripRelationship.CANCELED, TripRelationship.DELETED})
# Trips the timetable does not have by design: not counted as unknown.
_NOT_IN_SCHEDULE = frozenset(
    {TripRelationship.ADDED, TripRelationship.NEW, TripRelationship.DUPLICATED}
)


@dataclass(frozen=True, slots=True)
class ExpectedStop:
    arrival: int  # expected, seconds since the service day's start (scheduled if no prediction)
    departure: int
    arrival_delay: int | None  # None: no prediction for this stop
    departure_delay: int | None
    skipped: bool = False
    arrival_uncertainty: int | None = None
    departure_uncertainty: int | None = None
    assigned_stop_id: str | None = None  # a platform change

    @property
    def predicted(self) -> bool:
        return self.arrival_delay is not None or self.departure_delay is not None


@dataclass(frozen=True, slots=True)
class ExpectedTimes:
    """One trip on one service day with the live data applied; `stops` is parallel to the
    trip's own stops."""

    trip: int  # index into Timetable.trips
    service_date: date
    cancelled: bool
    stops: tuple[ExpectedStop, ...]
    timestamp: int | None  # when the vehicle's progress was measured, if the feed says
    vehicle_id: str | None = None


@dataclass(frozen=True, slots=True)
class MatchReport:
    """How a snapshot's trip updates met the timetable: what a feed's health shows."""

    matched: int
    unknown_trip_ids: tuple[str, ...]  # not in the timetable (and not marked ADDED)
    added: int  # ADDED / NEW / DUPLICATED: not in the schedule by design
    without_trip_id: int
    unmatched_stops: int  # stop time updates naming no stop of their trip


def _seconds_of(day_start: int, scheduled: int, event: StopTimeEvent | None) -> int | None:
    """The event's delay against the scheduled time; None when there is no event."""
    if event is None:
        return None
    if event.time is not None:
        return event.time - (day_start + scheduled)
    return event.delay


def update_service_date(
    timetable: Timetable, trip: TransitTrip, update: TripUpdate, feed_timestamp: int | None
) -> date | None:
    """The service day a trip update is about: its ``start_date``, or the day (among those the
    trip's service runs) on which the trip runs nearest the update's or the feed's timestamp."""
    if update.trip.start_date is not None:
        return update.trip.start_date
    reference = update.timestamp or feed_timestamp
    if reference is None:
        return None
    zone = timetable.zone
    local_day = datetime.fromtimestamp(reference, zone).date()
    running = timetable.services.get(trip.service_id, frozenset())
    # A trip of an earlier service day may still run (times past 24:00:00).
    days_back = trip.arrivals[-1] // 86_400 + 1
    best: tuple[float, date] | None = None
    for back in range(-1, days_back + 1):
        day = local_day - timedelta(days=back)
        if day not in running:
            continue
        start = int(timetable.service_day_start(day).timestamp())
        first, last = start + trip.departures[0], start + trip.arrivals[-1]
        distance = max(first - reference, reference - last, 0)
        if best is None or distance < best[0]:
            best = (distance, day)
    return None if best is None else best[1]


def _matches_instance(trip: TransitTrip, update: TripUpdate) -> bool:
    # A frequency-based trip's instances share the GTFS trip id: the start time picks one.
    if trip.start_time is None:
        return True
    return update.trip.start_time == trip.start_time


def _update_for(
    timetable: Timetable, trip: TransitTrip, service_date: date, snapshot: RealtimeSnapshot
) -> TripUpdate | None:
    for update in snapshot.updates_for(trip.gtfs_id):
        if update.trip.schedule_relationship in _NOT_IN_SCHEDULE:
            continue
        if not _matches_instance(trip, update):
            continue
        if update_service_date(timetable, trip, update, snapshot.timestamp) == service_date:
            return update
    return None


def expected_times(
    timetable: Timetable, trip_index: int, service_date: date, snapshot: RealtimeSnapshot
) -> ExpectedTimes | None:
    """The trip on that service day with the snapshot applied; None when the snapshot has
    nothing for it (the schedule holds, and the caller should not call it on time)."""
    trip = timetable.trips[trip_index]
    update = _update_for(timetable, trip, service_date, snapshot)
    if update is None:
        return None
    return apply_update(timetable, trip, service_date, update)[0]


def apply_update(
    timetable: Timetable, trip: TransitTrip, service_date: date, update: TripUpdate
) -> tuple[ExpectedTimes, int]:
    """The expected times from one trip update, and how many of its stop time updates matched
    no stop of the trip."""
    vehicle_id = update.vehicle.id if update.vehicle else None
    if update.trip.schedule_relationship in _CANCELLING:
        cancelled = tuple(
            ExpectedStop(a, d, None, None, skipped=True)
            for a, d in zip(trip.arrivals, trip.departures, strict=True)
        )
        return ExpectedTimes(
            trip.index, service_date, True, cancelled, update.timestamp, vehicle_id
        ), 0

    day_start = int(timetable.service_day_start(service_date).timestamp())
    by_position, unmatched = _positions(timetable, trip, update)
    propagated = update.delay  # a trip-wide delay holds until the first stop time update
    stops: list[ExpectedStop] = []
    for i, (arrival, departure) in enumerate(zip(trip.arrivals, trip.departures, strict=True)):
        stu = by_position.get(i)
        skipped = False
        arrival_uncertainty = departure_uncertainty = None
        assigned = None
        if stu is None:
            arrival_delay = departure_delay = propagated
        elif stu.schedule_relationship is StopRelationship.NO_DATA:
            arrival_delay = departure_delay = propagated = None
        elif stu.schedule_relationship is StopRelationship.SKIPPED:
            skipped = True
            arrival_delay = departure_delay = propagated
        else:
            assigned = stu.assigned_stop_id
            a = _seconds_of(day_start, arrival, stu.arrival)
            d = _seconds_of(day_start, departure, stu.departure)
            arrival_uncertainty = stu.arrival.uncertainty if stu.arrival else None
            departure_uncertainty = stu.departure.uncertainty if stu.departure else None
            if a is None and d is None:  # UNSCHEDULED without times: nothing new here
                arrival_delay = departure_delay = propagated
            else:
                if a is None:
                    a = propagated if propagated is not None else d
                    assert a is not None and d is not None
                    # Never arriving after leaving: the upstream delay may exceed this one.
                    a = min(a, departure + d - arrival)
                departure_delay = d if d is not None else a
                arrival_delay = a
                propagated = departure_delay
        stops.append(
            ExpectedStop(
                arrival=arrival + (arrival_delay or 0),
                departure=departure + (departure_delay or 0),
                arrival_delay=arrival_delay,
                departure_delay=departure_delay,
                skipped=skipped,
                arrival_uncertainty=arrival_uncertainty,
                departure_uncertainty=departure_uncertainty,
                assigned_stop_id=assigned,
            )
        )
    times = ExpectedTimes(
        trip.index, service_date, False, tuple(stops), update.timestamp, vehicle_id
    )
    return times, unmatched


def _positions(
    timetable: Timetable, trip: TransitTrip, update: TripUpdate
) -> tuple[dict[int, StopTimeUpdate], int]:
    """Each stop time update's position in the trip; and how many matched none."""
    by_sequence = {seq: i for i, seq in enumerate(trip.stop_sequences)}
    stop_ids = [timetable.stops[s].gtfs_id for s in trip.stops]
    found: dict[int, StopTimeUpdate] = {}
    unmatched = 0
    after = 0  # updates are in trip order: a stop id is looked for after the last match
    for stu in update.stop_time_updates:
        position: int | None = None
        if stu.stop_sequence is not None:
            position = by_sequence.get(stu.stop_sequence)
        elif stu.stop_id is not None:
            position = next(
                (i for i in range(after, len(stop_ids)) if stop_ids[i] == stu.stop_id), None
            )
        if position is None or position in found:
            unmatched += 1
            continue
        found[position] = stu
        after = position + 1
    return found, unmatched


def match_report(timetable: Timetable, snapshot: RealtimeSnapshot) -> MatchReport:
    """How the snapshot's trip updates meet the timetable (unknown trip ids are counted, never
    fatal)."""
    matched = added = without = unmatched_stops = 0
    unknown: set[str] = set()
    for update in snapshot.trip_updates:
        if update.trip.schedule_relationship in _NOT_IN_SCHEDULE:
            added += 1
            continue
        trip_id = update.trip.trip_id
        if trip_id is None:
            without += 1
            continue
        indices = timetable.trips_by_gtfs_id.get(trip_id)
        if not indices:
            unknown.add(trip_id)
            continue
        matched += 1
        trip = next(
            (timetable.trips[i] for i in indices if _matches_instance(timetable.trips[i], update)),
            timetable.trips[indices[0]],
        )
        unmatched_stops += _positions(timetable, trip, update)[1]
    return MatchReport(matched, tuple(sorted(unknown)), added, without, unmatched_stops)


class RealtimeView:
    """A snapshot applied to a timetable once, for many look-ups (a departures board asks for
    dozens of trips): build one per (timetable version, snapshot) and keep it while both hold."""

    def __init__(self, timetable: Timetable, snapshot: RealtimeSnapshot) -> None:
        self.timetable = timetable
        self.snapshot = snapshot
        self._expected: dict[tuple[int, date], ExpectedTimes] = {}
        self._trip_times: (
            dict[tuple[int, date], tuple[tuple[int, ...], tuple[int, ...]] | None] | None
        ) = None
        for update in snapshot.trip_updates:
            trip_id = update.trip.trip_id
            if trip_id is None or update.trip.schedule_relationship in _NOT_IN_SCHEDULE:
                continue
            for index in timetable.trips_by_gtfs_id.get(trip_id, ()):
                trip = timetable.trips[index]
                if not _matches_instance(trip, update):
                    continue
                day = update_service_date(timetable, trip, update, snapshot.timestamp)
                if day is None or (index, day) in self._expected:
                    continue  # the first update for a trip and day wins, as expected_times
                self._expected[index, day] = apply_update(timetable, trip, day, update)[0]
        self.report = match_report(timetable, snapshot)

    def expected(self, trip_index: int, service_date: date) -> ExpectedTimes | None:
        return self._expected.get((trip_index, service_date))

    def trip_times(self) -> dict[tuple[int, date], tuple[tuple[int, ...], tuple[int, ...]] | None]:
        """The journey planner's override (app/transit/raptor_journey.py ``Realtime``): each
        trip and day the live data speaks of, with its expected (arrivals, departures), or
        None when it is cancelled. Built once per view."""
        if self._trip_times is None:
            self._trip_times = {
                key: None
                if times.cancelled
                else (
                    tuple(s.arrival for s in times.stops),
                    tuple(s.departure for s in times.stops),
                )
                for key, times in self._expected.items()
            }
        return self._trip_times

    def alerts(
        self,
        at: float,
        *,
        stop_ids: Collection[str] = (),
        route_id: str | None = None,
        trip_id: str | None = None,
        service_date: date | None = None,
    ) -> list[Alert]:
        """`alerts_for` with the route's agency, type and the trip's direction filled in from
        the timetable."""
        agency_id = route_type = direction_id = None
        if trip_id is not None:
            indices = self.timetable.trips_by_gtfs_id.get(trip_id, ())
            if indices:
                trip = self.timetable.trips[indices[0]]
                direction_id = trip.direction_id
                route_id = route_id or self.timetable.routes[trip.route].gtfs_id
        if route_id is not None:
            route = next((r for r in self.timetable.routes if r.gtfs_id == route_id), None)
            if route is not None:
                agency_id, route_type = route.agency_id or None, route.route_type
        return alerts_for(
            self.snapshot.alerts,
            at,
            AlertContext(
                agency_id=agency_id,
                route_id=route_id,
                route_type=route_type,
                direction_id=direction_id,
                trip_id=trip_id,
                service_date=service_date,
                stop_ids=stop_ids,
            ),
        )
