"""Journeys over a timetable: RAPTOR, the round-based public transit router.

Delling, Pajor and Werneck, "Round-Based Public Transit Routing" (2012). Round *k* finds, for
every stop, the earliest arrival with at most *k* transit legs: it scans each route pattern
that serves a stop improved in round *k - 1*, boarding the earliest trip the rider can catch
there, then relaxes footpaths from the stops that round reached by vehicle. The answer is the
Pareto set over (arrival at the destination, number of transit legs): one journey per round
that arrives strictly earlier than every journey with fewer legs.

Pure and synchronous: no I/O, no clock. The caller (the journey service) supplies

- ``access``: the stops the rider can reach from the origin and the instant they can be at
  each (walking, or a shared vehicle: the first mile is not this module's business);
- ``egress``: the stops from which the destination can be reached, with the seconds it takes;
- ``depart_at``: the query's instant, which with ``horizon`` bounds the search window;
- optionally ``realtime``: trips of a service date whose times changed, or that are cancelled.

Model, exactly (the reference implementation in the tests follows the same rules):

- A journey is: access, then alternately a transit leg and at most one footpath, then egress.
  Footpaths are one hop: a footpath is walked from a stop reached by vehicle (or an access
  stop), never from a stop reached by another footpath. This is RAPTOR's own rule; it finds
  every walk only if the footpath set is transitively closed, which the loader makes nearly so
  (all pairs of stops within a radius). To stay exact for sets that are not closed, a stop
  keeps two labels: the earliest arrival by any means (what boarding reads) and the earliest
  arrival by vehicle (what footpaths are relaxed from), so a walk from a stop is not lost
  because the stop was reached earlier on foot.
- A transfer at one stop needs no minimum time: a trip departing at the second the previous
  one arrives can be caught (feeds that need a margin model it as a footpath).
- Boarding needs ``pickup`` at the stop, alighting ``drop_off`` (GTFS ``pickup_type`` /
  ``drop_off_type`` 1).
- Service days: times are seconds since the service day's start (GTFS noon minus 12 h), so a
  trip of date *d* runs at ``service_day_start(d) + seconds``. Every service day whose trips
  can fall inside ``[depart_at, depart_at + horizon]`` is considered (the day before, for
  times past 24:00, the day, the next day if the window crosses midnight), each trip on the
  days its ``service_id`` runs.
- Nothing arrives later than ``depart_at + horizon``: labels past it are dropped.

Preparation. Per timetable, once (``JourneyPlanner(timetable)``, or `planner_for`, which
caches the last few by identity): trips are grouped into *patterns*, those with the same stop
sequence, the same pickup/drop-off flags and the same ``service_id`` (so a pattern is active on
a date or not as a whole), split further until no trip of a pattern overtakes another (then the
first trip departing after an instant at a stop is found by binary search and is also the first
to arrive everywhere after it). Each pattern keeps, per stop position, the list of its trips'
departures (for the binary search), and each trip's own arrival and departure tuples.

Per query, the scan does as little as it can: only the patterns of the services running in the
window are queued (cached per combination of services); a pattern is boarded only at the
stops improved in the round before (boarding from an older label was done in an earlier
round); a ride stops where this trip or an earlier one of the pattern was already boarded in
an earlier round (trip-based routing's R(t): nothing past it can improve), or once it arrives
past the bound (the destination's best arrival so far less the smallest egress).

Realtime: a trip with changed times is taken out of its pattern for that date and scanned as a
pattern of its own (delays may break the no-overtaking order); a cancelled one is only taken
out. A skipped stop is not modelled beyond what the given times say.

Arrive-by queries (latest departure for a given arrival) are not implemented: that needs the
reverse search (scanning patterns backwards from the egress stops); see docs/transit.md.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from threading import Lock
from typing import Any, Final

from app.transit.timetable import Timetable

# Larger than any epoch second a query can produce; an int keeps comparisons int-only.
_INF: Final = 1 << 62

DEFAULT_MAX_TRANSFERS: Final = 4
DEFAULT_HORIZON: Final = timedelta(hours=6)

# Times of one trip on one date: (arrivals, departures), seconds since the service day's
# start, one per stop of the trip; or None: the trip is cancelled that date.
TripTimes = tuple[tuple[int, ...], tuple[int, ...]]
Realtime = Mapping[tuple[int, date], TripTimes | None]


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class AccessLeg:
    """The first mile, as far as this module knows it: the rider is at `stop` at `arrival`."""

    stop: int
    arrival: datetime


@dataclass(frozen=True, slots=True)
class TransitLeg:
    """A ride on one trip. Stops are indices into `Timetable.stops`, positions into the
    trip's `stops` (a trip may serve a stop twice); `trip` indexes `Timetable.trips`."""

    trip: int
    route: int
    service_date: date
    board_stop: int
    board_position: int
    departure: datetime
    alight_stop: int
    alight_position: int
    arrival: datetime
    realtime: bool  # times from the realtime override, not the timetable


@dataclass(frozen=True, slots=True)
class WalkLeg:
    """A footpath between two stops (a transfer, or from an access stop)."""

    from_stop: int
    to_stop: int
    departure: datetime
    arrival: datetime
    seconds: int


@dataclass(frozen=True, slots=True)
class EgressLeg:
    """From the last stop to the destination, as the caller's egress said."""

    stop: int
    departure: datetime
    arrival: datetime
    seconds: int


Leg = AccessLeg | TransitLeg | WalkLeg | EgressLeg


@dataclass(frozen=True, slots=True)
class Journey:
    """One member of the Pareto set: legs in order, always AccessLeg first and EgressLeg last.
    `departure` is the access instant; waiting at stops is implicit between legs."""

    legs: tuple[Leg, ...]
    departure: datetime
    arrival: datetime
    transit_legs: int

    @property
    def transfers(self) -> int:
        return max(0, self.transit_legs - 1)

    @property
    def access(self) -> AccessLeg:
        leg = self.legs[0]
        assert isinstance(leg, AccessLeg)
        return leg

    @property
    def egress(self) -> EgressLeg:
        leg = self.legs[-1]
        assert isinstance(leg, EgressLeg)
        return leg


# ---------------------------------------------------------------------------- preparation


def _monotone(times: tuple[int, ...]) -> bool:
    return all(a <= b for a, b in pairwise(times))


class JourneyPlanner:
    """A timetable prepared for RAPTOR: build once per timetable (about 0.1 s for a city bus
    network), then `journeys` is safe to call from any thread; it never mutates the planner
    except for small per-date caches."""

    def __init__(self, timetable: Timetable) -> None:
        self.timetable = timetable
        self._zone = timetable.zone
        services: dict[str, int] = {}
        groups: dict[
            tuple[tuple[int, ...], tuple[bool, ...], tuple[bool, ...], str], list[int]
        ] = {}
        for trip in timetable.trips:
            key = (trip.stops, trip.pickup, trip.drop_off, trip.service_id)
            groups.setdefault(key, []).append(trip.index)
            services.setdefault(trip.service_id, len(services))
        self._service_ids = services

        trips = timetable.trips
        # Parallel lists, one entry per pattern: what the scan reads.
        self.pattern_stops: list[tuple[int, ...]] = []
        self.pattern_pickup: list[tuple[bool, ...]] = []
        self.pattern_drop_off: list[tuple[bool, ...]] = []
        self.pattern_service: list[int] = []
        self.pattern_trips: list[list[int]] = []
        # Departures by position (for the binary search), then each trip's own times.
        self.pattern_departures: list[list[list[int]]] = []  # [position][rank]
        self.pattern_trip_arrivals: list[list[tuple[int, ...]]] = []  # [rank][position]
        self.pattern_trip_departures: list[list[tuple[int, ...]]] = []
        # Every trip's arrivals never decrease along its stops: a scan may stop once the
        # ridden trip arrives past the bound (bad data only disables that shortcut).
        self.pattern_monotone: list[bool] = []
        self.pattern_first_departure: list[int] = []
        self.pattern_last_arrival: list[int] = []
        self.trip_pattern: dict[int, tuple[int, int]] = {}  # trip -> (pattern, rank in it)

        for (stops, pickup, drop_off, service), members in groups.items():
            members.sort(key=lambda t: (trips[t].departures[0], trips[t].arrivals[-1]))
            # Greedy split into chains with no overtaking: each trip joins the first chain
            # whose last trip it neither departs nor arrives before, at any stop.
            chains: list[list[int]] = []
            for t in members:
                arr, dep = trips[t].arrivals, trips[t].departures
                for chain in chains:
                    last = trips[chain[-1]]
                    if all(a >= b for a, b in zip(arr, last.arrivals, strict=True)) and all(
                        a >= b for a, b in zip(dep, last.departures, strict=True)
                    ):
                        chain.append(t)
                        break
                else:
                    chains.append([t])
            for chain in chains:
                self._add_pattern(
                    stops,
                    pickup,
                    drop_off,
                    services[service],
                    chain,
                    [trips[t].arrivals for t in chain],
                    [trips[t].departures for t in chain],
                )
        self.base_patterns = len(self.pattern_stops)

        at_stop: list[list[tuple[int, int]]] = [[] for _ in timetable.stops]
        for p, stops in enumerate(self.pattern_stops):
            for position, stop in enumerate(stops[:-1]):  # nobody boards at the last stop
                at_stop[stop].append((p, position))
        self.stop_patterns: list[tuple[tuple[int, int], ...]] = [tuple(x) for x in at_stop]
        self.footpaths: list[tuple[tuple[int, int], ...]] = [
            timetable.footpaths.get(s, ()) for s in range(len(timetable.stops))
        ]
        self.max_trip_seconds = max(self.pattern_last_arrival, default=0)
        self._lock = Lock()
        self._day_starts: dict[date, int] = {}
        self._day_services: OrderedDict[date, frozenset[int]] = OrderedDict()
        self._active_at_stops: OrderedDict[
            tuple[frozenset[int], ...],
            tuple[list[tuple[tuple[int, int], ...]], list[tuple[int, ...]]],
        ] = OrderedDict()

    def _add_pattern(
        self,
        stops: tuple[int, ...],
        pickup: tuple[bool, ...],
        drop_off: tuple[bool, ...],
        service: int,
        trips: list[int],
        arrivals: list[tuple[int, ...]],
        departures: list[tuple[int, ...]],
    ) -> int:
        index = len(self.pattern_stops)
        self.pattern_stops.append(stops)
        self.pattern_pickup.append(pickup)
        self.pattern_drop_off.append(drop_off)
        self.pattern_service.append(service)
        self.pattern_trips.append(trips)
        self.pattern_departures.append([[d[i] for d in departures] for i in range(len(stops))])
        self.pattern_trip_arrivals.append(arrivals)
        self.pattern_trip_departures.append(departures)
        self.pattern_monotone.append(all(_monotone(a) for a in arrivals))
        self.pattern_first_departure.append(min(d[0] for d in departures))
        self.pattern_last_arrival.append(max(a[-1] for a in arrivals))
        for rank, t in enumerate(trips):
            self.trip_pattern[t] = (index, rank)
        return index

    def active_at_stops(
        self, signature: tuple[frozenset[int], ...]
    ) -> tuple[list[tuple[tuple[int, int], ...]], list[tuple[int, ...]]]:
        """For a window's days (`signature`: each day's active services): per stop, the
        (pattern, position) pairs of the patterns that run on one of them (the others are
        never queued), and per pattern the indices of the days it runs. Cached: most windows
        of a feed share a few signatures (weekdays, Saturday, ...)."""
        found = self._active_at_stops.get(signature)
        if found is None:
            days = [
                tuple(di for di, active in enumerate(signature) if service in active)
                for service in self.pattern_service
            ]
            at_stop = [tuple(x for x in at if days[x[0]]) for at in self.stop_patterns]
            found = (at_stop, days)
            with self._lock:
                self._active_at_stops[signature] = found
                while len(self._active_at_stops) > 16:
                    self._active_at_stops.popitem(last=False)
        return found

    # -- service days

    def day_start(self, day: date) -> int:
        """Epoch second of the service day's start (noon minus 12 h, local)."""
        start = self._day_starts.get(day)
        if start is None:
            start = int(self.timetable.service_day_start(day).timestamp())
            with self._lock:
                self._day_starts[day] = start
        return start

    def services_on(self, day: date) -> frozenset[int]:
        active = self._day_services.get(day)
        if active is None:
            active = frozenset(
                self._service_ids[s]
                for s, days in self.timetable.services.items()
                if day in days and s in self._service_ids
            )
            with self._lock:
                self._day_services[day] = active
                while len(self._day_services) > 64:
                    self._day_services.popitem(last=False)
        return active

    def _service_days(
        self, start: int, limit: int, latest: int
    ) -> list[tuple[date, int, frozenset[int]]]:
        """The service days whose trips can run inside [start, limit] (epoch seconds), for
        trips that end at most `latest` seconds after their day's start."""
        zone = self._zone
        first = datetime.fromtimestamp(start, zone).date() - timedelta(days=latest // 86400 + 1)
        # The next day too: on the day the clocks go forward its service day starts at 23:00.
        last = datetime.fromtimestamp(limit, zone).date() + timedelta(days=1)
        out: list[tuple[date, int, frozenset[int]]] = []
        day = first
        while day <= last:
            off = self.day_start(day)
            if off + latest >= start and off <= limit:
                active = self.services_on(day)
                if active:
                    out.append((day, off, active))
            day += timedelta(days=1)
        return out

    # -- the query

    def journeys(
        self,
        *,
        access: Mapping[int, datetime],
        egress: Mapping[int, int],
        depart_at: datetime,
        max_transfers: int = DEFAULT_MAX_TRANSFERS,
        horizon: timedelta = DEFAULT_HORIZON,
        realtime: Realtime | None = None,
        include_walk_only: bool = False,
    ) -> list[Journey]:
        """The Pareto set over (arrival, transit legs), fewest legs first (so each later one
        arrives strictly earlier). Stops are indices into `Timetable.stops`.

        ``access`` maps a stop to the instant the rider can be there (not before
        ``depart_at``); ``egress`` maps a stop to the seconds from it to the destination.
        At most ``max_transfers + 1`` transit legs. ``include_walk_only`` also returns the
        journey without any transit leg (access, at most one footpath, egress) when stops
        connect them; the caller usually offers walking all the way itself."""
        if depart_at.tzinfo is None:
            raise ValueError("depart_at must be an aware datetime")
        if max_transfers < 0:
            raise ValueError("max_transfers must be >= 0")
        if horizon <= timedelta(0):
            raise ValueError("horizon must be positive")
        n_stops = len(self.timetable.stops)
        start = int(depart_at.timestamp())
        limit = start + int(horizon.total_seconds())
        sources: dict[int, int] = {}
        for stop, instant in access.items():
            if not 0 <= stop < n_stops:
                raise ValueError(f"access stop {stop} is not in the timetable")
            if instant.tzinfo is None:
                raise ValueError("access instants must be aware datetimes")
            at = max(start, int(instant.timestamp()))
            if at <= limit and at < sources.get(stop, _INF):
                sources[stop] = at
        targets: dict[int, int] = {}
        for stop, seconds in egress.items():
            if not 0 <= stop < n_stops:
                raise ValueError(f"egress stop {stop} is not in the timetable")
            if seconds < 0:
                raise ValueError("egress seconds must be >= 0")
            targets[stop] = min(int(seconds), targets.get(stop, _INF))
        if not sources or not targets:
            return []
        search = _Search(self, start, limit, realtime)
        found = search.run(sources, targets, max_transfers + 1)
        journeys = [search.journey(k, stop) for k, stop in found]
        return [j for j in journeys if include_walk_only or j.transit_legs]


# The planners of the last few timetables, by identity: a `Timetable` is neither hashable
# (it holds dicts) nor weakly referenceable (slots), and a process holds one per feed version.
# Each planner keeps its timetable alive, so an id here cannot be reused while cached.
_PLANNERS: OrderedDict[int, JourneyPlanner] = OrderedDict()
_PLANNERS_LOCK = Lock()
_PLANNERS_KEPT: Final = 8


def planner_for(timetable: Timetable) -> JourneyPlanner:
    """The prepared planner of `timetable`, built on first use and cached."""
    key = id(timetable)
    with _PLANNERS_LOCK:
        planner = _PLANNERS.get(key)
        if planner is not None and planner.timetable is timetable:
            _PLANNERS.move_to_end(key)
            return planner
    planner = JourneyPlanner(timetable)  # outside the lock: a build takes a while
    with _PLANNERS_LOCK:
        _PLANNERS[key] = planner
        _PLANNERS.move_to_end(key)
        while len(_PLANNERS) > _PLANNERS_KEPT:
            _PLANNERS.popitem(last=False)
    return planner


def journeys(
    timetable: Timetable,
    *,
    access: Mapping[int, datetime],
    egress: Mapping[int, int],
    depart_at: datetime,
    max_transfers: int = DEFAULT_MAX_TRANSFERS,
    horizon: timedelta = DEFAULT_HORIZON,
    realtime: Realtime | None = None,
    include_walk_only: bool = False,
) -> list[Journey]:
    """`JourneyPlanner.journeys` on the cached planner of `timetable`."""
    return planner_for(timetable).journeys(
        access=access,
        egress=egress,
        depart_at=depart_at,
        max_transfers=max_transfers,
        horizon=horizon,
        realtime=realtime,
        include_walk_only=include_walk_only,
    )


# Label kinds, per round and stop: how the stop was reached.
_ACCESS: Final = 0
_WALK: Final = 1
_TRIP: Final = 2


class _Search:
    """One query's state: labels per round, the service days, the realtime patterns."""

    def __init__(
        self, planner: JourneyPlanner, start: int, limit: int, realtime: Realtime | None
    ) -> None:
        self.p = planner
        self.start = start
        self.limit = limit
        # A delayed trip can reach further than the timetable's latest time.
        reach = max(
            (max(times[0], default=0) for times in (realtime or {}).values() if times),
            default=0,
        )
        self.days = planner._service_days(start, limit, max(reach, planner.max_trip_seconds))
        self.at_stop, self.day_indices = planner.active_at_stops(
            tuple(active for _, _, active in self.days)
        )
        n = planner.base_patterns
        # Per pattern: the days it runs inside the window, as (day index, day start, skipped
        # ranks or None); computed when the pattern is first scanned.
        self.pattern_days: list[list[list[Any]] | None] = [None] * n
        self.excluded: dict[tuple[int, int], set[int]] = {}
        self.stops = planner.pattern_stops
        self.pickup = planner.pattern_pickup
        self.drop_off = planner.pattern_drop_off
        self.departures = planner.pattern_departures
        self.trip_arrivals = planner.pattern_trip_arrivals
        self.trip_departures = planner.pattern_trip_departures
        self.monotone = planner.pattern_monotone
        self.trips = planner.pattern_trips
        self.extra_at_stop: dict[int, list[tuple[int, int]]] = {}
        self.extra_days: dict[int, int] = {}  # realtime pattern -> its day index
        self.sources: dict[int, int] = {}  # access stop -> epoch second
        self.targets: dict[int, int] = {}  # egress stop -> seconds to the destination
        # Per round: stop -> how it was reached (any means; by vehicle or access).
        self.labels: list[dict[int, tuple[int, ...]]] = []
        self.vehicle_labels: list[dict[int, tuple[int, ...]]] = []
        if realtime:
            self._apply_realtime(realtime)

    def _apply_realtime(self, realtime: Realtime) -> None:
        p = self.p
        day_index = {d: i for i, (d, _, _) in enumerate(self.days)}
        self.stops = list(self.stops)
        self.pickup = list(self.pickup)
        self.drop_off = list(self.drop_off)
        self.departures = list(self.departures)
        self.trip_arrivals = list(self.trip_arrivals)
        self.trip_departures = list(self.trip_departures)
        self.monotone = list(self.monotone)
        self.trips = list(self.trips)
        for (trip, day), times in realtime.items():
            located = p.trip_pattern.get(trip)
            di = day_index.get(day)
            if located is None or di is None:
                continue  # not in the timetable, or its date is outside the window
            pattern, rank = located
            if p.pattern_service[pattern] not in self.days[di][2]:
                continue  # the trip does not run that date: an override cannot add it
            self.excluded.setdefault((pattern, di), set()).add(rank)
            if times is None:
                continue
            arrivals, departures = (tuple(x) for x in times)
            stops = p.pattern_stops[pattern]
            if len(arrivals) != len(stops) or len(departures) != len(stops):
                raise ValueError(f"realtime times of trip {trip} do not match its stops")
            index = len(self.stops)
            self.stops.append(stops)
            self.pickup.append(p.pattern_pickup[pattern])
            self.drop_off.append(p.pattern_drop_off[pattern])
            self.departures.append([[d] for d in departures])
            self.trip_arrivals.append([arrivals])
            self.trip_departures.append([departures])
            self.monotone.append(_monotone(arrivals))
            self.trips.append([trip])
            self.pattern_days.append(None)
            self.extra_days[index] = di
            for position, stop in enumerate(stops[:-1]):
                self.extra_at_stop.setdefault(stop, []).append((index, position))

    def _days_of(self, pattern: int) -> list[list[Any]]:
        """The pattern's days in the window: [day index, day start, skipped ranks or None,
        cover], cover being filled by the scan: cover[rank] is the earliest position where
        this trip or an earlier one of the pattern was boarded in any round so far. Riding
        the trip past it is useless (an earlier round's labels are as early, and bounds only
        shrink), and FIFO makes it so for every later trip too (trip-based routing's R(t))."""
        p = self.p
        out: list[list[Any]] = []
        if pattern >= p.base_patterns:
            di = self.extra_days[pattern]
            out.append([di, self.days[di][1], None, None])
        else:
            first, last = p.pattern_first_departure[pattern], p.pattern_last_arrival[pattern]
            for di in self.day_indices[pattern]:
                off = self.days[di][1]
                if off + first <= self.limit and off + last >= self.start:
                    skipped = self.excluded.get((pattern, di))
                    out.append([di, off, frozenset(skipped) if skipped else None, None])
        self.pattern_days[pattern] = out
        return out

    def run(
        self, sources: dict[int, int], targets: dict[int, int], max_rounds: int
    ) -> list[tuple[int, int]]:
        """Fills the labels; returns the (round, egress stop) of each Pareto journey."""
        p = self.p
        self.sources, self.targets = sources, targets
        n = len(p.timetable.stops)
        arr = [_INF] * n  # earliest arrival, any means, over the rounds so far
        by_vehicle = [_INF] * n  # earliest arrival by vehicle (or access): footpaths start here
        min_egress = min(targets.values())
        best_dest = _INF
        bound = self.limit + 1  # a label must be < bound to be kept
        footpaths = p.footpaths
        labels: list[dict[int, tuple[int, ...]]] = [{}]
        vehicle_labels: list[dict[int, tuple[int, ...]]] = [{}]
        self.labels, self.vehicle_labels = labels, vehicle_labels
        found: list[tuple[int, int]] = []

        lab0, vlab0 = labels[0], vehicle_labels[0]
        for stop, at in sources.items():
            arr[stop] = by_vehicle[stop] = at
            lab0[stop] = vlab0[stop] = (_ACCESS,)
        marked = set(sources)
        for stop, t in sources.items():  # not arr[stop]: a footpath may have lowered it
            for q, w in footpaths[stop]:
                u = t + w
                if u < arr[q] and u < bound:
                    arr[q] = u
                    lab0[q] = (_WALK, stop, w)
                    marked.add(q)

        settled = _INF  # the destination's arrival with the rounds before

        def settle(k: int) -> None:
            # best_dest may already hold this round's arrival (it is lowered during the
            # scan, for pruning): compare with the previous rounds' instead.
            nonlocal best_dest, bound, settled
            best, where = settled, -1
            for stop, seconds in targets.items():
                a = arr[stop]
                if a < _INF and a + seconds < best:
                    best, where = a + seconds, stop
            if where >= 0:
                settled = best_dest = best
                bound = min(self.limit + 1, best_dest - min_egress)
                found.append((k, where))

        settle(0)
        at_stop = self.at_stop
        extra_at_stop = self.extra_at_stop
        pattern_days = self.pattern_days
        all_stops, all_pickup, all_drop = self.stops, self.pickup, self.drop_off
        all_dep, all_trip_arr, all_trip_dep = (
            self.departures,
            self.trip_arrivals,
            self.trip_departures,
        )
        all_monotone = self.monotone
        # ready[stop]: the arrival to board from, for the stops marked in the round before;
        # _INF elsewhere. Boarding where the label is older finds nothing new: that round's
        # successor already boarded there (the stop was marked then) with the same label.
        ready = [_INF] * n
        for k in range(1, max_rounds + 1):
            if not marked:
                break
            # Per pattern: the positions of its stops marked in the round before.
            queue: dict[int, list[int]] = {}
            get = queue.get
            for stop in marked:
                ready[stop] = arr[stop]
                for pattern, position in at_stop[stop]:
                    positions = get(pattern)
                    if positions is None:
                        queue[pattern] = [position]
                    else:
                        positions.append(position)
                if extra_at_stop:
                    for pattern, position in extra_at_stop.get(stop, ()):
                        positions = get(pattern)
                        if positions is None:
                            queue[pattern] = [position]
                        else:
                            positions.append(position)
            previous_marked = marked
            lab: dict[int, tuple[int, ...]] = {}
            vlab: dict[int, tuple[int, ...]] = {}
            labels.append(lab)
            vehicle_labels.append(vlab)
            marked = set()
            reached: list[int] = []  # stops improved by vehicle this round

            for pattern, marks in queue.items():
                days = pattern_days[pattern]
                if days is None:
                    days = self._days_of(pattern)
                if not days:
                    continue
                if len(marks) > 1:
                    marks.sort()
                stops = all_stops[pattern]
                pickup = all_pickup[pattern]
                drop_off = all_drop[pattern]
                deps = all_dep[pattern]
                trip_arr = all_trip_arr[pattern]
                trip_dep = all_trip_dep[pattern]
                monotone = all_monotone[pattern]
                n_pos = len(stops)
                n_trips = len(trip_arr)
                marks.append(n_pos - 1)  # then ride on to the end
                for entry in days:
                    di, off, skipped, cover = entry
                    if cover is None:
                        cover = entry[3] = [n_pos - 1] * n_trips
                    rank = -1  # the trip ridden, its rank in the pattern; -1: none yet
                    board = 0
                    tarr: tuple[int, ...] = ()
                    tdep: tuple[int, ...] = ()
                    done = -1  # positions up to here are dealt with
                    until = -1  # the ridden trip is worth riding up to this position
                    for b in marks:
                        # Ride the current trip from the last position dealt with up to b.
                        if rank >= 0 and done < until:
                            for i in range(done + 1, (b if b < until else until) + 1):
                                t = tarr[i] + off
                                if t >= bound:
                                    if monotone:
                                        until = i  # later stops: later still
                                        break
                                    continue
                                stop = stops[i]
                                if drop_off[i] and t < by_vehicle[stop]:
                                    by_vehicle[stop] = t
                                    label = (_TRIP, pattern, di, rank, board, i)
                                    if stop not in vlab:
                                        reached.append(stop)
                                    vlab[stop] = label
                                    if t < arr[stop]:
                                        arr[stop] = t
                                        lab[stop] = label
                                        marked.add(stop)
                                        if stop in targets and t + targets[stop] < best_dest:
                                            best_dest = t + targets[stop]
                                            bound = min(self.limit + 1, best_dest - min_egress)
                        done = b
                        # Board an earlier trip at b?
                        stop = stops[b]
                        r = ready[stop]
                        if r >= bound or not pickup[b] or (rank >= 0 and r >= tdep[b] + off):
                            continue
                        row = deps[b]
                        j = bisect_left(row, r - off)
                        if skipped is not None:
                            while j in skipped:
                                j += 1
                        if j >= n_trips or (rank >= 0 and j >= rank):
                            continue
                        rank, board = j, b
                        tarr, tdep = trip_arr[j], trip_dep[j]
                        until = cover[j]
                        while j < n_trips and cover[j] > b:
                            cover[j] = b
                            j += 1
            for stop in previous_marked:
                ready[stop] = _INF

            for stop in reached:
                t = by_vehicle[stop]
                for q, w in footpaths[stop]:
                    u = t + w
                    if u < arr[q] and u < bound:
                        arr[q] = u
                        lab[q] = (_WALK, stop, w)
                        marked.add(q)
            settle(k)
        return found

    def journey(self, k: int, target: int) -> Journey:
        """The journey whose last stop is `target`, as reached within `k` rounds, walked back
        through the labels."""
        zone = self.p.timetable.zone
        trips = self.p.timetable.trips

        def instant(t: int) -> datetime:
            return datetime.fromtimestamp(t, zone)

        r, label = self._latest(k, target)
        if label[0] == _WALK:
            _, source, walk = label
            at_target = self._arrival(self.vehicle_labels[r][source], source) + walk
        else:
            at_target = self._arrival(label, target)
        seconds = self.targets[target]
        legs: list[Leg] = [
            EgressLeg(
                stop=target,
                departure=instant(at_target),
                arrival=instant(at_target + seconds),
                seconds=seconds,
            )
        ]
        stop = target
        transit = 0
        while True:
            r, label = self._latest(k, stop)
            if label[0] == _WALK:
                _, source, walk = label
                label = self.vehicle_labels[r][source]
                t = self._arrival(label, source)
                legs.append(WalkLeg(source, stop, instant(t), instant(t + walk), walk))
                stop = source
            if label[0] == _ACCESS:
                legs.append(AccessLeg(stop=stop, arrival=instant(self.sources[stop])))
                break
            _, pattern, di, rank, board, alight = label
            day, off, _ = self.days[di]
            trip = self.trips[pattern][rank]
            board_stop = self.stops[pattern][board]
            legs.append(
                TransitLeg(
                    trip=trip,
                    route=trips[trip].route,
                    service_date=day,
                    board_stop=board_stop,
                    board_position=board,
                    departure=instant(self.trip_departures[pattern][rank][board] + off),
                    alight_stop=stop,
                    alight_position=alight,
                    arrival=instant(self.trip_arrivals[pattern][rank][alight] + off),
                    realtime=pattern >= self.p.base_patterns,
                )
            )
            transit += 1
            stop = board_stop
            k = r - 1  # boarding read the labels of the rounds before
        legs.reverse()
        return Journey(
            legs=tuple(legs),
            departure=legs[0].arrival,
            arrival=legs[-1].arrival,
            transit_legs=transit,
        )

    def _latest(self, k: int, stop: int) -> tuple[int, tuple[int, ...]]:
        """The label `stop` had after round `k`: the last one stored in rounds 0..k."""
        labels = self.labels
        while stop not in labels[k]:
            k -= 1
        return k, labels[k][stop]

    def _arrival(self, label: tuple[int, ...], stop: int) -> int:
        """Epoch second of an access or vehicle label's arrival at `stop`."""
        if label[0] == _ACCESS:
            return self.sources[stop]
        _, pattern, di, rank, _, alight = label
        return self.trip_arrivals[pattern][rank][alight] + self.days[di][1]
