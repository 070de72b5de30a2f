"""One RAPTOR query's scan (`app/transit/raptor.py` prepares the timetable and answers the
query through it): the labels per round and stop, the service days of the window, the trips
with realtime times taken out of their patterns and scanned as patterns of their own, then
each Pareto journey read back from the labels."""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Final

from app.transit.raptor_journey import (
    AccessLeg,
    EgressLeg,
    Journey,
    Leg,
    Realtime,
    TransitLeg,
    WalkLeg,
)

if TYPE_CHECKING:
    from app.transit.raptor import JourneyPlanner

# Larger than any epoch second a query can produce; an int keeps comparisons int-only.
INF: Final = 1 << 62


def monotone(times: tuple[int, ...]) -> bool:
    return all(a <= b for a, b in pairwise(times))


# Label kinds, per round and stop: how the stop was reached.
_ACCESS: Final = 0
_WALK: Final = 1
_TRIP: Final = 2


class Search:
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
            self.monotone.append(monotone(arrivals))
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
        arr = [INF] * n  # earliest arrival, any means, over the rounds so far
        by_vehicle = [INF] * n  # earliest arrival by vehicle (or access): footpaths start here
        min_egress = min(targets.values())
        best_dest = INF
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

        def walk(stop: int, t: int, lab: dict[int, tuple[int, ...]]) -> None:
            # The footpaths from a stop reached at t: a stop they reach sooner is labelled
            # and marked.
            for q, w in footpaths[stop]:
                u = t + w
                if u < arr[q] and u < bound:
                    arr[q] = u
                    lab[q] = (_WALK, stop, w)
                    marked.add(q)

        for stop, t in sources.items():  # not arr[stop]: a footpath may have lowered it
            walk(stop, t, lab0)

        settled = INF  # the destination's arrival with the rounds before

        def settle(k: int) -> None:
            # best_dest may already hold this round's arrival (it is lowered during the
            # scan, for pruning): compare with the previous rounds' instead.
            nonlocal best_dest, bound, settled
            best, where = settled, -1
            for stop, seconds in targets.items():
                a = arr[stop]
                if a < INF and a + seconds < best:
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
        # INF elsewhere. Boarding where the label is older finds nothing new: that round's
        # successor already boarded there (the stop was marked then) with the same label.
        ready = [INF] * n
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
                ready[stop] = INF

            for stop in reached:
                walk(stop, by_vehicle[stop], lab)
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
