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
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
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
    timetable: Timetable = field(repr=False)
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
    children = timetable.platforms.get(stop.gtfs_id, ())
    return [timetable.stops[i] for i in children] or [stop]


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
    local_day = after.astimezone(timetable.zone).date()
    back = math.ceil(timetable.latest_seconds / DAY)
    found: list[Departure] = []
    earliest = after - timedelta(seconds=MAX_DELAY_SECONDS)
    platforms = platforms_of(timetable, stop)
    # Day by day, earliest first: once `first` departures are in hand and the next day's
    # service starts after the latest of them, no later day can bring a sooner one (a trip
    # leaves at or after its service day's start, and is late by at most MAX_DELAY_SECONDS
    # from the scheduled time the filter above uses).
    for offset in range(-back, horizon_days + 1):
        day = local_day + timedelta(days=offset)
        start = timetable.service_day_start(day)
        if len(found) >= first:
            found.sort(key=_order)
            del found[first:]
            if start - timedelta(seconds=MAX_DELAY_SECONDS) > found[-1].sort_time:
                break
        running = timetable.services_on(day)
        if not running:
            continue
        floor = (earliest - start).total_seconds()
        for platform in platforms:
            visits = timetable.trips_at_stop.get(platform.index, ())
            # Visits are sorted by departure time: skip those leaving before the window.
            lo = bisect_left(visits, floor, key=lambda v: timetable.trips[v[0]].departures[v[1]])
            for trip_index, position in visits[lo:]:
                trip = timetable.trips[trip_index]
                if position == len(trip.stops) - 1 or not trip.pickup[position]:
                    continue
                if trip.service_id not in running:
                    continue
                scheduled = start + timedelta(seconds=trip.departures[position])
                live = expected(trip_index, day) if expected is not None else None
                cancelled = live is not None and (live.cancelled or live.stops[position].skipped)
                expected_time = None
                if live is not None and not cancelled:
                    at = live.stops[position]
                    if at.departure_delay is not None or at.arrival_delay is not None:
                        expected_time = start + timedelta(seconds=at.departure)
                departure = Departure(
                    timetable=timetable,
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
    found.sort(key=_order)
    return found[:first]


def _order(d: Departure) -> tuple[datetime, str, str, int]:
    return (d.sort_time, d.route.id, d.trip.id, d.trip.start_time or 0)
