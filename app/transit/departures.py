"""A stop's departures from an instant, soonest first: pure, over a `Timetable`.

Which service days can hold a departure at or after an instant: a trip of service day ``d``
departs at ``service_day_start(d) + seconds``, and seconds run past 24 h, so the days from
``ceil(max trip seconds / 1 day)`` before the instant's local date up to the horizon after it.
A departure is a visit of a trip to the stop where a rider may board (not its last stop, not
``pickup_type`` 1). A station (``location_type`` 1) answers for its platforms.

Realtime: `expected` gives a trip's expected times on a service day (GTFS-Realtime applied,
`app/transit/realtime.py`), or None where nothing is known. A departure is listed by its
expected time when there is one: a train late enough to leave after ``from`` is still to come,
one early enough to have left is gone. Cancelled departures stay in the list, marked, at
their scheduled time, so a rider sees that the train they meant to take will not come.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.transit.realtime_times import ExpectedTimes
from app.transit.timetable import Timetable, TransitRoute, TransitStop, TransitTrip

DAY = 86_400
# Scheduled departures this long before `from` are looked at too: one of them may be late
# enough to leave after it.
MAX_DELAY_SECONDS = 3 * 3600


# A trip (its index) on a service day with the live data applied, or None: nothing known.
ExpectedLookup = Callable[[int, date], ExpectedTimes | None]


@dataclass(frozen=True, slots=True)
class Departure:
    stop: TransitStop  # the platform it leaves from (a station's child, or the stop asked for)
    trip: TransitTrip
    route: TransitRoute
    service_date: date
    position: int  # index of the visit in the trip
    scheduled_time: datetime
    expected_time: datetime | None
    cancelled: bool
    headsign: str | None

    @property
    def delay_seconds(self) -> int | None:
        if self.expected_time is None:
            return None
        return round((self.expected_time - self.scheduled_time).total_seconds())

    @property
    def sort_time(self) -> datetime:
        return self.expected_time or self.scheduled_time


def platforms_of(timetable: Timetable, stop: TransitStop) -> list[TransitStop]:
    """The stop itself, and for a station its platforms (children by ``parent_station``)."""
    if stop.location_type != 1:
        return [stop]
    children = [
        s for s in timetable.stops if s.parent_station == stop.gtfs_id and s.location_type in (0, 4)
    ]
    return children or [stop]


def departures(
    timetable: Timetable,
    stop: TransitStop,
    *,
    after: datetime,
    first: int,
    horizon_days: int = 3,
    expected: ExpectedLookup | None = None,
) -> list[Departure]:
    """The first `first` departures from `stop` at or after `after` (an aware instant),
    within `horizon_days` days; ties by route then trip id, so the order is stable."""
    if after.tzinfo is None:
        raise ValueError("`after` must be an aware datetime")
    zone = timetable.zone
    local_day = after.astimezone(zone).date()
    back = math.ceil(timetable.max_trip_seconds() / DAY)
    found: list[Departure] = []
    earliest = after - timedelta(seconds=MAX_DELAY_SECONDS)
    for platform in platforms_of(timetable, stop):
        visits = timetable.trips_at_stop.get(platform.index, ())
        for offset in range(-back, horizon_days + 1):
            day = local_day + timedelta(days=offset)
            running = timetable.services_on(day)
            if not running:
                continue
            start = timetable.service_day_start(day)
            for trip_index, position in visits:
                trip = timetable.trips[trip_index]
                if position == len(trip.stops) - 1 or not trip.pickup[position]:
                    continue
                if trip.service_id not in running:
                    continue
                scheduled = start + timedelta(seconds=trip.departures[position])
                if scheduled < earliest:
                    continue
                live = expected(trip_index, day) if expected is not None else None
                cancelled = live is not None and (live.cancelled or live.stops[position].skipped)
                expected_time = None
                if live is not None and not cancelled:
                    at = live.stops[position]
                    if at.departure_delay is not None or at.arrival_delay is not None:
                        expected_time = start + timedelta(seconds=at.departure)
                departure = Departure(
                    stop=platform,
                    trip=trip,
                    route=timetable.routes[trip.route],
                    service_date=day,
                    position=position,
                    # In UTC: wall times in one zone compare without their fold, so an
                    # hour that repeats when the clocks go back would sort wrongly. The API
                    # shows them with the agency's offset.
                    scheduled_time=scheduled,
                    expected_time=expected_time,
                    cancelled=cancelled,
                    headsign=trip.stop_headsigns[position] or trip.headsign,
                )
                if departure.sort_time >= after:
                    found.append(departure)
    found.sort(key=lambda d: (d.sort_time, d.route.id, d.trip.id, d.trip.start_time or 0))
    return found[:first]
