"""The transit service the API calls: stops near a point or in a box, a stop by id, its
departures, the alerts that apply.

Each process keeps the active version of every enabled feed as an in-memory `Timetable`
(`app/transit/timetable.py`), rebuilt when the feed's active version changes. Which versions
are active is read at most every `refresh_seconds`: a search after a reload sees the new
version within that time, and never a mix (a timetable is built from one version's rows).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.platform.errors import InvalidInput, NotFound
from app.transit.departures import Departure, ExpectedLookup, departures
from app.transit.timetable import Timetable, TransitStop
from geo.areas import BBox, Near


class UnknownStop(NotFound):
    code = "STOP_NOT_FOUND"


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


RealtimeLookup = Callable[[Timetable], ExpectedLookup | None]


@dataclass(frozen=True, slots=True)
class StopHit:
    stop: TransitStop
    timetable: Timetable
    distance_meters: float | None


class TransitService:
    def __init__(
        self,
        source: TimetableSource,
        *,
        refresh_seconds: float = 5.0,
        horizon_days: int = 3,
        realtime: RealtimeLookup | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.refresh_seconds = refresh_seconds
        self.horizon_days = horizon_days
        self.realtime = realtime
        self.clock = clock
        self._versions: dict[str, str] = {}
        self._checked_at = float("-inf")
        self._timetables: dict[str, Timetable] = {}
        self._lock = asyncio.Lock()

    async def timetables(self) -> dict[str, Timetable]:
        """Every enabled feed's active timetable, rebuilt where its version changed."""
        if self.clock() - self._checked_at < self.refresh_seconds:
            return self._timetables
        async with self._lock:
            if self.clock() - self._checked_at < self.refresh_seconds:
                return self._timetables
            versions = await self.source.active_versions()
            current: dict[str, Timetable] = {}
            for slug, version in versions.items():
                kept = self._timetables.get(slug)
                if kept is not None and kept.version == version:
                    current[slug] = kept
                    continue
                built = await self.source.timetable(slug)
                if built is not None:
                    current[slug] = built
            self._timetables = current
            self._versions = versions
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

    def departures(self, hit: StopHit, *, after: datetime, first: int) -> list[Departure]:
        expected = self.realtime(hit.timetable) if self.realtime is not None else None
        return departures(
            hit.timetable,
            hit.stop,
            after=after,
            first=first,
            horizon_days=self.horizon_days,
            expected=expected,
        )
