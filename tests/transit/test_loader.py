"""Loading feeds into PostGIS (app/transit/loader.py), reading them back
(app/transit/repository.py) and the `mobility transit` command, on the real feeds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.runtime import Runtime
from app.transit import loader
from app.transit.feeds import TransitFeeds
from app.transit.loader import FeedLoadFailed
from app.transit.repository import (
    active_timetable,
    active_versions,
    read_version_rows,
    stops_near,
    stops_within,
)
from geo.distance import geodesic_meters
from tests.app.test_cli import mobility
from tests.transit.gtfs_support import (
    BASE,
    clear_transit,
    make_zip,
    raw_counts,
    raw_rows,
    real_feed,
    rewrite_zip,
    to_csv,
)


@pytest.fixture
async def feeds(runtime: Runtime) -> AsyncIterator[TransitFeeds]:
    await clear_transit(runtime)
    yield TransitFeeds(runtime.sessions, runtime.settings)
    await clear_transit(runtime)


async def _table_counts(runtime: Runtime, version: int) -> dict[str, int]:
    out: dict[str, int] = {}
    async with runtime.sessions() as session:
        for table in (
            "agencies",
            "stops",
            "routes",
            "trips",
            "stop_times",
            "calendars",
            "calendar_dates",
        ):
            out[table] = int(
                await session.scalar(
                    text(f"SELECT count(*) FROM transit_{table} WHERE version_id = :v"),
                    {"v": version},
                )
                or 0
            )
    return out


@pytest.mark.parametrize("name", ["caltrain", "cairns"])
async def test_real_feeds_load_and_read_back(
    runtime: Runtime, feeds: TransitFeeds, name: str
) -> None:
    path = real_feed(name)
    await feeds.add(name, str(path), allow_path=True)
    result = await feeds.sync(name)
    assert not result.unchanged and result.version_id is not None
    expected = raw_counts(path, frequencies=False)
    assert await _table_counts(runtime, result.version_id) == expected
    # Each stop's point is its coordinates.
    async with runtime.sessions() as session:
        far = await session.scalar(
            text(
                "SELECT count(*) FROM transit_stops WHERE version_id = :v "
                "AND (abs(ST_X(geom) - lon) > 1e-9 OR abs(ST_Y(geom) - lat) > 1e-9)"
            ),
            {"v": result.version_id},
        )
        assert far == 0
        assert (await active_versions(session)).get(name) == result.version_id

    timetable = await active_timetable(runtime.sessions, name)
    assert timetable is not None and timetable.version == str(result.version_id)
    assert len(timetable.stops) == expected["stops"]
    assert len(timetable.trips) == expected["trips"]  # neither feed has frequencies
    assert sum(len(t.stops) for t in timetable.trips) == expected["stop_times"]
    assert timetable.stop(f"{name}:{raw_rows(path, 'stops.txt')[0]['stop_id']}") is not None
    assert sum(len(w) for w in timetable.footpaths.values()) == result.footpaths > 0

    again = await feeds.sync(name)
    assert again.unchanged and again.version_id == result.version_id


async def test_the_database_footpaths_equal_the_zip_ones(
    runtime: Runtime, feeds: TransitFeeds
) -> None:
    # PostGIS's ST_DWithin on the spheroid and the reader's pure-Python pairs give the same
    # footpaths (the timetable the journey planner builds from either is the same).
    from app.transit.gtfs import timetable_from_zip  # the pure path, beside the loaded one

    path = real_feed("caltrain")
    await feeds.add("caltrain", str(path), allow_path=True)
    await feeds.sync("caltrain")
    loaded = await active_timetable(runtime.sessions, "caltrain")
    assert loaded is not None
    pure = timetable_from_zip(
        path,
        feed="caltrain",
        footpath_radius_m=runtime.settings.transit_footpath_radius_m,
        walking_speed_kmh=runtime.settings.walking_speed_kmh,
    )

    def walks(t: object) -> set[tuple[str, str, int]]:
        stops = t.stops  # type: ignore[attr-defined]
        return {
            (stops[a].gtfs_id, stops[b].gtfs_id, s)
            for a, ws in t.footpaths.items()  # type: ignore[attr-defined]
            for b, s in ws
        }

    assert walks(loaded) == walks(pure)


def _version_two(path: Path) -> tuple[bytes, int]:
    """Cairns with every stop renamed and its last trip removed: (the zip, its stop times)."""
    stops = raw_rows(path, "stops.txt")
    for s in stops:
        s["stop_name"] = s["stop_name"] + " (v2)"
    times = raw_rows(path, "stop_times.txt")
    last_trip = times[-1]["trip_id"]
    kept = [r for r in times if r["trip_id"] != last_trip]
    return (
        rewrite_zip(path, {"stops.txt": to_csv(stops), "stop_times.txt": to_csv(kept)}),
        len(kept),
    )


async def test_a_reload_is_seen_whole_or_not_at_all(
    runtime: Runtime, feeds: TransitFeeds, tmp_path: Path
) -> None:
    path = real_feed("cairns")
    v1_times = len(raw_rows(path, "stop_times.txt"))
    data, v2_times = _version_two(path)
    v2_path = tmp_path / "cairns-v2.zip"
    v2_path.write_bytes(data)
    await feeds.add("cairns", str(path), allow_path=True)
    first = await feeds.sync("cairns")

    seen: list[tuple[int, int, bool]] = []

    async def read_until(done: asyncio.Event) -> None:
        while True:
            finished = done.is_set()
            async with runtime.sessions() as session:
                rows = await read_version_rows(session, "cairns")
            assert rows is not None
            renamed = {s.name.endswith(" (v2)") for s in rows.stops}
            assert len(renamed) == 1  # never some stops of each version
            seen.append((rows.version, len(rows.stop_times), renamed.pop()))
            if finished:
                return

    done = asyncio.Event()
    reader = asyncio.create_task(read_until(done))
    await feeds.add("cairns", str(v2_path), allow_path=True)
    second = await feeds.sync("cairns")
    done.set()
    await reader
    assert second.version_id != first.version_id
    expected = {(first.version_id, v1_times, False), (second.version_id, v2_times, True)}
    assert set(seen) <= expected
    assert len(seen) >= 2  # at least one read while the load ran
    assert seen[-1] == (second.version_id, v2_times, True)
    # The old version is gone, rows and all (stop times have no foreign key to cascade).
    assert await _table_counts(runtime, first.version_id or 0) == dict.fromkeys(
        ("agencies", "stops", "routes", "trips", "stop_times", "calendars", "calendar_dates"), 0
    )


async def test_a_failed_load_keeps_the_previous_version(
    runtime: Runtime, feeds: TransitFeeds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = real_feed("cairns")
    await feeds.add("cairns", str(path), allow_path=True)
    first = await feeds.sync("cairns")
    data, _ = _version_two(path)
    v2_path = tmp_path / "cairns-v2.zip"
    v2_path.write_bytes(data)
    await feeds.add("cairns", str(v2_path), allow_path=True)

    def broken(*args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("the disk is full")

    # Fails after every table of the new version was copied, before the switch.
    monkeypatch.setattr(loader, "footpath_rows", broken)
    with pytest.raises(FeedLoadFailed) as failed:
        await feeds.sync("cairns")
    assert "previous version stays active" in failed.value.message
    assert "disk" not in failed.value.message  # nothing internal
    monkeypatch.undo()

    summary = await feeds.get("cairns")
    assert summary is not None and summary.active_version == first.version_id
    assert summary.last_error and "RuntimeError" in summary.last_error
    async with runtime.sessions() as session:
        versions = (await session.execute(text("SELECT id FROM transit_feed_versions"))).all()
        orphans = await session.scalar(
            text("SELECT count(*) FROM transit_stop_times WHERE version_id <> :v"),
            {"v": first.version_id},
        )
    assert [v[0] for v in versions] == [first.version_id] and orphans == 0
    timetable = await active_timetable(runtime.sessions, "cairns")
    assert timetable is not None and not timetable.stops[0].name.endswith("(v2)")

    # A feed with a fatal finding: not loaded either, the reason recorded.
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    await feeds.add("cairns", str(tmp_path / "broken.zip"), allow_path=True)
    with pytest.raises(FeedLoadFailed):
        await feeds.sync("cairns")
    summary = await feeds.get("cairns")
    assert summary is not None and summary.active_version == first.version_id
    assert summary.last_error and "not a zip" in summary.last_error

    # Fixed, it loads; the error is cleared.
    await feeds.add("cairns", str(v2_path), allow_path=True)
    third = await feeds.sync("cairns")
    summary = await feeds.get("cairns")
    assert summary is not None and summary.active_version == third.version_id
    assert summary.last_error is None


async def test_stops_near_and_within(runtime: Runtime, feeds: TransitFeeds) -> None:
    for name in ("caltrain", "cairns"):
        await feeds.add(name, str(real_feed(name)), allow_path=True)
        await feeds.sync(name)
    raw = raw_rows(real_feed("caltrain"), "stops.txt")
    # Near San Francisco's Caltrain station.
    lat, lon, radius = 37.7766, -122.3947, 3000.0
    expected = sorted(
        (
            geodesic_meters(lat, lon, float(r["stop_lat"]), float(r["stop_lon"])),
            "caltrain:" + r["stop_id"],
        )
        for r in raw
        if (r["location_type"] or "0") in ("0", "1")
    )
    expected = [e for e in expected if e[0] <= radius]
    assert len(expected) >= 3
    async with runtime.sessions() as session:
        found = await stops_near(session, lat, lon, radius, 50)
        assert [s.id for s in found] == [e[1] for e in expected]
        for stop, (meters, _) in zip(found, expected, strict=True):
            assert stop.distance_m == pytest.approx(meters, abs=0.01)
        assert [s.id for s in await stops_near(session, lat, lon, radius, 2)] == [
            e[1] for e in expected[:2]
        ]
        # Cairns, by a box around its stops: every stop of the feed, none of Caltrain's.
        cairns = raw_rows(real_feed("cairns"), "stops.txt")
        lats = [float(r["stop_lat"]) for r in cairns]
        lons = [float(r["stop_lon"]) for r in cairns]
        box = (min(lons), min(lats), max(lons), max(lats))
        within = await stops_within(session, box, 500)
        assert sorted(s.id for s in within) == sorted("cairns:" + r["stop_id"] for r in cairns)

    # A disabled feed's stops are not found.
    async with runtime.engine.begin() as conn:
        await conn.execute(text("UPDATE transit_feeds SET enabled = false WHERE slug='caltrain'"))
    async with runtime.sessions() as session:
        assert await stops_near(session, lat, lon, radius, 50) == []


async def test_the_transit_command_end_to_end(
    runtime: Runtime, feeds: TransitFeeds, tmp_path: Path
) -> None:
    path = real_feed("caltrain")
    stops = len(raw_rows(path, "stops.txt"))
    times = len(raw_rows(path, "stop_times.txt"))
    code, out, err = await mobility(
        runtime, "transit", "add", "caltrain", "--gtfs", str(path), "--name", "Caltrain"
    )
    assert code == 0, err + out
    assert "added transit feed caltrain (Caltrain)" in out
    assert f"{stops:,} stops" in out and f"{times:,} stop times" in out
    assert "EXTENSION_FILE" in out and "findings:" in out

    code, out, err = await mobility(runtime, "transit", "sync", "caltrain")
    assert code == 0 and "unchanged" in out and "not reloaded" in out

    code, out, err = await mobility(runtime, "transit", "list")
    assert code == 0 and "caltrain" in out and f"{times:,}" in out

    code, out, err = await mobility(runtime, "transit", "sync", "nowhere")
    assert code == 1 and "unknown transit feed" in err

    code, out, err = await mobility(runtime, "transit", "add", "Bad:Slug", "--gtfs", str(path))
    assert code == 2 and "INVALID_TRANSIT_FEED_ID" in err

    (tmp_path / "empty.zip").write_bytes(b"")
    code, out, err = await mobility(
        runtime, "transit", "add", "empty", "--gtfs", str(tmp_path / "empty.zip")
    )
    assert code == 3 and "NOT_A_ZIP" in out
    async with runtime.sessions() as session:
        assert (await active_versions(session)).get("caltrain") is not None
        assert (await active_versions(session)).get("empty") is None

    code, out, err = await mobility(runtime, "transit", "remove", "caltrain")
    assert code == 0
    async with runtime.sessions() as session:
        left = await session.scalar(text("SELECT count(*) FROM transit_stop_times"))
        assert left == 0
        assert (await active_versions(session)).get("caltrain") is None


@pytest.mark.parametrize("short_trip", [False, True])
async def test_stop_times_copied_while_read(
    runtime: Runtime, feeds: TransitFeeds, tmp_path: Path, short_trip: bool
) -> None:
    # The loader copies stop times while the reader still reads (as COPY text: headsigns
    # with what it escapes). With a short trip the reader learns only at the end that trip
    # ONE has a single stop time (it is dropped): what was copied ahead must go, and the trip.
    headsigns = ["North\\bound", "via\ttab", "two\nlines"]
    stop_times = (
        "trip_id,arrival_time,departure_time,stop_id,stop_sequence,stop_headsign\n"
        + "".join(
            f'T1,08:0{i}:00,08:0{i}:00,S{i + 1},{i + 1},"{h}"\n' for i, h in enumerate(headsigns)
        )
        + ("ONE,09:00:00,09:00:00,S1,1,\n" if short_trip else "")
    )
    files: dict[str, str | bytes] = {
        **BASE,
        "trips.txt": BASE["trips.txt"] + "R1,WK,ONE\n" * short_trip,
        "stop_times.txt": stop_times,
    }
    (tmp_path / "small.zip").write_bytes(make_zip(files))
    await feeds.add("small", str(tmp_path / "small.zip"), allow_path=True)
    result = await feeds.sync("small")
    assert result.version_id is not None
    errors = {(f.code, f.count) for f in result.findings if f.severity == "error"}
    assert errors == ({("TRIP_TOO_SHORT", 1)} if short_trip else set())
    async with runtime.sessions() as session:
        rows = await read_version_rows(session, "small")
    assert rows is not None
    assert [t.trip_id for t in rows.trips] == ["T1"]
    by_sequence = sorted(rows.stop_times, key=lambda s: s.stop_sequence)
    assert [(s.trip_id, s.headsign) for s in by_sequence] == [("T1", h) for h in headsigns]
    counts = await _table_counts(runtime, result.version_id)
    assert (counts["trips"], counts["stop_times"]) == (1, 3)
