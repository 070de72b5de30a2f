"""The transit service the API calls: stops near a point or in a box, a stop by id, its
departures, the alerts that apply.

Each process keeps the active version of every enabled feed as an in-memory `Timetable`
(`app/transit/timetable.py`), rebuilt when the feed's active version changes. Which versions
are active is read at most every `refresh_seconds`: a search after a reload sees the new
version within that time, and never a mix (a timetable is built from one version's rows).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.platform.errors import InvalidInput, NotFound
from app.transit import repository
from app.transit.departures import Departure, ExpectedLookup, departures, platforms_of
from app.transit.realtime import Alert, RealtimeSnapshot
from app.transit.realtime_store import RealtimeStore
from app.transit.realtime_times import RealtimeView
from app.transit.timetable import Timetable, TransitStop
from geo.areas import BBox, Near

log = logging.getLogger(__name__)


class UnknownStop(NotFound):
    code = "STOP_NOT_FOUND"


# Any instant can be asked for (answers are testable against a feed of years ago), within
# reason: the calendar arithmetic of a year 1 or 9999 overflows.
MAX_YEARS_AWAY = 100


def check_instant(at: datetime, now: datetime, what: str) -> None:
    if abs(at - now) > timedelta(days=365 * MAX_YEARS_AWAY):
        raise InvalidInput(
            f"{what} must be within {MAX_YEARS_AWAY} years of now", code="INVALID_TIME"
        )


@dataclass(frozen=True, slots=True)
class StopRef:
    """A stop as the spatial index found it: its feed, its GTFS id, how far (metres; None
    for a box)."""

    feed: str
    stop_id: str
    distance_meters: float | None


class TimetableSource(Protocol):
    """Where timetables and the spatial index of stops come from (the repository)."""

    async def active_versions(self) -> dict[str, str]:
        """Enabled feeds with a loaded version: slug -> version."""
        ...

    async def timetable(self, slug: str) -> Timetable | None: ...

    async def stops_near(self, near: Near, first: int) -> Sequence[StopRef]: ...

    async def stops_within(self, bbox: BBox, first: int) -> Sequence[StopRef]: ...


class DatabaseSource:
    """The loaded feeds in PostgreSQL (app/transit/repository.py): a `TimetableSource`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def active_versions(self) -> dict[str, str]:
        async with self.sessions() as session:
            found = await repository.active_versions(session)
        return {slug: str(version) for slug, version in found.items()}

    async def timetable(self, slug: str) -> Timetable | None:
        return await repository.active_timetable(self.sessions, slug)

    async def stops_near(self, near: Near, first: int) -> Sequence[StopRef]:
        async with self.sessions() as session:
            found = await repository.stops_near(
                session, near.lat, near.lon, near.radius_meters, first
            )
        return [StopRef(n.feed, n.stop.stop_id, n.distance_m) for n in found]

    async def stops_within(self, bbox: BBox, first: int) -> Sequence[StopRef]:
        box = (bbox.min_lon, bbox.min_lat, bbox.max_lon, bbox.max_lat)
        async with self.sessions() as session:
            found = await repository.stops_within(session, box, first)
        return [StopRef(n.feed, n.stop.stop_id, None) for n in found]


@dataclass(frozen=True, slots=True)
class StopHit:
    stop: TransitStop
    timetable: Timetable
    distance_meters: float | None


@dataclass(eq=False)
class TransitService:
    source: TimetableSource
    _: KW_ONLY
    refresh_seconds: float = 5.0
    horizon_days: int = 3
    live: RealtimeStore | None = None
    clock: Callable[[], float] = time.monotonic
    # The live view of each feed, kept while its timetable and snapshot are the same.
    _views: dict[str, tuple[Timetable, RealtimeSnapshot, RealtimeView]] = field(
        default_factory=dict, init=False, repr=False
    )
    _checked_at: float = field(default=float("-inf"), init=False, repr=False)
    _timetables: dict[str, Timetable] = field(default_factory=dict, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def forget(self) -> None:
        """Drop what this process holds (tests; a new process starts so)."""
        self._timetables = {}
        self._views = {}
        self._checked_at = float("-inf")

    async def timetables(self) -> dict[str, Timetable]:
        """Every enabled feed's active timetable, rebuilt where its version changed.

        While one request rebuilds, the others are answered from the timetables held (a
        reload is seen once built, never half). A feed that fails to build keeps its last
        good timetable (or stays out) and is retried after `refresh_seconds`, logged; one
        bad feed never fails the others' answers."""
        if self.clock() - self._checked_at < self.refresh_seconds:
            return self._timetables
        if self._lock.locked() and self._timetables:
            return self._timetables
        async with self._lock:
            if self.clock() - self._checked_at < self.refresh_seconds:
                return self._timetables
            try:
                versions = await self.source.active_versions()
            except Exception:
                log.exception("transit: reading the feeds' active versions failed")
                self._checked_at = self.clock()
                return self._timetables
            current: dict[str, Timetable] = {}
            for slug, version in versions.items():
                kept = self._timetables.get(slug)
                if kept is not None and kept.version == version:
                    current[slug] = kept
                    continue
                try:
                    built = await self.source.timetable(slug)
                except Exception:
                    log.exception("transit: building the timetable of %s failed", slug)
                    built = kept
                if built is not None:
                    current[slug] = built
            self._timetables = current
            self._checked_at = self.clock()
            return current

    async def stop(self, stop_id: str) -> StopHit:
        slug, sep, _ = stop_id.partition(":")
        if not sep:
            raise InvalidInput(
                f"a stop id is FEED:STOP_ID (as `stops` gives it); got {stop_id!r}",
                code="INVALID_STOP_ID",
            )
        timetable = (await self.timetables()).get(slug)
        stop = timetable.stop(stop_id) if timetable is not None else None
        if timetable is None or stop is None:
            raise UnknownStop(f"no stop {stop_id!r}; find stops with `stops(near:)`")
        return StopHit(stop, timetable, None)

    async def stops(self, *, near: Near | None, bbox: BBox | None, first: int) -> list[StopHit]:
        """Stops of every enabled feed, nearest first for `near`, by feed and name in a box."""
        timetables = await self.timetables()
        if near is not None:
            refs = await self.source.stops_near(near, first)
        elif bbox is not None:
            refs = await self.source.stops_within(bbox, first)
        else:
            raise InvalidInput("give `near` or `within`", code="INVALID_AREA")
        hits = []
        for ref in refs:
            timetable = timetables.get(ref.feed)
            if timetable is None:  # a feed disabled or reloaded since: its stops drop out
                continue
            index = timetable.stop_by_gtfs_id.get(ref.stop_id)
            if index is not None:
                hits.append(StopHit(timetable.stops[index], timetable, ref.distance_meters))
        return hits

    async def realtime_view(self, timetable: Timetable) -> RealtimeView | None:
        """The feed's live data over its timetable (app/transit/realtime_times.py), or None
        when there is none fresh (the timetable stands)."""
        if self.live is None:
            return None
        snapshot = await self.live.snapshot(timetable.feed)
        if snapshot is None:
            return None
        kept = self._views.get(timetable.feed)
        if kept is not None and kept[0] is timetable and kept[1] is snapshot:
            return kept[2]
        view = RealtimeView(timetable, snapshot)
        self._views[timetable.feed] = (timetable, snapshot, view)
        return view

    async def stop_alerts(self, hit: StopHit, at: datetime) -> list[Alert]:
        """The live alerts in force at `at` that inform the stop, its station or its platforms
        (an alert on a route or a trip is a departure's, not the stop's)."""
        view = await self.realtime_view(hit.timetable)
        if view is None:
            return []
        stop = hit.stop
        ids = {stop.gtfs_id} | {p.gtfs_id for p in platforms_of(hit.timetable, stop)}
        if stop.parent_station:
            ids.add(stop.parent_station)
        return [
            a
            for a in view.alerts(at.timestamp(), stop_ids=ids)
            if any(e.stop_id is not None for e in a.informed_entities)
        ]

    async def departure_alerts(self, departure: Departure) -> list[Alert]:
        """The live alerts in force when it departs that inform its route, its trip, or its
        stop or the stop's station (alone or with the route)."""
        view = await self.realtime_view(departure.timetable)
        if view is None:
            return []
        stop = departure.stop
        return view.alerts(
            departure.sort_time.timestamp(),
            stop_ids=(stop.gtfs_id, stop.parent_station)
            if stop.parent_station
            else (stop.gtfs_id,),
            route_id=departure.route.gtfs_id,
            trip_id=departure.trip.gtfs_id,
            service_date=departure.service_date,
        )

    async def departures(self, hit: StopHit, *, after: datetime, first: int) -> list[Departure]:
        check_instant(after, datetime.now(UTC), "from")
        view = await self.realtime_view(hit.timetable)
        expected: ExpectedLookup | None = view.expected if view is not None else None
        return departures(
            hit.timetable,
            hit.stop,
            after=after,
            first=first,
            horizon_days=self.horizon_days,
            expected=expected,
        )
