"""The transit service's timetables per process: a feed that fails to build keeps its last
good timetable and never fails the others' answers; a rebuild is retried after the refresh."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from app.transit.gtfs import timetable_from_zip
from app.transit.service import StopRef, TransitService
from app.transit.timetable import Timetable
from geo.areas import BBox, Near
from providers.demo.transit import demo_gtfs


class FlakySource:
    def __init__(self, good: Timetable) -> None:
        self.good = good
        self.versions = {"good": good.version, "bad": "1"}
        self.builds: list[str] = []
        self.fail_versions = False

    async def active_versions(self) -> dict[str, str]:
        if self.fail_versions:
            raise ConnectionError("database gone")
        return dict(self.versions)

    async def timetable(self, slug: str) -> Timetable | None:
        self.builds.append(slug)
        if slug == "bad":
            raise MemoryError("a feed too large")
        return self.good

    async def stops_near(self, near: Near, first: int) -> Sequence[StopRef]:
        return [StopRef("good", s.gtfs_id, 0.0) for s in self.good.stops[:first]]

    async def stops_within(self, bbox: BBox, first: int) -> Sequence[StopRef]:
        return []


async def test_a_feed_that_fails_to_build_does_not_break_the_others(tmp_path: Path) -> None:
    path = tmp_path / "demo.zip"
    path.write_bytes(demo_gtfs(date(2026, 12, 7)))
    good = timetable_from_zip(path, feed="good")
    source = FlakySource(good)
    now = [0.0]
    service = TransitService(source, refresh_seconds=5, clock=lambda: now[0])

    held = await service.timetables()
    assert set(held) == {"good"} and source.builds == ["good", "bad"]
    hits = await service.stops(near=Near(52.52, 13.41, 500), bbox=None, first=3)
    assert [h.stop.gtfs_id for h in hits] == [s.gtfs_id for s in good.stops[:3]]

    # Within the refresh: nothing is rebuilt. After it: only the failing feed is tried again.
    await service.timetables()
    assert source.builds == ["good", "bad"]
    now[0] = 6.0
    await service.timetables()
    assert source.builds == ["good", "bad", "bad"]

    # The database unreadable: the timetables held keep answering.
    source.fail_versions = True
    now[0] = 12.0
    assert set(await service.timetables()) == {"good"}
