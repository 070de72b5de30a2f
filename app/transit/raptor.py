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

The modules: this one prepares a timetable (`JourneyPlanner`) and answers a query through
the scan of `app/transit/raptor_search.py`; the answer's types are `app/transit/raptor_journey.py`.

Arrive-by queries (latest departure for a given arrival) are not implemented: that needs the
reverse search (scanning patterns backwards from the egress stops); see docs/transit.md.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from threading import Lock
from typing import Final

from app.transit.raptor_journey import Journey, Realtime
from app.transit.raptor_search import INF, Search, monotone
from app.transit.timetable import Timetable

DEFAULT_MAX_TRANSFERS: Final = 4
DEFAULT_HORIZON: Final = timedelta(hours=6)


# ---------------------------------------------------------------------------- preparation


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
        self.pattern_monotone.append(all(monotone(a) for a in arrivals))
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
            if at <= limit and at < sources.get(stop, INF):
                sources[stop] = at
        targets: dict[int, int] = {}
        for stop, seconds in egress.items():
            if not 0 <= stop < n_stops:
                raise ValueError(f"egress stop {stop} is not in the timetable")
            if seconds < 0:
                raise ValueError("egress seconds must be >= 0")
            targets[stop] = min(int(seconds), targets.get(stop, INF))
        if not sources or not targets:
            return []
        search = Search(self, start, limit, realtime)
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
