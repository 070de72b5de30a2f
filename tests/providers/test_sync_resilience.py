"""What must not lose or corrupt data: Redis losing the index, concurrent syncs, vanished feeds,
records PostgreSQL cannot store as sent."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from app.platform.db import transaction
from app.runtime import Runtime
from app.search.schemas import VehicleFilter
from app.search.validation import Area
from geo.areas import Near
from providers.service import register_provider
from providers.simulators.feed_server import FeedServer
from tests.helpers import (
    add_conformance_provider,
    add_provider,
    member_names,
    raw,
    scooter,
    serve_documents,
    synthetic_scooter_feeds,
)


async def _available(runtime: Runtime, provider_id: str) -> set[str]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id FROM vehicles WHERE provider_id = :p "
                "AND NOT is_reserved AND NOT is_disabled"
            ),
            {"p": provider_id},
        )
        return {r.id for r in rows}


async def _indexed(runtime: Runtime) -> set[str]:
    return member_names(await runtime.redis.zrange(runtime.keys.vehicle_geo, 0, -1))


async def _forget_index(runtime: Runtime) -> None:
    """What a Redis restart without persistence does to our keys."""
    keys = [
        k for pattern in runtime.keys.patterns async for k in runtime.redis.scan_iter(match=pattern)
    ]
    if keys:
        await runtime.redis.delete(*keys)


async def test_search_falls_back_to_postgis_until_the_lost_index_is_rebuilt(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "tier-wolfsburg")
    assert (await runtime.sync.sync(slug)).ok
    bikes = raw("tier-wolfsburg", "free_bike_status")["data"]["bikes"]
    lat, lon = float(bikes[0]["lat"]), float(bikes[0]["lon"])

    async def nearby() -> list[str]:
        hits = await runtime.search.vehicles(
            area=Area(Near(lat, lon, 1000), None), flt=VehicleFilter(), first=20
        )
        return [h.vehicle.id for h in hits]

    before = await nearby()
    await _forget_index(runtime)

    during = await nearby()  # index gone: answered from PostGIS, not empty
    rebuilt = await runtime.sync.ensure_index_ready()
    after = await nearby()

    assert before and during == before and after == before
    assert rebuilt is True
    assert await _indexed(runtime) == await _available(runtime, slug)


async def test_sync_rebuilds_a_provider_whose_index_does_not_match_its_last_run(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "tier-wolfsburg")
    assert (await runtime.sync.sync(slug)).ok
    await _forget_index(runtime)
    await runtime.index.mark_ready()
    runtime.sync._caches.clear()

    report = await runtime.sync.sync(slug)  # nothing changed in PostGIS ...

    assert report.ok
    assert report.counts["vehicles"]["updated"] == 0
    assert await _indexed(runtime) == await _available(runtime, slug)  # ... yet Redis is whole


async def test_concurrent_syncs_of_one_provider_run_one_at_a_time(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    server.delay(f"/{slug}/vehicle_status.json", 0.5)

    first, second = await asyncio.gather(runtime.sync.sync(slug), runtime.sync.sync(slug))

    reports = sorted([first, second], key=lambda r: r.skipped)
    assert reports[0].ok and not reports[0].skipped
    assert reports[1].skipped and not reports[1].ok
    assert "another sync" in (reports[1].error or "")
    async with runtime.sessions() as session:
        runs = (
            await session.execute(
                text("SELECT status FROM sync_runs WHERE provider_id = :p"), {"p": slug}
            )
        ).all()
    assert [r.status for r in runs] == ["succeeded"]  # the skipped call recorded nothing


async def test_a_feed_that_vanishes_from_discovery_keeps_the_last_good_data(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    documents = synthetic_scooter_feeds([scooter("a", 52.5, 13.4), scooter("b", 52.51, 13.41)])
    feeds = serve_documents(server, base_url, "vanish", documents)
    listed = [{"name": name, "url": url} for name, url in feeds.items()]
    discovery: dict[str, Any] = {
        "last_updated": 1_700_000_000,
        "ttl": 0,
        "version": "2.3",
        "data": {"en": {"feeds": listed}},
    }
    server.add_dynamic("/vanish/gbfs.json", lambda: discovery)
    async with transaction(runtime.sessions) as session:
        await register_provider(
            session,
            slug="vanish",
            name="vanish",
            adapter="gbfs",
            config={"discovery_url": f"{base_url}/vanish/gbfs.json"},
        )
    assert (await runtime.sync.sync("vanish")).ok
    discovery["data"]["en"]["feeds"] = [f for f in listed if f["name"] != "free_bike_status"]
    runtime.sync._caches.clear()

    report = await runtime.sync.sync("vanish")

    assert not report.ok
    assert "vehicle_status" in (report.error or "") and "missing" in (report.error or "")
    assert await _available(runtime, "vanish") == {"vanish:a", "vanish:b"}


async def test_values_postgresql_cannot_store_are_reported_not_fatal(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    documents = synthetic_scooter_feeds([scooter("a", 52.5, 13.4)])
    vehicle_type = documents["vehicle_types"]["data"]["vehicle_types"][0]
    vehicle_type["name"] = "E\u0000Scooter"
    vehicle_type["rider_capacity"] = 3_000_000_000
    await add_provider(runtime, "odd", serve_documents(server, base_url, "odd", documents))

    report = await runtime.sync.sync("odd")

    assert report.ok, report.error
    codes = {f.code for f in report.findings}
    assert {"NUL_CHARACTER_REMOVED", "VALUE_OUT_OF_RANGE"} <= codes
    async with runtime.sessions() as session:
        name, capacity = (
            await session.execute(
                text("SELECT name, rider_capacity FROM vehicle_types WHERE provider_id = 'odd'")
            )
        ).one()
    assert (name, capacity) == ("EScooter", None)


async def test_feed_urls_in_errors_lose_their_query_strings(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    server.fail("/secret/free_bike_status.json", 500)
    await add_provider(
        runtime,
        "secret",
        {"free_bike_status": f"{base_url}/secret/free_bike_status.json?key=s3cr3t"},
    )

    report = await runtime.sync.sync("secret")

    assert not report.ok
    assert "s3cr3t" not in (report.error or "")
    assert "/secret/free_bike_status.json" in (report.error or "")


async def test_an_index_rebuild_leaves_no_lock_behind(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    """Regression: the rebuild released its lock on another pooled connection than the one
    holding it, and the provider's next rebuild (its next sync) then waited forever."""
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "lillestrom-bysykkel")
    # Several idle connections in the pool, so a session may get a different one each time.
    sessions = [runtime.sessions() for _ in range(4)]
    for session in sessions:
        await session.execute(text("SELECT 1"))
    for session in sessions:
        await session.close()

    for _ in range(3):
        await asyncio.wait_for(runtime.sync.rebuild_index(slug), timeout=10)
        async with runtime.sessions() as session:
            held = (
                await session.execute(
                    text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                        " WHERE l.locktype = 'advisory' AND l.granted"
                        " AND a.datname = current_database()"
                    )
                )
            ).scalar_one()
        assert held == 0
