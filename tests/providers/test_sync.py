"""The sync pipeline end to end: real HTTP feeds -> PostGIS -> Redis GEO index -> delta channel."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from app.runtime import Runtime
from app.vehicle_index import VehicleDelta
from providers.simulators.feed_server import FeedServer
from tests.helpers import (
    add_conformance_provider,
    add_provider,
    close_pubsub,
    member_names,
    raw,
    scooter,
    serve_documents,
    synthetic_scooter_feeds,
)

CONFORMANCE_FOLDERS = [
    "getaround-stavanger",
    "tier-wolfsburg",
    "check-almere",
    "lillestrom-bysykkel",
    "tier-oslo",
    "oslo-bysykkel",
]


def _files(folder: str) -> set[str]:
    from tests.helpers import feed_dir

    return {p.stem for p in feed_dir(folder).glob("*.json")}


def expected_counts(folder: str) -> dict[str, int]:
    """What should land in PostGIS, computed from the raw files (not from our adapter)."""
    files = _files(folder)
    station_ids: set[str] = set()
    if "station_information" in files:
        station_ids = {
            s["station_id"] for s in raw(folder, "station_information")["data"]["stations"]
        }
    type_ids: set[str] = set()
    if "vehicle_types" in files:
        type_ids = {
            t["vehicle_type_id"] for t in raw(folder, "vehicle_types")["data"]["vehicle_types"]
        }
    vehicles: list[dict[str, Any]] = []
    if "vehicle_status" in files:
        vehicles = raw(folder, "vehicle_status")["data"]["vehicles"]
    elif "free_bike_status" in files:
        vehicles = raw(folder, "free_bike_status")["data"]["bikes"]

    def usable(v: dict[str, Any]) -> bool:
        # Located is enough: a type the feed does not describe is no reason to lose a vehicle.
        located = (
            "lat" in v and "lon" in v and abs(float(v["lat"])) <= 90 and abs(float(v["lon"])) <= 180
        )
        return located or v.get("station_id") in station_ids

    named = {v["vehicle_type_id"] for v in vehicles if usable(v) and "vehicle_type_id" in v}
    zones = 0
    if "geofencing_zones" in files:
        features = raw(folder, "geofencing_zones")["data"]["geofencing_zones"]["features"]
        zones = sum(1 for f in features if f.get("geometry"))
    plans = 0
    if "system_pricing_plans" in files:
        plans = len(raw(folder, "system_pricing_plans")["data"]["plans"])
    return {
        "vehicles": sum(1 for v in vehicles if usable(v)),
        "stations": len(station_ids),
        "zones": zones,
        # Described types, plus one placeholder per undescribed id the vehicles name.
        "vehicle_types": len(type_ids | named) if type_ids else 0,
        "pricing_plans": plans,
    }


async def table_counts(runtime: Runtime, provider_id: str) -> dict[str, int]:
    counts = {}
    async with runtime.sessions() as session:
        for table, key in (
            ("vehicles", "vehicles"),
            ("stations", "stations"),
            ("geofencing_zones", "zones"),
            ("vehicle_types", "vehicle_types"),
            ("pricing_plans", "pricing_plans"),
        ):
            counts[key] = (
                await session.execute(
                    text(f"SELECT count(*) FROM {table} WHERE provider_id = :p"), {"p": provider_id}
                )
            ).scalar_one()
    return counts


@pytest.mark.parametrize("folder", CONFORMANCE_FOLDERS)
async def test_conformance_feed_is_ingested_end_to_end(
    runtime: Runtime, feed_server: tuple[FeedServer, str], folder: str
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, folder)

    report = await runtime.sync.sync(slug)

    assert report.ok, report.error
    expected = expected_counts(folder)
    assert await table_counts(runtime, slug) == expected
    assert report.counts["vehicles"]["created"] == expected["vehicles"]
    # Everything available is in the Redis index, and nothing else is.
    async with runtime.sessions() as session:
        available = (
            await session.execute(
                text(
                    "SELECT count(*) FROM vehicles WHERE provider_id = :p "
                    "AND NOT is_reserved AND NOT is_disabled"
                ),
                {"p": slug},
            )
        ).scalar_one()
    assert await runtime.redis.zcard(runtime.keys.vehicle_geo) == available


async def test_known_facts_of_real_feeds(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    for folder in ("getaround-stavanger", "tier-wolfsburg", "check-almere"):
        await add_conformance_provider(runtime, server, base_url, folder)
        report = await runtime.sync.sync(folder)
        assert report.ok, report.error

    getaround = await table_counts(runtime, "getaround-stavanger")
    assert (getaround["vehicles"], getaround["vehicle_types"], getaround["pricing_plans"]) == (
        40,
        4,
        40,
    )
    assert (await table_counts(runtime, "tier-wolfsburg"))["vehicles"] == 840
    assert (await table_counts(runtime, "check-almere"))["zones"] == 14
    async with runtime.sessions() as session:
        findings = (
            await session.execute(
                text(
                    "SELECT findings FROM sync_runs WHERE provider_id = 'check-almere' "
                    "AND status = 'succeeded'"
                )
            )
        ).scalar_one()
    raw_features = raw("check-almere", "geofencing_zones")["data"]["geofencing_zones"]["features"]
    without_geometry = sum(1 for f in raw_features if f.get("geometry") is None)
    missing = [f for f in findings if f["code"] == "GEOMETRY_MISSING"]
    assert (len(raw_features), without_geometry, len(missing)) == (16, 2, 2)
    assert all(f["severity"] == "error" for f in missing)


async def test_resync_of_the_same_data_rewrites_no_row(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    first = await runtime.sync.sync(slug)
    assert first.ok
    query = text(
        "SELECT id, xmin::text AS x, updated_at FROM vehicles WHERE provider_id = :p ORDER BY id"
    )
    async with runtime.sessions() as session:
        before = (await session.execute(query, {"p": slug})).all()
    runtime.sync._caches.clear()  # force real refetches, not 304s

    second = await runtime.sync.sync(slug)

    assert second.ok
    for table, counts in second.counts.items():
        assert (counts["created"], counts["updated"], counts["removed"]) == (0, 0, 0), table
    async with runtime.sessions() as session:
        after = (await session.execute(query, {"p": slug})).all()
    assert before == after  # same transaction ids: no row was rewritten


async def _collect_deltas(runtime: Runtime, ready: asyncio.Event, out: list[VehicleDelta]) -> None:
    pubsub = runtime.redis.pubsub()
    await pubsub.subscribe(runtime.keys.vehicle_deltas)
    # Ready only once Redis confirmed the subscription: a delta published before is lost.
    while await pubsub.get_message(timeout=1.0) is None:
        pass
    ready.set()
    try:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                out.append(VehicleDelta.decode(message["data"]))
    finally:
        await pubsub.unsubscribe()
        await close_pubsub(pubsub)


async def test_second_snapshot_produces_exactly_its_delta_everywhere(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    fleet = [scooter(f"s{i}", 52.52 + i * 0.001, 13.40 + i * 0.001) for i in range(6)]
    documents = synthetic_scooter_feeds(fleet)
    await add_provider(
        runtime, "synthetic", serve_documents(server, base_url, "synthetic", documents)
    )
    assert (await runtime.sync.sync("synthetic")).ok

    moved = {"s0": (52.53, 13.41), "s1": (52.531, 13.411)}
    new_fleet = [dict(v) for v in fleet if v["bike_id"] != "s5"]  # s5 vanished
    for v in new_fleet:
        if v["bike_id"] in moved:
            v["lat"], v["lon"] = moved[v["bike_id"]]
    new_fleet.append(scooter("s9", 52.54, 13.42))  # s9 appeared
    documents["free_bike_status"] = {
        **documents["free_bike_status"],
        "last_updated": 1_700_000_060,
        "data": {"bikes": new_fleet},
    }
    deltas: list[VehicleDelta] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_collect_deltas(runtime, ready, deltas))
    await ready.wait()

    report = await runtime.sync.sync("synthetic")
    for _ in range(50):
        if deltas:
            break
        await asyncio.sleep(0.05)
    listener.cancel()

    assert report.ok
    assert report.counts["vehicles"] == {"created": 1, "updated": 2, "removed": 1, "total": 6}
    # PostGIS holds the new positions.
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT external_id, ST_Y(geom) AS lat, ST_X(geom) AS lon FROM vehicles "
                    "WHERE provider_id = 'synthetic'"
                )
            )
        ).all()
    positions = {r.external_id: (r.lat, r.lon) for r in rows}
    assert set(positions) == {"s0", "s1", "s2", "s3", "s4", "s9"}
    for vid, (lat, lon) in moved.items():
        assert positions[vid] == pytest.approx((lat, lon))
    # Redis holds the same members at the same places.
    members = member_names(await runtime.redis.zrange(runtime.keys.vehicle_geo, 0, -1))
    assert members == {f"synthetic:{vid}" for vid in positions}
    (position,) = await runtime.redis.geopos(runtime.keys.vehicle_geo, "synthetic:s0")
    assert position is not None
    lon0, lat0 = position
    assert (lat0, lon0) == pytest.approx(moved["s0"], abs=1e-5)
    # The channel carried exactly that delta.
    assert len(deltas) == 1
    delta = deltas[0]
    assert delta.provider_id == "synthetic"
    assert [v.id for v in delta.created] == ["synthetic:s9"]
    assert (delta.created[0].lat, delta.created[0].lon) == (52.54, 13.42)
    assert sorted(v.id for v in delta.updated) == ["synthetic:s0", "synthetic:s1"]
    assert {v.id: (v.lat, v.lon) for v in delta.updated} == {
        f"synthetic:{vid}": position for vid, position in moved.items()
    }
    assert delta.removed == ["synthetic:s5"]


async def test_vehicle_that_becomes_reserved_leaves_the_index(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    fleet = [scooter("a", 52.52, 13.40), scooter("b", 52.521, 13.401)]
    documents = synthetic_scooter_feeds(fleet)
    await add_provider(
        runtime, "synthetic", serve_documents(server, base_url, "synthetic", documents)
    )
    assert (await runtime.sync.sync("synthetic")).ok
    fleet[0] = {**fleet[0], "is_reserved": True}
    documents["free_bike_status"] = {**documents["free_bike_status"], "data": {"bikes": fleet}}

    assert (await runtime.sync.sync("synthetic")).ok

    members = member_names(await runtime.redis.zrange(runtime.keys.vehicle_geo, 0, -1))
    assert members == {"synthetic:b"}


@pytest.mark.parametrize("fault", ["timeout", "http_500", "malformed_json"])
async def test_failing_feed_keeps_previous_data_and_marks_provider_stale(
    runtime: Runtime, feed_server: tuple[FeedServer, str], fault: str
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "tier-wolfsburg")
    other = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    assert (await runtime.sync.sync(slug)).ok
    before = await table_counts(runtime, slug)
    indexed_before = await runtime.redis.zcard(runtime.keys.vehicle_geo)
    path = f"/{slug}/free_bike_status.json"
    if fault == "timeout":
        server.delay(path, runtime.settings.sync_http_timeout_seconds + 1.5)
    elif fault == "http_500":
        server.fail(path, 500)
    else:
        server.set_body(path, b'{"last_updated": 1700000000, "data": {"bikes": [')
    runtime.sync._caches.clear()

    report = await runtime.sync.sync(slug)
    other_report = await runtime.sync.sync(other)

    assert not report.ok
    assert (report.error and "free_bike_status" in report.error) or path in (report.error or "")
    assert await table_counts(runtime, slug) == before
    async with runtime.sessions() as session:
        provider = (
            await session.execute(
                text("SELECT stale, last_error, consecutive_failures FROM providers WHERE id = :p"),
                {"p": slug},
            )
        ).one()
    assert provider.stale is True
    assert provider.last_error == report.error
    assert provider.consecutive_failures == 1
    # The other provider is unaffected, and the failing one's vehicles are still searchable.
    assert other_report.ok
    assert await runtime.redis.zcard(runtime.keys.vehicle_geo) == indexed_before + 40


async def test_recovered_feed_clears_the_stale_mark(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    server.fail(f"/{slug}/vehicle_status.json", 503)
    assert not (await runtime.sync.sync(slug)).ok
    server.reset()

    report = await runtime.sync.sync(slug)

    assert report.ok
    async with runtime.sessions() as session:
        stale, error = (
            await session.execute(
                text("SELECT stale, last_error FROM providers WHERE id = :p"), {"p": slug}
            )
        ).one()
    assert (stale, error) == (False, None)


async def test_conditional_get_revalidates_instead_of_refetching(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "lillestrom-bysykkel")
    assert (await runtime.sync.sync(slug)).ok
    server.reset_counts()

    report = await runtime.sync.sync(slug)

    assert report.ok
    served = sum(server.request_counts.values())
    not_modified = sum(server.not_modified_counts.values())
    # Files whose last_updated + ttl has passed are revalidated (304), never re-downloaded.
    assert served > 0
    assert served == not_modified


async def test_each_form_factor_has_its_own_geo_set(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    documents = synthetic_scooter_feeds([scooter("s1", 52.5, 13.4), scooter("s2", 52.51, 13.4)])
    documents["vehicle_types"]["data"]["vehicle_types"].append(
        {
            "vehicle_type_id": "car",
            "form_factor": "car",
            "propulsion_type": "electric",
            "max_range_meters": 300000,
        }
    )
    documents["free_bike_status"]["data"]["bikes"].append(
        scooter("c1", 52.52, 13.4, vehicle_type_id="car")
    )
    await add_provider(runtime, "mixed", serve_documents(server, base_url, "mixed", documents))
    assert (await runtime.sync.sync("mixed")).ok

    async def members(key: str) -> set[str]:
        return member_names(await runtime.redis.zrange(key, 0, -1))

    assert await members(runtime.keys.vehicle_geo_of("car")) == {"mixed:c1"}
    assert await members(runtime.keys.vehicle_geo_of("scooter_standing")) == {
        "mixed:s1",
        "mixed:s2",
    }
    # Gone from every set when it leaves the feed.
    documents["free_bike_status"] = {
        **documents["free_bike_status"],
        "data": {"bikes": documents["free_bike_status"]["data"]["bikes"][:2]},
    }
    assert (await runtime.sync.sync("mixed")).ok
    assert await members(runtime.keys.vehicle_geo_of("car")) == set()
