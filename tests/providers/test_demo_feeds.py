"""The demo operators' feeds: valid against the official GBFS schemas, reproducible, and alive."""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from jsonschema import Draft7Validator
from shapely.geometry import Point, shape

from providers.demo import (
    BERLIN_BOX,
    CENTRE,
    DEMO_PROVIDERS,
    EPOCH_SECONDS,
    DemoProvider,
    build_demo_feed_server,
    demo_documents,
    epoch_of,
)
from providers.simulators.feed_server import serve_in_background

BASE_URL = "http://127.0.0.1:8001"
# Summer (CEST), the next epoch, and a winter night (CET): offsets and epochs both vary.
NOWS = (1_750_000_000.0, 1_750_000_030.0, 1_767_222_007.5)
NOW = NOWS[0]

PROVIDERS = {provider.slug: provider for provider in DEMO_PROVIDERS}
CASES = [
    pytest.param(provider, feed, now, id=f"{provider.slug}-{feed}-{int(now)}")
    for provider in DEMO_PROVIDERS
    for feed in provider.feed_paths
    for now in NOWS
]


def conformance_dir() -> Path:
    """The shared conformance folder; missing is a failure in CI and a skip on a laptop."""
    default = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
    path = Path(os.environ.get("MOBILITY_CONFORMANCE_DIR", str(default)))
    if not path.is_dir():
        reason = f"conformance material not found at {path} (set MOBILITY_CONFORMANCE_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@cache
def _schema(schema_dir: Path, version: str, feed: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((schema_dir / f"v{version}" / f"{feed}.json").read_text())
    return schema


def schema_for(version: str, feed: str) -> dict[str, Any]:
    return _schema(conformance_dir() / "gbfs" / "schemas", version, feed)


def undeclared_fields(instance: Any, schema: dict[str, Any], where: str = "") -> Iterator[str]:
    """Fields the schema does not declare: a typo there would pass the (open) official schemas."""
    properties: dict[str, Any] = schema.get("properties", {})
    pattern_properties: dict[str, Any] = schema.get("patternProperties", {})
    if isinstance(instance, dict) and (properties or pattern_properties):
        declared = set(properties) | set(schema.get("required", ()))
        for key, value in instance.items():
            sub = properties.get(key)
            if sub is None:
                sub = next((s for p, s in pattern_properties.items() if re.search(p, key)), None)
            if sub is not None:
                yield from undeclared_fields(value, sub, f"{where}/{key}")
            elif key not in declared:
                yield f"{where}/{key}"
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(instance):
            yield from undeclared_fields(item, schema["items"], f"{where}/{index}")


def documents(slug: str, now: float = NOW) -> dict[str, dict[str, Any]]:
    return demo_documents(slug, now, BASE_URL)


def vehicles(slug: str, now: float = NOW) -> list[dict[str, Any]]:
    docs = documents(slug, now)
    if "free_bike_status" in docs:
        return [
            {"vehicle_id": bike["bike_id"], **bike}
            for bike in docs["free_bike_status"]["data"]["bikes"]
        ]
    listed: list[dict[str, Any]] = docs["vehicle_status"]["data"]["vehicles"]
    return listed


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    north = (b[0] - a[0]) * 111_320
    east = (b[1] - a[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(north, east)


# -- schema validity -------------------------------------------------------------------------------


def test_format_checker_enforces_the_formats_the_schemas_use() -> None:
    # jsonschema silently skips formats whose optional checker is missing: prove they are on.
    checker = Draft7Validator.FORMAT_CHECKER
    assert not checker.conforms("not a uri", "uri")
    assert not checker.conforms("2024-13-01 25:00", "date-time")
    assert not checker.conforms("2024-02-30", "date")
    assert checker.conforms("democarshare://rent?vehicle_id=abc", "uri")


@pytest.mark.parametrize(("provider", "feed", "now"), CASES)
def test_document_validates_against_official_schema(
    provider: DemoProvider, feed: str, now: float
) -> None:
    document = documents(provider.slug, now)[feed]
    schema = schema_for(provider.gbfs_version, feed)
    validator = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)

    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:300]}"
        for error in validator.iter_errors(document)
    ]
    assert errors == []
    assert list(undeclared_fields(document, schema)) == []


def test_every_operator_publishes_its_listed_feeds_and_versions() -> None:
    assert {p.slug: p.gbfs_version for p in DEMO_PROVIDERS} == {
        "demo-cars": "3.0",
        "demo-scooters": "2.3",
        "demo-bikes": "3.0",
    }
    for provider in DEMO_PROVIDERS:
        docs = documents(provider.slug)
        assert set(docs) == set(provider.feed_paths)
        assert provider.discovery_path == f"/{provider.slug}/gbfs.json"
        for feed, path in provider.feed_paths.items():
            assert path == f"/{provider.slug}/{feed}.json"
        assert {doc["version"] for doc in docs.values()} == {provider.gbfs_version}
        assert {doc["ttl"] for doc in docs.values()} == {30}


def test_discovery_urls_are_built_from_the_base_url() -> None:
    base_url = "http://feeds.local:9000/"
    for provider in DEMO_PROVIDERS:
        gbfs = demo_documents(provider.slug, NOW, base_url)["gbfs"]["data"]
        feeds = gbfs["feeds"] if provider.gbfs_version == "3.0" else gbfs["en"]["feeds"]
        expected = {
            feed: "http://feeds.local:9000" + path
            for feed, path in provider.feed_paths.items()
            if feed != "gbfs"
        }
        assert {entry["name"]: entry["url"] for entry in feeds} == expected


# -- reproducible and alive ------------------------------------------------------------------------


@pytest.mark.parametrize("slug", PROVIDERS)
def test_documents_are_a_function_of_the_epoch(slug: str) -> None:
    epoch_start = epoch_of(NOW) * EPOCH_SECONDS
    first = orjson.dumps(documents(slug, epoch_start))
    assert orjson.dumps(documents(slug, epoch_start)) == first
    assert orjson.dumps(documents(slug, epoch_start + EPOCH_SECONDS - 0.5)) == first
    assert orjson.dumps(documents(slug, epoch_start + EPOCH_SECONDS)) != first


def test_dynamic_feeds_are_dated_to_the_epoch() -> None:
    cars = documents("demo-cars")
    scooters = documents("demo-scooters")
    epoch_time = epoch_of(NOW) * EPOCH_SECONDS

    assert scooters["free_bike_status"]["last_updated"] == epoch_time
    assert cars["vehicle_status"]["last_updated"] == "2025-06-15T17:06:30+02:00"
    assert epoch_time == 1_749_999_990  # 2025-06-15T15:06:30Z
    for vehicle in scooters["free_bike_status"]["data"]["bikes"]:
        assert vehicle["last_reported"] <= epoch_time


@pytest.mark.parametrize("slug", ["demo-cars", "demo-scooters"])
def test_free_floating_vehicles_move_and_rotate_ids(slug: str) -> None:
    moved: list[float] = []
    rotated = 0
    for step in range(6):
        before = {v["vehicle_id"]: v for v in vehicles(slug, NOW + step * EPOCH_SECONDS)}
        after = {v["vehicle_id"]: v for v in vehicles(slug, NOW + (step + 1) * EPOCH_SECONDS)}
        rotated += len(before.keys() - after.keys()) + len(after.keys() - before.keys())
        moved += [
            distance_m((before[i]["lat"], before[i]["lon"]), (after[i]["lat"], after[i]["lon"]))
            for i in before.keys() & after.keys()
            if (before[i]["lat"], before[i]["lon"]) != (after[i]["lat"], after[i]["lon"])
        ]
        # Most of the fleet stays put from one epoch to the next.
        assert len(before.keys() & after.keys()) > 0.8 * len(before)

    assert len(moved) >= 3
    assert max(moved) <= 1_000  # a relocation is a few hundred metres, never a teleport
    assert rotated >= 2  # trips: some ids vanish, new ones appear


def test_fleet_sizes_and_type_mix() -> None:
    cars = Counter(v["vehicle_type_id"] for v in vehicles("demo-cars"))
    scooters = Counter(v["vehicle_type_id"] for v in vehicles("demo-scooters"))

    assert 50 <= sum(cars.values()) <= 60
    assert set(cars) == {"car-electric", "car-petrol", "car-hybrid"}
    assert 280 <= scooters["scooter-standing"] <= 300
    assert 1 <= scooters["scooter-seated"] <= 12


@pytest.mark.parametrize("slug", ["demo-cars", "demo-scooters"])
def test_vehicles_are_consistent_with_their_types(slug: str) -> None:
    for now in NOWS:
        docs = documents(slug, now)
        types = {t["vehicle_type_id"]: t for t in docs["vehicle_types"]["data"]["vehicle_types"]}
        plans = {p["plan_id"] for p in docs["system_pricing_plans"]["data"]["plans"]}
        listed = vehicles(slug, now)

        assert len({v["vehicle_id"] for v in listed}) == len(listed)
        for vehicle in listed:
            vehicle_type = types[vehicle["vehicle_type_id"]]
            assert 0 <= vehicle["current_range_meters"] <= vehicle_type["max_range_meters"]
            assert vehicle["rental_uris"]["web"].endswith(vehicle["vehicle_id"])
        for vehicle_type in types.values():
            assert vehicle_type["default_pricing_plan_id"] in plans
            assert set(vehicle_type["pricing_plan_ids"]) <= plans


def test_car_pricing_has_unlock_minute_and_km_segments() -> None:
    plans = documents("demo-cars")["system_pricing_plans"]["data"]["plans"]
    assert len(plans) == 3
    for plan in plans:
        assert plan["currency"] == "EUR" and plan["price"] == 1.0
        assert plan["per_min_pricing"] and plan["per_km_pricing"]
    scooter_plan = documents("demo-scooters")["system_pricing_plans"]["data"]["plans"][0]
    assert scooter_plan["price"] == 1.0
    assert scooter_plan["per_min_pricing"] == [{"start": 0, "rate": 0.25, "interval": 1}]


# -- stations --------------------------------------------------------------------------------------


def test_station_counts_are_consistent_over_time() -> None:
    renting_changes = 0
    for step in range(0, 240, 3):
        docs = documents("demo-bikes", NOW + step * EPOCH_SECONDS)
        info = {s["station_id"]: s for s in docs["station_information"]["data"]["stations"]}
        status = docs["station_status"]["data"]["stations"]
        docked = Counter(
            (v["station_id"], v["vehicle_type_id"], v["is_disabled"])
            for v in docs["vehicle_status"]["data"]["vehicles"]
        )
        assert {s["station_id"] for s in status} == set(info)
        assert 20 <= len(status) <= 30
        for station in status:
            sid = station["station_id"]
            by_type = {t["vehicle_type_id"]: t["count"] for t in station["vehicle_types_available"]}
            assert sum(by_type.values()) == station["num_vehicles_available"]
            assert (
                station["num_vehicles_available"]
                + station["num_vehicles_disabled"]
                + station["num_docks_available"]
                + station["num_docks_disabled"]
                <= info[sid]["capacity"]
            )
            for type_id, count in by_type.items():
                assert docked[(sid, type_id, False)] == count
            assert (
                sum(n for (s, _, off), n in docked.items() if s == sid and off)
                == (station["num_vehicles_disabled"])
            )
            renting_changes += not station["is_renting"]
    assert renting_changes > 0  # maintenance closures happen


def test_station_counts_change_between_epochs() -> None:
    def counts(now: float) -> list[int]:
        status = documents("demo-bikes", now)["station_status"]["data"]["stations"]
        return [s["num_vehicles_available"] for s in status]

    assert counts(NOW) != counts(NOW + EPOCH_SECONDS)


# -- geography -------------------------------------------------------------------------------------


def all_points(slug: str, now: float) -> Iterator[tuple[float, float]]:
    docs = documents(slug, now)
    for vehicle in vehicles(slug, now):
        if "lat" in vehicle:
            yield vehicle["lat"], vehicle["lon"]
    for station in docs.get("station_information", {}).get("data", {}).get("stations", []):
        yield station["lat"], station["lon"]
    zones = docs.get("geofencing_zones", {}).get("data", {}).get("geofencing_zones", {})
    for feature in zones.get("features", []):
        for polygon in feature["geometry"]["coordinates"]:
            for ring in polygon:
                for lon, lat in ring:
                    yield lat, lon


@pytest.mark.parametrize("slug", PROVIDERS)
def test_every_point_lies_in_central_berlin(slug: str) -> None:
    for now in NOWS:
        points = list(all_points(slug, now))
        assert points
        outside = [p for p in points if not BERLIN_BOX.contains(*p)]
        assert outside == []
        assert all(distance_m(CENTRE, p) < 4_500 for p in points)


@pytest.mark.parametrize("slug", ["demo-cars", "demo-scooters"])
def test_no_vehicle_is_parked_where_rides_may_not_end(slug: str) -> None:
    docs = documents(slug)
    zones = docs["geofencing_zones"]["data"]
    forbidden: list[Any] = []  # shapely geometries
    allowed: list[Any] = []
    for feature in zones["geofencing_zones"]["features"]:
        rule = feature["properties"]["rules"][0]
        ends = rule.get("ride_end_allowed", rule.get("ride_allowed"))
        (allowed if ends else forbidden).append(shape(feature["geometry"]))
    assert forbidden

    for now in NOWS:
        for vehicle in vehicles(slug, now):
            point = Point(vehicle["lon"], vehicle["lat"])
            assert not any(zone.contains(point) for zone in forbidden), vehicle
            if slug == "demo-cars":
                # global_rules forbid ending a car trip outside the business area.
                assert not zones["global_rules"][0]["ride_end_allowed"]
                assert any(zone.contains(point) for zone in allowed), vehicle


def test_scooter_zones_include_no_parking_and_slow_zones() -> None:
    features = documents("demo-scooters")["geofencing_zones"]["data"]["geofencing_zones"]
    rules = [f["properties"]["rules"][0] for f in features["features"]]

    assert any(not r["ride_allowed"] and r["ride_through_allowed"] for r in rules)
    assert any(r["ride_allowed"] and r.get("maximum_speed_kph") for r in rules)


# -- served over HTTP ------------------------------------------------------------------------------


async def test_demo_feed_server_serves_every_feed_and_revalidates() -> None:
    base_url = ""
    server = build_demo_feed_server(lambda: base_url, clock=lambda: NOW)

    async with serve_in_background(server.app) as url, httpx.AsyncClient() as client:
        base_url = url
        for provider in DEMO_PROVIDERS:
            discovery = (await client.get(base_url + provider.discovery_path)).json()
            data = discovery["data"]
            listed = data["feeds"] if provider.gbfs_version == "3.0" else data["en"]["feeds"]
            for entry in listed:
                response = await client.get(entry["url"])
                assert response.status_code == 200, entry
                assert response.json() == documents(provider.slug)[entry["name"]]
                again = await client.get(
                    entry["url"], headers={"If-None-Match": response.headers["etag"]}
                )
                assert again.status_code == 304

    assert sum(server.not_modified_counts.values()) == sum(
        len(p.feed_paths) - 1 for p in DEMO_PROVIDERS
    )
