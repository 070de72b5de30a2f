"""GBFS 3.0 re-publishing: real operator feeds synced, published, validated against the official
v3.0 schemas, and read back by our own GBFS adapter; plus HTTP caching and refusals."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc3987
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from sqlalchemy import text

from adapters.money import currency_exponent
from app.gbfs_publish.documents import URI_PATTERN, is_publishable_uri
from app.gbfs_publish.settings import GbfsPublishSettings, get_publish_settings
from app.main import create_app
from app.platform.db import transaction
from app.runtime import Runtime
from providers.service import register_provider
from providers.simulators.feed_server import FeedServer, serve_in_background
from tests.conftest import require_conformance
from tests.helpers import add_conformance_provider, feed_dir

BASE = "http://planner.example:8080"
PUBLISH_SETTINGS = GbfsPublishSettings(
    feed_contact_email="planners@aggregator.example", default_ttl_seconds=45
)
# Different versions and shapes: v3.0 cars with per-vehicle plans (Getaround), v2.3 scooters
# with deep links (TIER Wolfsburg), v3.0 mopeds with zones and non-RFC 3339 times (Check), v2.2
# docked bikes with plans (Lillestrøm), v2.3 zones only (TIER Oslo), station_status alone (Oslo).
FOLDERS = [
    "getaround-stavanger",
    "tier-wolfsburg",
    "check-almere",
    "lillestrom-bysykkel",
    "tier-oslo",
    "oslo-bysykkel",
]
DATA_FILES = (
    "system_information",
    "vehicle_types",
    "station_information",
    "station_status",
    "vehicle_status",
    "system_regions",
    "system_pricing_plans",
    "geofencing_zones",
)
# Where each file keeps its records and their ids.
RECORDS = {
    "vehicle_types": ("vehicle_types", "vehicle_type_id"),
    "station_information": ("stations", "station_id"),
    "station_status": ("stations", "station_id"),
    "vehicle_status": ("vehicles", "vehicle_id"),
    "system_regions": ("regions", "region_id"),
    "system_pricing_plans": ("plans", "plan_id"),
}
TABLES = {
    "vehicle_types": "vehicle_types",
    "station_information": "stations",
    "station_status": "stations",
    "vehicle_status": "vehicles",
    "system_regions": "system_regions",
    "system_pricing_plans": "pricing_plans",
}


# --- helpers -----------------------------------------------------------------------------------


def _validator(name: str) -> Validator:
    path = require_conformance() / "gbfs" / "schemas" / "v3.0" / f"{name}.json"
    schema = json.loads(path.read_text())
    cls = validator_for(schema)
    cls.check_schema(schema)
    # Strict means the formats are really checked: without rfc3987 / rfc3339-validator
    # jsonschema silently accepts any string as a uri or date-time.
    assert {"uri", "date-time", "email"} <= set(cls.FORMAT_CHECKER.checkers)
    validator: Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return validator


def schema_errors(name: str, document: Any) -> list[str]:
    errors = _validator(name).iter_errors(document)
    return [f"{name}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def local_path(url: str) -> str:
    assert url.startswith(BASE + "/"), url
    return url.removeprefix(BASE)


async def get_json(client: httpx.AsyncClient, url: str) -> Any:
    response = await client.get(local_path(url) if url.startswith("http") else url)
    assert response.status_code == 200, (url, response.text)
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def rows(runtime: Runtime, sql: str, **params: Any) -> list[Any]:
    async with runtime.sessions() as session:
        return list((await session.execute(text(sql), params)).all())


async def sync(runtime: Runtime, slug: str) -> None:
    report = await runtime.sync.sync(slug)
    assert report.ok, report.error


def expected_files(folder: str) -> set[str]:
    """What gbfs.json should list, from the operator's own file set."""
    files = {p.stem for p in feed_dir(folder).glob("*.json")} - {"gbfs"}
    files = {"vehicle_status" if name == "free_bike_status" else name for name in files}
    if "station_information" not in files:
        files.discard("station_status")  # status without information: nothing to place
    files.add("system_information")
    if not files & {"vehicle_status", "station_status"}:
        files.add("vehicle_status")  # gbfs.json must list one; an empty list is the truth
    return files


def _publishing_app(runtime: Runtime) -> Any:
    app = create_app(runtime.settings)
    app.state.runtime = runtime
    app.dependency_overrides[get_publish_settings] = lambda: PUBLISH_SETTINGS
    return app


@pytest.fixture
async def planner(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A consumer reaching the API under a host and port of its own."""
    transport = httpx.ASGITransport(app=_publishing_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


async def publish(
    runtime: Runtime, feed_server: tuple[FeedServer, str], *folders: str, **mirrors: str
) -> list[str]:
    """Register and sync each folder under its own name, and each ``mirrors`` folder (value)
    under a second slug (key): the same operator system aggregated twice."""
    server, base_url = feed_server
    slugs = []
    for slug, folder in [*((f, f) for f in folders), *mirrors.items()]:
        await add_conformance_provider(runtime, server, base_url, folder, slug=slug)
        await sync(runtime, slug)
        slugs.append(slug)
    return slugs


async def dataset_files(client: httpx.AsyncClient, slug: str) -> dict[str, Any]:
    """gbfs.json and every file it lists, by name."""
    discovery = await get_json(client, f"/gbfs/v3/{slug}/gbfs.json")
    files: dict[str, Any] = {"gbfs": discovery}
    for feed in discovery["data"]["feeds"]:
        files[feed["name"]] = await get_json(client, feed["url"])
    return files


# --- schemas, file sets, ids -------------------------------------------------------------------


MIRROR = "tier-wolfsburg-mirror"


async def test_every_published_file_validates_strictly_against_the_v3_schemas(
    runtime: Runtime, feed_server: tuple[FeedServer, str], planner: httpx.AsyncClient
) -> None:
    # The mirror aggregates the very same TIER system again: same system_id, same vehicle,
    # type and plan ids at the source. Published, nothing of the two may collide.
    slugs = await publish(runtime, feed_server, *FOLDERS, **{MIRROR: "tier-wolfsburg"})
    folder_of = {**{f: f for f in FOLDERS}, MIRROR: "tier-wolfsburg"}

    manifest = await get_json(planner, "/gbfs/v3/manifest.json")
    assert schema_errors("manifest", manifest) == []
    system_ids = [d["system_id"] for d in manifest["data"]["datasets"]]
    assert sorted(system_ids) == sorted(slugs)
    listed = {d["system_id"]: d["versions"] for d in manifest["data"]["datasets"]}
    problems: list[str] = []
    seen_ids: dict[str, set[str]] = {}
    for slug in slugs:
        assert listed[slug] == [{"version": "3.0", "url": f"{BASE}/gbfs/v3/{slug}/gbfs.json"}]
        files = await dataset_files(planner, slug)
        assert set(files) - {"gbfs"} == expected_files(folder_of[slug]), slug
        assert files["system_information"]["data"]["system_id"] == slug
        for name, document in files.items():
            problems += schema_errors(name, document)
            assert document["version"] == "3.0"
        # Files that are not listed are not served.
        for name in set(DATA_FILES) - set(files):
            response = await planner.get(f"/gbfs/v3/{slug}/{name}.json")
            assert response.status_code == 404, (slug, name)
            assert response.json()["error"]["code"] == "FEED_NOT_FOUND"
        for name, (key, id_field) in RECORDS.items():
            if name not in files:
                continue
            ids = [record[id_field] for record in files[name]["data"][key]]
            # Every record the database holds, once, under its provider-scoped id.
            (count,) = (
                await rows(
                    runtime, f"SELECT count(*) FROM {TABLES[name]} WHERE provider_id = :p", p=slug
                )
            )[0]
            assert len(ids) == len(set(ids)) == count, (slug, name)
            assert all(i.startswith(f"{slug}:") for i in ids), (slug, name)
            kind = seen_ids.setdefault(name, set())
            assert not kind & set(ids), f"{name} ids of {slug} collide with another provider's"
            kind.update(ids)
    assert problems == []
    # Not vacuous: the published set has vehicles, stations, plans and zones in it, and the
    # mirror really shares its source ids with the original.
    assert {"vehicle_status", "station_status", "system_pricing_plans", "vehicle_types"} <= set(
        seen_ids
    )
    (zones,) = (await rows(runtime, "SELECT count(*) FROM geofencing_zones"))[0]
    assert zones > 0
    ((shared,),) = await rows(
        runtime,
        "SELECT count(*) FROM vehicles a JOIN vehicles b USING (external_id) "
        "WHERE a.provider_id = 'tier-wolfsburg' AND b.provider_id = :m",
        m=MIRROR,
    )
    assert shared > 0


async def test_localized_texts_are_arrays_in_the_systems_language(
    runtime: Runtime, feed_server: tuple[FeedServer, str], planner: httpx.AsyncClient
) -> None:
    (slug,) = await publish(runtime, feed_server, "getaround-stavanger")
    raw_system = json.loads((feed_dir(slug) / "system_information.json").read_text())["data"]
    (language,) = raw_system["languages"]  # one language, not the deployment's "en"

    files = await dataset_files(planner, slug)

    system = files["system_information"]["data"]
    assert system["languages"] == [language]
    assert system["system_id"] == slug
    assert system["name"] == [{"text": raw_system["name"][0]["text"], "language": language}]
    assert system["feed_contact_email"] == PUBLISH_SETTINGS.feed_contact_email
    assert system["manifest_url"] == f"{BASE}/gbfs/v3/manifest.json"
    stored = {
        r.id: r
        for r in await rows(
            runtime,
            "SELECT id, name, description, currency, price_minor FROM pricing_plans "
            "WHERE provider_id = :p",
            p=slug,
        )
    }
    for plan in files["system_pricing_plans"]["data"]["plans"]:
        row = stored[plan["plan_id"]]
        assert plan["name"] == [{"text": row.name, "language": language}]
        assert plan["description"] == [{"text": row.description, "language": language}]
        assert round(plan["price"] * 10 ** currency_exponent(row.currency)) == row.price_minor


# --- round trip --------------------------------------------------------------------------------

VEHICLE_COLUMNS = (
    "external_id, ST_Y(geom) AS lat, ST_X(geom) AS lon, vehicle_type_id, form_factor, "
    "propulsion_type, is_reserved, is_disabled, current_range_meters, current_fuel_percent, "
    "pricing_plan_id, station_id, rental_uris, date_trunc('second', last_reported) AS reported"
)


def _unscope(value: Any, prefix: str) -> Any:
    if isinstance(value, str) and value.startswith(prefix):
        return value.removeprefix(prefix)
    return value


async def vehicles_by_public_id(
    runtime: Runtime, provider_id: str, *, republished_from: str | None = None
) -> dict[str, tuple[Any, ...]]:
    """Vehicles keyed by the id a consumer saw, with our ids taken back to the source's: the
    round-trip provider scopes the published ids once more (``roundtrip:<slug>:<id>``)."""
    out = {}
    prefix = f"{provider_id}:"
    for row in await rows(
        runtime,
        f"SELECT {VEHICLE_COLUMNS} FROM vehicles WHERE provider_id = :p",
        p=provider_id,
    ):
        values = tuple(_unscope(v, prefix) if republished_from else v for v in row[1:])
        key = row.external_id if republished_from else f"{provider_id}:{row.external_id}"
        out[key] = values
    return out


async def stations_by_public_id(
    runtime: Runtime, provider_id: str, *, republished: bool = False
) -> dict[str, tuple[Any, ...]]:
    out = {}
    prefix = f"{provider_id}:"
    for row in await rows(
        runtime,
        "SELECT external_id, name, short_name, ST_Y(geom), ST_X(geom), capacity, is_virtual, "
        "num_vehicles_available, num_vehicles_disabled, num_docks_available, is_installed, "
        "is_renting, is_returning, vehicle_types_available, "
        "date_trunc('second', last_reported) FROM stations WHERE provider_id = :p",
        p=provider_id,
    ):
        values = tuple(row[1:])
        key = f"{provider_id}:{row.external_id}"
        if republished:
            key = row.external_id
            counts = [
                {**c, "vehicle_type_id": _unscope(c["vehicle_type_id"], prefix)}
                for c in row.vehicle_types_available
            ]
            values = (*values[:-2], counts, values[-1])
        out[key] = values
    return out


async def catalog(runtime: Runtime, provider_id: str, *, republished: bool = False) -> Any:
    """Types, plans and zones (in precedence order) as a consumer would compare them."""
    prefix = f"{provider_id}:"

    def key(row: Any) -> str:
        return str(row.external_id if republished else row.id)

    types = {
        (key(r), r.form_factor, r.propulsion_type, r.max_range_meters)
        for r in await rows(
            runtime,
            "SELECT id, external_id, form_factor, propulsion_type, max_range_meters "
            "FROM vehicle_types WHERE provider_id = :p",
            p=provider_id,
        )
    }
    plans = {
        (key(r), r.currency, r.price_minor, r.is_taxable, str(r.per_km), str(r.per_min))
        for r in await rows(
            runtime,
            "SELECT id, external_id, currency, price_minor, is_taxable, "
            "per_km_pricing AS per_km, per_min_pricing AS per_min "
            "FROM pricing_plans WHERE provider_id = :p",
            p=provider_id,
        )
    }

    def rule(r: dict[str, Any]) -> dict[str, Any]:
        ids = r["vehicle_type_ids"]
        if republished and ids is not None:
            ids = [_unscope(i, prefix) for i in ids]
        return {**r, "vehicle_type_ids": ids}

    zones = [
        (r.name, r.geometry, [rule(x) for x in r.rules], r.starts_at, r.ends_at)
        for r in await rows(
            runtime,
            "SELECT name, ST_AsGeoJSON(geom, 6) AS geometry, rules, starts_at, ends_at "
            "FROM geofencing_zones WHERE provider_id = :p ORDER BY ordinal",
            p=provider_id,
        )
    ]
    ((global_rules,),) = await rows(
        runtime, "SELECT global_rules FROM providers WHERE id = :p", p=provider_id
    )
    return types, plans, zones, [rule(r) for r in global_rules]


async def vary_vehicle_states(runtime: Runtime, provider_id: str) -> None:
    """The operator feeds are almost all available vehicles: give some of them every state the
    round trip must carry (reserved, disabled, a fuel level), in the source's own rows."""
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "WITH ranked AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM vehicles "
                "WHERE provider_id = :p) "
                "UPDATE vehicles v SET is_reserved = (r.n % 3 = 0), is_disabled = (r.n % 5 = 0), "
                "current_fuel_percent = CASE WHEN r.n % 4 = 0 THEN (r.n % 97) / 100.0 "
                "ELSE v.current_fuel_percent END "
                "FROM ranked r WHERE v.id = r.id"
            ),
            {"p": provider_id},
        )


@pytest.mark.parametrize(
    "folder",
    ["tier-wolfsburg", "getaround-stavanger", "check-almere", "lillestrom-bysykkel", "tier-oslo"],
)
async def test_round_trip_through_our_own_gbfs_adapter_reproduces_the_data(
    runtime: Runtime, feed_server: tuple[FeedServer, str], folder: str
) -> None:
    (slug,) = await publish(runtime, feed_server, folder)
    await vary_vehicle_states(runtime, slug)

    async with serve_in_background(_publishing_app(runtime)) as api_base:
        async with transaction(runtime.sessions) as session:
            await register_provider(
                session,
                slug="roundtrip",
                name="round trip",
                adapter="gbfs",
                config={"discovery_url": f"{api_base}/gbfs/v3/{slug}/gbfs.json"},
            )
        report = await runtime.sync.sync("roundtrip")
    assert report.ok, report.error
    assert [f for f in report.findings if f.severity == "error"] == []

    original = await vehicles_by_public_id(runtime, slug)
    republished = await vehicles_by_public_id(runtime, "roundtrip", republished_from=slug)
    assert republished == original
    assert await stations_by_public_id(
        runtime, "roundtrip", republished=True
    ) == await stations_by_public_id(runtime, slug)
    assert await catalog(runtime, "roundtrip", republished=True) == await catalog(runtime, slug)
    # Not vacuous: the source has something to compare, and states were varied.
    assert original or folder in ("lillestrom-bysykkel", "tier-oslo")
    if original:
        states = {(v[5], v[6]) for v in original.values()}
        assert len(states) == 4 or len(original) < 15


# --- caching -----------------------------------------------------------------------------------


async def _set_provider(runtime: Runtime, slug: str, sql: str, **params: Any) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(text(f"UPDATE providers SET {sql} WHERE id = :p"), {"p": slug, **params})


async def _timed_get(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float, float]:
    before = time.time()
    response = await client.get(path)
    return response, before, time.time()


def _max_age(response: httpx.Response) -> int:
    control = response.headers["cache-control"]
    assert control.startswith("public, max-age="), control
    return int(control.removeprefix("public, max-age="))


async def test_cache_control_counts_down_to_last_updated_plus_ttl(
    runtime: Runtime, feed_server: tuple[FeedServer, str], planner: httpx.AsyncClient
) -> None:
    (slug,) = await publish(runtime, feed_server, "tier-wolfsburg")
    await _set_provider(
        runtime, slug, "last_success_at = now() - interval '30 seconds', ttl_seconds = 100"
    )
    ((last_updated, ttl),) = await rows(
        runtime, "SELECT last_success_at, ttl_seconds FROM providers WHERE id = :p", p=slug
    )
    for name in ("gbfs", "vehicle_status", "vehicle_types", "system_information"):
        response, before, after = await _timed_get(planner, f"/gbfs/v3/{slug}/{name}.json")
        assert response.status_code == 200
        body = response.json()
        assert body["ttl"] == ttl
        assert body["last_updated"] == last_updated.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        due = last_updated.timestamp() + ttl
        assert math.floor(due - after) <= _max_age(response) <= math.floor(due - before)
        assert 0 < _max_age(response) < ttl

    # No ttl from the feeds: the configured default.
    await _set_provider(runtime, slug, "ttl_seconds = NULL")
    response, before, after = await _timed_get(planner, f"/gbfs/v3/{slug}/vehicle_status.json")
    assert response.json()["ttl"] == PUBLISH_SETTINGS.default_ttl_seconds
    due = last_updated.timestamp() + PUBLISH_SETTINGS.default_ttl_seconds
    assert math.floor(due - after) <= _max_age(response) <= math.floor(due - before)


async def test_stale_provider_is_published_with_its_true_old_last_updated(
    runtime: Runtime, feed_server: tuple[FeedServer, str], planner: httpx.AsyncClient
) -> None:
    (slug,) = await publish(runtime, feed_server, "getaround-stavanger")
    await _set_provider(
        runtime,
        slug,
        "last_success_at = :at, stale = true, last_error = 'operator down'",
        at=datetime(2024, 3, 1, 8, 30, 15, tzinfo=UTC),
    )

    response = await planner.get(f"/gbfs/v3/{slug}/vehicle_status.json")

    assert response.status_code == 200
    assert response.json()["last_updated"] == "2024-03-01T08:30:15Z"
    assert _max_age(response) == 0  # long past last_updated + ttl: revalidate every time
    (count,) = (
        await rows(runtime, "SELECT count(*) FROM vehicles WHERE provider_id = :p", p=slug)
    )[0]
    assert len(response.json()["data"]["vehicles"]) == count > 0
    manifest = await get_json(planner, "/gbfs/v3/manifest.json")
    assert [d["system_id"] for d in manifest["data"]["datasets"]] == [slug]


async def test_etag_is_strong_and_if_none_match_answers_304_until_the_data_changes(
    runtime: Runtime, feed_server: tuple[FeedServer, str], planner: httpx.AsyncClient
) -> None:
    (slug,) = await publish(runtime, feed_server, "tier-wolfsburg")
    path = f"/gbfs/v3/{slug}/vehicle_status.json"

    first = await planner.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong: no W/
    again = await planner.get(path)
    assert (again.headers["etag"], again.content) == (etag, first.content)

    for header in (etag, f"W/{etag}", f'"something-else", {etag}', "*"):
        cached = await planner.get(path, headers={"If-None-Match": header})
        assert cached.status_code == 304, header
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        assert cached.headers["cache-control"].startswith("public, max-age=")
    other = await planner.get(path, headers={"If-None-Match": '"something-else"'})
    assert (other.status_code, other.content) == (200, first.content)

    # A vehicle moves: a new body, a new tag, and the old tag no longer matches.
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE vehicles SET geom = ST_SetSRID(ST_MakePoint(10.8, 52.43), 4326) "
                "WHERE id = (SELECT min(id) FROM vehicles WHERE provider_id = :p)"
            ),
            {"p": slug},
        )
    moved = await planner.get(path, headers={"If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.headers["etag"] != etag
    assert moved.content != first.content
    # Other files' tags are untouched by a vehicle move.
    types = await planner.get(f"/gbfs/v3/{slug}/vehicle_types.json")
    unchanged = await planner.get(
        f"/gbfs/v3/{slug}/vehicle_types.json", headers={"If-None-Match": types.headers["etag"]}
    )
    assert unchanged.status_code == 304


# --- refusals and what is published ------------------------------------------------------------


def _error_code(response: httpx.Response, status: int = 404) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    code: str = error["code"]
    return code


async def test_unknown_disabled_and_never_synced_providers_are_refused_with_stable_codes(
    runtime: Runtime, feed_server: tuple[FeedServer, str], planner: httpx.AsyncClient
) -> None:
    enabled, disabled = await publish(runtime, feed_server, "tier-wolfsburg", "check-almere")
    server, base_url = feed_server
    never_synced = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    await _set_provider(runtime, disabled, "enabled = false")

    for name in ("gbfs", "vehicle_status", "system_information"):
        assert (
            _error_code(await planner.get(f"/gbfs/v3/nobody/{name}.json")) == "PROVIDER_NOT_FOUND"
        )
        assert (
            _error_code(await planner.get(f"/gbfs/v3/{disabled}/{name}.json"))
            == "PROVIDER_DISABLED"
        )
        assert (
            _error_code(await planner.get(f"/gbfs/v3/{never_synced}/{name}.json"))
            == "PROVIDER_NOT_SYNCED"
        )
    assert _error_code(await planner.get(f"/gbfs/v3/{enabled}/bikes.json")) == "FEED_NOT_FOUND"
    assert (
        _error_code(await planner.get(f"/gbfs/v3/{enabled}/station_status.json"))
        == "FEED_NOT_FOUND"
    )

    manifest = await get_json(planner, "/gbfs/v3/manifest.json")
    assert [d["system_id"] for d in manifest["data"]["datasets"]] == [enabled]
    assert schema_errors("manifest", manifest) == []

    # Enabled again: published again, at once.
    await _set_provider(runtime, disabled, "enabled = true")
    assert (await planner.get(f"/gbfs/v3/{disabled}/gbfs.json")).status_code == 200


async def test_urls_follow_the_host_and_port_the_consumer_used(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    (slug,) = await publish(runtime, feed_server, "check-almere")
    transport = httpx.ASGITransport(app=_publishing_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://gbfs.city.example") as c:
        manifest = (await c.get("/gbfs/v3/manifest.json")).json()
        discovery = (await c.get(f"/gbfs/v3/{slug}/gbfs.json")).json()
    urls = [v["url"] for d in manifest["data"]["datasets"] for v in d["versions"]]
    urls += [feed["url"] for feed in discovery["data"]["feeds"]]
    assert urls and all(u.startswith(f"https://gbfs.city.example/gbfs/v3/{slug}/") for u in urls)


async def test_empty_manifest_is_valid(planner: httpx.AsyncClient) -> None:
    manifest = await get_json(planner, "/gbfs/v3/manifest.json")
    assert manifest["data"]["datasets"] == []
    assert schema_errors("manifest", manifest) == []


async def test_motorised_type_without_max_range_is_left_out_with_its_vehicles(
    runtime: Runtime, feed_server: tuple[FeedServer, str], planner: httpx.AsyncClient
) -> None:
    (slug,) = await publish(runtime, feed_server, "getaround-stavanger")
    ((type_id, expected_left_out),) = await rows(
        runtime,
        "SELECT vehicle_type_id, count(*) FROM vehicles WHERE provider_id = :p "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
        p=slug,
    )
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text("UPDATE vehicle_types SET max_range_meters = NULL WHERE id = :t"), {"t": type_id}
        )
    (total,) = (
        await rows(runtime, "SELECT count(*) FROM vehicles WHERE provider_id = :p", p=slug)
    )[0]

    files = await dataset_files(planner, slug)

    types = [t["vehicle_type_id"] for t in files["vehicle_types"]["data"]["vehicle_types"]]
    vehicles = files["vehicle_status"]["data"]["vehicles"]
    assert type_id not in types and types
    assert all(v["vehicle_type_id"] != type_id for v in vehicles)
    assert len(vehicles) == total - expected_left_out > 0
    assert schema_errors("vehicle_types", files["vehicle_types"]) == []


# --- rental URIs -------------------------------------------------------------------------------

URI_CANDIDATES = [
    "https://no.getaround.com/bilutleie/stavanger/citroen-jumpy-1322175",
    "https://www.example.com/app?bike_id=161ac588&platform=android&",
    "tier://select?vehicle_code=10273&vehicle_id=1234",
    "com.c4mprod.voiturelib://",
    "https://example.com/a%20b#frag",
    "mailto:someone@example.com",
    "http://user:pw@host.example:8080/p?q=1",
    "urn:isbn:0451450523",
    "http://a b",
    "not a uri",
    "/relative/path",
    "http://a:b:c/",
    "http://x/#a#b",
    "https://example.com/%zz",
    "https://exämple.com/",
    "http://[::1]/",
    "x://a@b@c/",
    "x:////a",
    "https://example.com/{id}",
    "",
]


async def test_uri_check_is_sound_against_rfc3987_in_python_and_postgresql(
    runtime: Runtime,
) -> None:
    verdicts = await rows(
        runtime,
        "SELECT c, c ~ :pattern FROM unnest(CAST(:candidates AS text[])) AS c",
        pattern=URI_PATTERN,
        candidates=URI_CANDIDATES,
    )
    in_postgres = {candidate: kept for candidate, kept in verdicts}
    for candidate in URI_CANDIDATES:
        kept = is_publishable_uri(candidate)
        assert in_postgres[candidate] is kept, candidate
        if kept:  # nothing we publish may fail the schemas' format: uri
            assert rfc3987.match(candidate, rule="URI") is not None, candidate
    # The operators' real links, including the feeds' own ones, are kept.
    assert all(is_publishable_uri(u) for u in URI_CANDIDATES[:8])


async def test_rental_uris_pass_through_and_broken_ones_are_left_out(
    runtime: Runtime, feed_server: tuple[FeedServer, str], planner: httpx.AsyncClient
) -> None:
    (slug,) = await publish(runtime, feed_server, "tier-wolfsburg")
    ids = [
        r.id
        for r in await rows(
            runtime, "SELECT id FROM vehicles WHERE provider_id = :p ORDER BY id LIMIT 2", p=slug
        )
    ]
    async with runtime.engine.begin() as conn:
        for vehicle_id, uris in (
            (
                ids[0],
                {"android": "not a uri", "ios": "https://ok.example/v/1", "web": "http://a b"},
            ),
            (ids[1], {"android": "also not one", "ios": None, "web": None}),
        ):
            await conn.execute(
                text("UPDATE vehicles SET rental_uris = CAST(:u AS jsonb) WHERE id = :i"),
                {"u": json.dumps(uris), "i": vehicle_id},
            )
    stored = {
        r.id: r.rental_uris
        for r in await rows(
            runtime, "SELECT id, rental_uris FROM vehicles WHERE provider_id = :p", p=slug
        )
    }

    document = await get_json(planner, f"/gbfs/v3/{slug}/vehicle_status.json")

    assert schema_errors("vehicle_status", document) == []
    published = {v["vehicle_id"]: v.get("rental_uris") for v in document["data"]["vehicles"]}
    assert published[ids[0]] == {"ios": "https://ok.example/v/1"}
    assert published[ids[1]] is None
    for vehicle_id, uris in stored.items():
        if vehicle_id not in ids:
            assert published[vehicle_id] == {k: v for k, v in uris.items() if v is not None}


def test_conformance_folder_is_read_at_run_time() -> None:
    # The schemas are never copied into the repository.
    repository_root = Path(__file__).resolve().parents[2]
    assert not list(repository_root.glob("**/schemas/v3.0/vehicle_status.json"))
    assert (require_conformance() / "gbfs" / "schemas" / "v3.0" / "manifest.json").is_file()


async def test_vehicle_equipment_is_published_as_stored_and_validates(
    runtime: Runtime, feed_server: tuple[FeedServer, str], planner: httpx.AsyncClient
) -> None:
    # None of the real feeds reports equipment: give two of one's vehicles some, and none.
    (slug,) = await publish(runtime, feed_server, "check-almere")
    ids = [r[0] for r in await rows(runtime, "SELECT id FROM vehicles ORDER BY id LIMIT 2")]
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text("UPDATE vehicles SET vehicle_equipment = :e WHERE id = :v"),
            [{"e": ["child_seat_a", "snow_chains"], "v": ids[0]}, {"e": [], "v": ids[1]}],
        )

    files = await dataset_files(planner, slug)

    assert schema_errors("vehicle_status", files["vehicle_status"]) == []
    published = {v["vehicle_id"]: v for v in files["vehicle_status"]["data"]["vehicles"]}
    assert published[ids[0]]["vehicle_equipment"] == ["child_seat_a", "snow_chains"]
    assert published[ids[1]]["vehicle_equipment"] == []
    assert sum("vehicle_equipment" in v for v in published.values()) == 2
