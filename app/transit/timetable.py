"""A feed's timetable in memory: what departures and journey planning read.

The GTFS files are parsed into the typed rows below (`app/transit/gtfs.py` from a zip, the
repository from the loaded tables); `build_timetable` turns one feed version's rows into a
`Timetable`: stops, routes and trips by dense integer index, each trip's stop times as tuples of
seconds since its service day's start, the dates each service runs, and the footpaths between
nearby stops. Everything here is pure and immutable once built, so one timetable is shared by
every request of a process until the feed's version changes.

Times. GTFS gives stop times as ``H:MM:SS`` since "noon minus 12 h" of the service day, in the
agency's time zone; that reference is midnight except on the two days a year the clocks change,
and times may run past 24:00:00 for a trip that runs after midnight. `service_day_start` is
that reference as an instant in UTC, so an instant is always ``service_day_start(d) +
timedelta(seconds=s)`` (UTC arithmetic: see there).

Frequencies. A trip in ``frequencies.txt`` is a template: it is expanded here into one
`TransitTrip` per departure (same GTFS trip id, `start_time` set), its times shifted, so the
planner and departures never need to know.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

# ---------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class AgencyRow:
    agency_id: str  # "" when the feed has a single agency without an id
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class StopRow:
    stop_id: str
    name: str
    lat: float
    lon: float
    location_type: int = 0  # 0 stop/platform, 1 station, 2 entrance, 3 node, 4 boarding area
    parent_station: str | None = None
    platform_code: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class RouteRow:
    route_id: str
    agency_id: str
    short_name: str | None
    long_name: str | None
    route_type: int
    color: str | None = None  # six hex digits, no '#'
    text_color: str | None = None


@dataclass(frozen=True, slots=True)
class TripRow:
    trip_id: str
    route_id: str
    service_id: str
    headsign: str | None = None
    direction_id: int | None = None
    short_name: str | None = None


@dataclass(frozen=True, slots=True)
class StopTimeRow:
    trip_id: str
    stop_sequence: int
    stop_id: str
    arrival: int | None  # seconds since the service day's start; None between timepoints
    departure: int | None
    headsign: str | None = None
    pickup_type: int = 0  # 1: no pickup
    drop_off_type: int = 0  # 1: no drop off


@dataclass(frozen=True, slots=True)
class CalendarRow:
    service_id: str
    weekdays: tuple[bool, bool, bool, bool, bool, bool, bool]  # Monday first
    start_date: date
    end_date: date


@dataclass(frozen=True, slots=True)
class CalendarDateRow:
    service_id: str
    date: date
    added: bool  # exception_type 1 (added) or 2 (removed)


@dataclass(frozen=True, slots=True)
class FrequencyRow:
    trip_id: str
    start_time: int
    end_time: int
    headway_seconds: int
    exact_times: bool = False


@dataclass(frozen=True, slots=True)
class FootpathRow:
    """A walk between two stops: from PostGIS (stops near each other) or ``transfers.txt``."""

    from_stop_id: str
    to_stop_id: str
    seconds: int


# ---------------------------------------------------------------------------- the timetable


class RouteMode(enum.Enum):
    """GTFS ``route_type``, basic and extended (the extended codes' hundreds), by name."""

    TRAM = "TRAM"
    SUBWAY = "SUBWAY"
    RAIL = "RAIL"
    BUS = "BUS"
    FERRY = "FERRY"
    CABLE_TRAM = "CABLE_TRAM"
    AERIAL_LIFT = "AERIAL_LIFT"
    FUNICULAR = "FUNICULAR"
    TROLLEYBUS = "TROLLEYBUS"
    MONORAIL = "MONORAIL"
    OTHER = "OTHER"


_BASIC_MODES = {
    0: RouteMode.TRAM,
    1: RouteMode.SUBWAY,
    2: RouteMode.RAIL,
    3: RouteMode.BUS,
    4: RouteMode.FERRY,
    5: RouteMode.CABLE_TRAM,
    6: RouteMode.AERIAL_LIFT,
    7: RouteMode.FUNICULAR,
    11: RouteMode.TROLLEYBUS,
    12: RouteMode.MONORAIL,
}
# Extended route types (Google's "Hierarchical Vehicle Type"), by hundreds.
_EXTENDED_MODES = {
    1: RouteMode.RAIL,  # 100 railway
    2: RouteMode.BUS,  # 200 coach
    3: RouteMode.RAIL,  # 300 suburban railway
    4: RouteMode.SUBWAY,  # 400 urban railway
    5: RouteMode.SUBWAY,  # 500 metro
    6: RouteMode.SUBWAY,  # 600 underground
    7: RouteMode.BUS,  # 700 bus
    8: RouteMode.TROLLEYBUS,  # 800 trolleybus
    9: RouteMode.TRAM,  # 900 tram
    10: RouteMode.FERRY,  # 1000 water transport
    12: RouteMode.FERRY,  # 1200 ferry
    13: RouteMode.AERIAL_LIFT,  # 1300 aerial lift
    14: RouteMode.FUNICULAR,  # 1400 funicular
}


def route_mode(route_type: int) -> RouteMode:
    if route_type in _BASIC_MODES:
        return _BASIC_MODES[route_type]
    return _EXTENDED_MODES.get(route_type // 100, RouteMode.OTHER)


@dataclass(frozen=True, slots=True)
class TransitStop:
    index: int
    id: str  # scoped by the feed: "SLUG:stop_id"
    gtfs_id: str
    name: str
    lat: float
    lon: float
    location_type: int
    parent_station: str | None
    platform_code: str | None


@dataclass(frozen=True, slots=True)
class TransitRoute:
    index: int
    id: str  # "SLUG:route_id"
    gtfs_id: str
    agency_id: str
    short_name: str | None
    long_name: str | None
    route_type: int
    mode: RouteMode
    color: str | None
    text_color: str | None


@dataclass(frozen=True, slots=True)
class TransitTrip:
    """One run of a vehicle along its stops on a service day.

    `stops`, `arrivals`, `departures`, `stop_sequences`, `stop_headsigns`, `pickup` and
    `drop_off` are parallel, in stop-sequence order; times are seconds since the service day's
    start, with the gaps between timepoints interpolated (`timepoints` says which were given)."""

    index: int
    id: str  # "SLUG:trip_id"
    gtfs_id: str
    route: int  # index into Timetable.routes
    service_id: str
    headsign: str | None
    direction_id: int | None
    short_name: str | None
    stops: tuple[int, ...]
    stop_sequences: tuple[int, ...]
    arrivals: tuple[int, ...]
    departures: tuple[int, ...]
    stop_headsigns: tuple[str | None, ...]
    pickup: tuple[bool, ...]  # a rider may board here
    drop_off: tuple[bool, ...]  # a rider may alight here
    timepoints: tuple[bool, ...]
    start_time: int | None = None  # set for an instance of a frequency-based trip


@dataclass(frozen=True, slots=True)
class Timetable:
    feed: str  # the feed's slug, the prefix of every id
    version: str  # the loaded version this was built from
    timezone: str  # the agencies' time zone (GTFS requires one per feed)
    stops: tuple[TransitStop, ...]
    routes: tuple[TransitRoute, ...]
    trips: tuple[TransitTrip, ...]
    services: Mapping[str, frozenset[date]]  # service_id -> the dates it runs
    footpaths: Mapping[int, tuple[tuple[int, int], ...]]  # stop -> ((stop, seconds), ...)
    stop_by_gtfs_id: Mapping[str, int] = field(repr=False)
    trips_by_gtfs_id: Mapping[str, tuple[int, ...]] = field(repr=False)
    trips_at_stop: Mapping[int, tuple[tuple[int, int], ...]] = field(repr=False)
    # stop -> ((trip, position in the trip), ...), by departure time there
    # Derived once at build, so a departures board does not rescan the timetable: the latest
    # time of any trip (how many service days back an instant can be served from: a trip of
    # yesterday's service day at 25:30 runs today), each station's platforms, and the
    # services of each day asked for.
    latest_seconds: int = 0
    platforms: Mapping[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _services_by_day: dict[date, frozenset[str]] = field(default_factory=dict, repr=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def service_day_start(self, day: date) -> datetime:
        return service_day_start(day, self.zone)

    def services_on(self, day: date) -> frozenset[str]:
        found = self._services_by_day.get(day)
        if found is None:
            found = frozenset(s for s, days in self.services.items() if day in days)
            if len(self._services_by_day) > 4_096:  # dates asked for are the caller's
                self._services_by_day.clear()
            self._services_by_day[day] = found
        return found

    def stop(self, scoped_id: str) -> TransitStop | None:
        prefix = self.feed + ":"
        if not scoped_id.startswith(prefix):
            return None
        index = self.stop_by_gtfs_id.get(scoped_id[len(prefix) :])
        return None if index is None else self.stops[index]


def service_day_start(day: date, zone: ZoneInfo) -> datetime:
    """GTFS's reference for a service day's times: noon minus 12 hours, local time, returned
    in UTC. In UTC on purpose: Python adds a timedelta to an aware datetime on the wall clock
    of its zone, which is wrong across a daylight-saving change; ``start + timedelta(seconds=
    s)`` is right only in UTC. Convert to the agency's zone (`Timetable.zone`) to show it."""
    noon = datetime.combine(day, time(12), tzinfo=zone)
    return noon.astimezone(UTC) - timedelta(hours=12)


def service_dates(
    calendars: Iterable[CalendarRow], calendar_dates: Iterable[CalendarDateRow]
) -> dict[str, frozenset[date]]:
    """The dates each service runs: ``calendar.txt``'s weekdays within its range, then
    ``calendar_dates.txt``'s additions and removals."""
    days: dict[str, set[date]] = {}
    for row in calendars:
        run = days.setdefault(row.service_id, set())
        d = row.start_date
        while d <= row.end_date:
            if row.weekdays[d.weekday()]:
                run.add(d)
            d += timedelta(days=1)
    for exception in calendar_dates:
        run = days.setdefault(exception.service_id, set())
        if exception.added:
            run.add(exception.date)
        else:
            run.discard(exception.date)
    return {service: frozenset(run) for service, run in days.items()}


def interpolate(
    times: list[tuple[int | None, int | None]],
) -> tuple[list[int], list[int]]:
    """Arrivals and departures of a trip's stops from the (arrival, departure) pairs of the
    file, where a stop between timepoints may have neither: it gets a time linearly by
    position between the previous timepoint's departure and the next one's arrival (GTFS
    leaves the rule to the consumer). A stop with one of the two has it for both. The first
    and last stop must have times (the parser reports a trip that does not)."""
    given = [(a if a is not None else d, d if d is not None else a) for a, d in times]
    known = [i for i, (a, _) in enumerate(given) if a is not None]
    if not known or known[0] != 0 or known[-1] != len(given) - 1:
        raise ValueError("a trip's first and last stop need times")
    arrivals: list[int] = []
    departures: list[int] = []
    before = 0
    for i, (a, d) in enumerate(given):
        if a is not None and d is not None:
            arrivals.append(a)
            departures.append(d)
            before = i
            continue
        after = next(k for k in known if k > i)
        t0, t1 = given[before][1], given[after][0]
        assert t0 is not None and t1 is not None
        t = t0 + round((t1 - t0) * (i - before) / (after - before))
        arrivals.append(t)
        departures.append(t)
    return arrivals, departures


@dataclass(frozen=True, slots=True)
class TimetableRows:
    """One feed version's rows, read from a zip (`app/transit/gtfs.py`) or from the database
    (`app/transit/repository.py`): what `build_timetable` makes a `Timetable` of."""

    agencies: Sequence[AgencyRow]
    stops: Sequence[StopRow]
    routes: Sequence[RouteRow]
    trips: Sequence[TripRow]
    stop_times: Sequence[StopTimeRow]
    calendars: Sequence[CalendarRow] = ()
    calendar_dates: Sequence[CalendarDateRow] = ()
    frequencies: Sequence[FrequencyRow] = ()
    footpaths: Sequence[FootpathRow] = ()


_Row = TypeVar("_Row")
_Record = TypeVar("_Record")


def _first_of_each(
    rows: Iterable[_Row], key: Callable[[_Row], str], record: Callable[[int, _Row], _Record]
) -> tuple[list[_Record], dict[str, int]]:
    """The records of the rows, the first row of each id kept (a later one repeats an id the
    reader already reported), and each id's index among them."""
    records: list[_Record] = []
    index: dict[str, int] = {}
    for row in rows:
        if (k := key(row)) not in index:
            index[k] = len(records)
            records.append(record(len(records), row))
    return records, index


def build_timetable(rows: TimetableRows, *, feed: str, version: str) -> Timetable:
    """One feed version's timetable from its rows. Rows that refer to something missing (a
    stop time of an unknown trip or stop, a trip of an unknown route) are skipped: the parser
    reports them as findings; here they cannot break the rest."""
    agency_rows = list(rows.agencies)
    if not agency_rows:
        raise ValueError("a feed needs an agency (its time zone)")
    zone_name = agency_rows[0].timezone
    ZoneInfo(zone_name)  # raises on an unknown zone

    prefix = feed + ":"
    stop_list, stop_index = _first_of_each(
        rows.stops,
        lambda s: s.stop_id,
        lambda i, s: TransitStop(
            index=i,
            id=prefix + s.stop_id,
            gtfs_id=s.stop_id,
            name=s.name,
            lat=s.lat,
            lon=s.lon,
            location_type=s.location_type,
            parent_station=s.parent_station,
            platform_code=s.platform_code,
        ),
    )
    route_list, route_index = _first_of_each(
        rows.routes,
        lambda r: r.route_id,
        lambda i, r: TransitRoute(
            index=i,
            id=prefix + r.route_id,
            gtfs_id=r.route_id,
            agency_id=r.agency_id,
            short_name=r.short_name,
            long_name=r.long_name,
            route_type=r.route_type,
            mode=route_mode(r.route_type),
            color=r.color,
            text_color=r.text_color,
        ),
    )

    times: dict[str, list[StopTimeRow]] = {}
    for st in rows.stop_times:
        if st.stop_id in stop_index:
            times.setdefault(st.trip_id, []).append(st)
    freq_by_trip: dict[str, list[FrequencyRow]] = {}
    for f in rows.frequencies:
        if f.headway_seconds > 0 and f.end_time > f.start_time:
            freq_by_trip.setdefault(f.trip_id, []).append(f)

    trip_list: list[TransitTrip] = []
    for t in rows.trips:
        calls = times.get(t.trip_id)
        route = route_index.get(t.route_id)
        if not calls or len(calls) < 2 or route is None:
            continue
        calls.sort(key=lambda r: r.stop_sequence)
        try:
            arrivals, departures = interpolate([(r.arrival, r.departure) for r in calls])
        except ValueError:
            continue
        template = TransitTrip(
            index=len(trip_list),
            id=prefix + t.trip_id,
            gtfs_id=t.trip_id,
            route=route,
            service_id=t.service_id,
            headsign=t.headsign,
            direction_id=t.direction_id,
            short_name=t.short_name,
            stops=tuple(stop_index[r.stop_id] for r in calls),
            stop_sequences=tuple(r.stop_sequence for r in calls),
            arrivals=tuple(arrivals),
            departures=tuple(departures),
            stop_headsigns=tuple(r.headsign for r in calls),
            pickup=tuple(r.pickup_type != 1 for r in calls),
            drop_off=tuple(r.drop_off_type != 1 for r in calls),
            timepoints=tuple(r.arrival is not None or r.departure is not None for r in calls),
        )
        windows = freq_by_trip.get(t.trip_id)
        if not windows:
            trip_list.append(template)
            continue
        # A template: its first departure is shifted to each start in the windows.
        origin = departures[0]
        for window in windows:
            start = window.start_time
            while start < window.end_time:
                shift = start - origin
                trip_list.append(
                    replace(
                        template,
                        index=len(trip_list),
                        arrivals=tuple(a + shift for a in arrivals),
                        departures=tuple(d + shift for d in departures),
                        start_time=start,
                    )
                )
                start += window.headway_seconds

    by_gtfs: dict[str, list[int]] = {}
    at_stop: dict[int, list[tuple[int, int]]] = {}
    for trip in trip_list:
        by_gtfs.setdefault(trip.gtfs_id, []).append(trip.index)
        for position, stop in enumerate(trip.stops):
            at_stop.setdefault(stop, []).append((trip.index, position))
    for visits in at_stop.values():
        visits.sort(key=lambda v: trip_list[v[0]].departures[v[1]])

    walks: dict[int, list[tuple[int, int]]] = {}
    for fp in rows.footpaths:
        a, b = stop_index.get(fp.from_stop_id), stop_index.get(fp.to_stop_id)
        if a is None or b is None or a == b:
            continue
        walks.setdefault(a, []).append((b, fp.seconds))

    children: dict[str, list[int]] = {}
    for platform in stop_list:
        if platform.parent_station and platform.location_type in (0, 4):
            children.setdefault(platform.parent_station, []).append(platform.index)
    return Timetable(
        latest_seconds=max((t.arrivals[-1] for t in trip_list), default=0),
        platforms={k: tuple(v) for k, v in children.items()},
        feed=feed,
        version=version,
        timezone=zone_name,
        stops=tuple(stop_list),
        routes=tuple(route_list),
        trips=tuple(trip_list),
        services=service_dates(rows.calendars, rows.calendar_dates),
        footpaths={s: tuple(sorted(w, key=lambda x: x[1])) for s, w in walks.items()},
        stop_by_gtfs_id=stop_index,
        trips_by_gtfs_id={k: tuple(v) for k, v in by_gtfs.items()},
        trips_at_stop={s: tuple(v) for s, v in at_stop.items()},
    )
