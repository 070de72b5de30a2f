"""GraphQL search over real synced data; expected answers computed independently from raw feeds."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from geographiclib.geodesic import Geodesic
from shapely.geometry import Point, shape

from app.platform.redis import create_redis
from app.platform.redis_pipelined import Endpoint, PipelinedRedis
from app.runtime import Runtime
from app.vehicle_index import VehicleIndex
from providers.simulators.feed_server import FeedServer
from tests.helpers import (
    add_conformance_provider,
    add_provider,
    age_last_success,
    raw,
    scooter,
    serve_documents,
    synthetic_scooter_feeds,
)

VEHICLE_FIELDS = """
    id formFactor propulsionType lat lon distanceMeters currentRangeMeters currentFuelPercent
    isReserved isDisabled lastReported rentalUris { android ios web }
    provider { id name } vehicleType { id name formFactor maxRangeMeters }
    pricingPlan { id name price { amountMinor currency amount } }
"""


async def gql(api: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await api.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def geodesic(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(Geodesic.WGS84.Inverse(lat1, lon1, lat2, lon2)["s12"])


def truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true")


@pytest.fixture
async def wolfsburg(runtime: Runtime, feed_server: tuple[FeedServer, str]) -> str:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "tier-wolfsburg")
    assert (await runtime.sync.sync(slug)).ok
    return slug


async def test_nearest_vehicles_match_an_independent_geodesic_ranking(
    api: httpx.AsyncClient, wolfsburg: str
) -> None:
    bikes = raw("tier-wolfsburg", "free_bike_status")["data"]["bikes"]
    lat = sum(float(b["lat"]) for b in bikes) / len(bikes)
    lon = sum(float(b["lon"]) for b in bikes) / len(bikes)
    ranked = sorted(
        (geodesic(lat, lon, float(b["lat"]), float(b["lon"])), b["bike_id"])
        for b in bikes
        if not truthy(b["is_reserved"]) and not truthy(b["is_disabled"])
    )
    expected = [(d, f"{wolfsburg}:{vid}") for d, vid in ranked if d <= 800][:25]
    assert len(expected) == 25  # the point is inside the fleet: the test means something

    body = await gql(
        api,
        f"query($lat: Float!, $lon: Float!) {{ vehicles(near: {{lat: $lat, lon: $lon, "
        f"radiusMeters: 800}}, first: 25) {{ {VEHICLE_FIELDS} }} }}",
        lat=lat,
        lon=lon,
    )

    assert "errors" not in body, body
    vehicles = body["data"]["vehicles"]
    assert [v["id"] for v in vehicles] == [vid for _, vid in expected]
    for v, (distance, _) in zip(vehicles, expected, strict=True):
        assert v["distanceMeters"] == pytest.approx(distance, abs=0.01)
        assert v["formFactor"] == "SCOOTER_STANDING"
        assert v["provider"]["id"] == wolfsburg


async def test_search_answers_from_postgis_when_redis_index_is_unavailable(
    runtime: Runtime, api: httpx.AsyncClient, wolfsburg: str
) -> None:
    query = (
        "{ vehicles(near: {lat: 52.4227, lon: 10.7865, radiusMeters: 2000}, first: 30) "
        "{ id distanceMeters rentalUris { android ios web } lastReported currentRangeMeters "
        "pricingPlan { id } } }"
    )
    from_index = (await gql(api, query))["data"]["vehicles"]
    # A Redis that refuses connections (nothing listens on port 1): a real outage, not a stub.
    # Both clients the API uses: redis-py, and the hot path's pipelined connection.
    unreachable = create_redis("redis://127.0.0.1:1/0")
    pipelined = PipelinedRedis(Endpoint("127.0.0.1", 1, 0, None, None))
    original = runtime.search.index
    try:
        runtime.search.index = VehicleIndex(unreachable, runtime.keys, search_client=pipelined)
        body = await gql(api, query)
    finally:
        runtime.search.index = original
        await unreachable.aclose()
        await pipelined.aclose()
    assert "errors" not in body, body
    from_postgis = body["data"]["vehicles"]
    assert from_index, "the query point should have vehicles around it"
    assert [v["id"] for v in from_postgis] == [v["id"] for v in from_index]
    for a, b in zip(from_postgis, from_index, strict=True):
        assert a["distanceMeters"] == pytest.approx(b["distanceMeters"], abs=0.01)
        # Every other field is the same whichever store answered.
        assert {k: v for k, v in a.items() if k != "distanceMeters"} == {
            k: v for k, v in b.items() if k != "distanceMeters"
        }
    assert any(v["rentalUris"] for v in from_index), "the feed should give rental URIs"


async def test_filters_apply_before_first(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    assert (await runtime.sync.sync(slug)).ok
    cars = raw("getaround-stavanger", "vehicle_status")["data"]["vehicles"]
    types = {
        t["vehicle_type_id"]: t["propulsion_type"]
        for t in raw("getaround-stavanger", "vehicle_types")["data"]["vehicle_types"]
    }
    lat = sum(float(c["lat"]) for c in cars) / len(cars)
    lon = sum(float(c["lon"]) for c in cars) / len(cars)
    electric = sorted(
        (geodesic(lat, lon, float(c["lat"]), float(c["lon"])), f"{slug}:{c['vehicle_id']}")
        for c in cars
        if types[c["vehicle_type_id"]] == "electric"
        and not truthy(c["is_reserved"])
        and not truthy(c["is_disabled"])
    )
    expected = [vid for d, vid in electric if d <= 5000][:3]
    nearest_any = sorted(
        (geodesic(lat, lon, float(c["lat"]), float(c["lon"])), f"{slug}:{c['vehicle_id']}")
        for c in cars
        if not truthy(c["is_reserved"]) and not truthy(c["is_disabled"])
    )
    # The filter must matter here: the nearest cars of any kind are not the nearest electric.
    assert expected and expected != [vid for _, vid in nearest_any[:3]]

    body = await gql(
        api,
        "query($lat: Float!, $lon: Float!) { vehicles(near: {lat: $lat, lon: $lon, "
        "radiusMeters: 5000}, filter: {propulsionTypes: [ELECTRIC], formFactors: [CAR]}, "
        "first: 3) { id propulsionType formFactor } }",
        lat=lat,
        lon=lon,
    )

    assert [v["id"] for v in body["data"]["vehicles"]] == expected
    assert {v["propulsionType"] for v in body["data"]["vehicles"]} == {"ELECTRIC"}


async def test_within_answers_the_vehicles_inside_nearest_to_its_centre_first(
    runtime: Runtime, api: httpx.AsyncClient, wolfsburg: str
) -> None:
    box = {"minLat": 52.415, "minLon": 10.77, "maxLat": 52.425, "maxLon": 10.79}
    centre = ((box["minLat"] + box["maxLat"]) / 2, (box["minLon"] + box["maxLon"]) / 2)
    bikes = raw("tier-wolfsburg", "free_bike_status")["data"]["bikes"]
    inside = {
        f"{wolfsburg}:{b['bike_id']}": geodesic(*centre, float(b["lat"]), float(b["lon"]))
        for b in bikes
        if box["minLat"] <= float(b["lat"]) <= box["maxLat"]
        and box["minLon"] <= float(b["lon"]) <= box["maxLon"]
        and not truthy(b["is_reserved"])
        and not truthy(b["is_disabled"])
    }
    assert 10 < len(inside) <= 200
    nearest = sorted(inside, key=inside.__getitem__)
    # The tenth and eleventh are not a near-tie: "the nearest ten" is one set.
    assert inside[nearest[10]] - inside[nearest[9]] > 0.01
    query = (
        "query($box: WithinInput!, $n: Int!) { vehicles(within: $box, first: $n) "
        "{ id distanceMeters } }"
    )

    for store in ("redis", "postgis"):
        original = runtime.search.index
        runtime.search.index = original if store == "redis" else None
        try:
            every = (await gql(api, query, box=box, n=200))["data"]["vehicles"]
            first_ten = (await gql(api, query, box=box, n=10))["data"]["vehicles"]
        finally:
            runtime.search.index = original

        assert sorted(v["id"] for v in every) == sorted(inside), store
        for v in every:
            assert v["distanceMeters"] == pytest.approx(inside[v["id"]], abs=0.002), store
        keys = [(v["distanceMeters"], v["id"]) for v in every]
        assert keys == sorted(keys), store
        assert {v["id"] for v in first_ten} == set(nearest[:10]), store


async def test_vehicle_by_id_and_unknown_id(api: httpx.AsyncClient, wolfsburg: str) -> None:
    first = raw("tier-wolfsburg", "free_bike_status")["data"]["bikes"][0]
    vid = f"{wolfsburg}:{first['bike_id']}"
    body = await gql(
        api,
        'query($id: ID!) { vehicle(id: $id) { id lat lon } missing: vehicle(id: "x:y") { id } }',
        id=vid,
    )
    assert body["data"]["vehicle"] == {
        "id": vid,
        "lat": float(first["lat"]),
        "lon": float(first["lon"]),
    }
    assert body["data"]["missing"] is None


async def test_providers_list_counts_and_bounding_box(
    api: httpx.AsyncClient, wolfsburg: str
) -> None:
    bikes = raw("tier-wolfsburg", "free_bike_status")["data"]["bikes"]
    body = await gql(
        api,
        "{ providers { id name formFactors vehicleCount stale error lastSyncedAt "
        "boundingBox { minLat minLon maxLat maxLon } } }",
    )
    (provider,) = body["data"]["providers"]
    assert provider["id"] == wolfsburg
    assert provider["vehicleCount"] == len(bikes)
    assert provider["formFactors"] == ["SCOOTER_STANDING"]
    assert provider["stale"] is False and provider["error"] is None
    box = provider["boundingBox"]
    assert box["minLat"] == pytest.approx(min(float(b["lat"]) for b in bikes))
    assert box["maxLon"] == pytest.approx(max(float(b["lon"]) for b in bikes))


async def test_stations_nearest_first_with_availability(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "lillestrom-bysykkel")
    assert (await runtime.sync.sync(slug)).ok
    info = raw("lillestrom-bysykkel", "station_information")["data"]["stations"]
    status = {
        s["station_id"]: s for s in raw("lillestrom-bysykkel", "station_status")["data"]["stations"]
    }
    lat, lon = float(info[0]["lat"]), float(info[0]["lon"])
    expected = sorted(
        (geodesic(lat, lon, float(s["lat"]), float(s["lon"])), s["station_id"]) for s in info
    )

    body = await gql(
        api,
        "query($lat: Float!, $lon: Float!) { stations(near: {lat: $lat, lon: $lon, radiusMeters: "
        "5000}) { id name distanceMeters numVehiclesAvailable numDocksAvailable "
        "vehicleTypesAvailable { count vehicleType { id formFactor } } provider { id } } }",
        lat=lat,
        lon=lon,
    )

    stations = body["data"]["stations"]
    assert [s["id"] for s in stations] == [f"{slug}:{sid}" for d, sid in expected if d <= 5000]
    for s in stations:
        sid = s["id"].split(":", 1)[1]
        assert s["numVehiclesAvailable"] == status[sid]["num_bikes_available"]
        assert s["numDocksAvailable"] == status[sid]["num_docks_available"]


# --- geofencing ---------------------------------------------------------------------------


def expected_ride_end(folder: str, lat: float, lon: float, vehicle_type_id: str) -> bool:
    """GBFS 3.0 precedence, straight from the raw file: first polygon with a rule for the type."""
    data = raw(folder, "geofencing_zones")["data"]["geofencing_zones"]
    point = Point(lon, lat)
    for feature in data["features"]:
        if not feature.get("geometry") or not shape(feature["geometry"]).covers(point):
            continue
        for rule in feature["properties"].get("rules", []):
            ids = rule.get("vehicle_type_ids")
            if ids is None or vehicle_type_id in ids:
                return bool(rule["ride_end_allowed"])
    for rule in raw(folder, "geofencing_zones")["data"].get("global_rules", []):
        ids = rule.get("vehicle_type_ids")
        if ids is None or vehicle_type_id in ids:
            return bool(rule["ride_end_allowed"])
    return True


@pytest.fixture
async def almere(runtime: Runtime, feed_server: tuple[FeedServer, str]) -> str:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "check-almere")
    assert (await runtime.sync.sync(slug)).ok
    return slug


async def test_ride_end_check_follows_zone_then_global_rules(
    api: httpx.AsyncClient, almere: str
) -> None:
    type_id = raw("check-almere", "vehicle_types")["data"]["vehicle_types"][0]["vehicle_type_id"]
    features = [
        f
        for f in raw("check-almere", "geofencing_zones")["data"]["geofencing_zones"]["features"]
        if f.get("geometry")
    ]
    inside = shape(features[0]["geometry"]).representative_point()
    far_away = (52.0, 5.0)  # outside every Almere zone: global rules decide
    query = (
        "query($lat: Float!, $lon: Float!, $t: ID!) { rideEndCheck(lat: $lat, lon: $lon, "
        "vehicleTypeId: $t) { allowed reason zone { id name order } } }"
    )
    results = {}
    for label, (lat, lon) in {"inside": (inside.y, inside.x), "outside": far_away}.items():
        body = await gql(api, query, lat=lat, lon=lon, t=f"{almere}:{type_id}")
        assert "errors" not in body, body
        results[label] = body["data"]["rideEndCheck"]
        assert results[label]["allowed"] == expected_ride_end("check-almere", lat, lon, type_id)
        assert results[label]["reason"]
    assert results["outside"]["zone"] is None
    assert results["outside"]["allowed"] is False  # Check Almere parks only inside zones


async def test_ride_end_check_by_provider_and_form_factor(
    api: httpx.AsyncClient, almere: str
) -> None:
    body = await gql(
        api,
        '{ rideEndCheck(lat: 52.0, lon: 5.0, providerId: "check-almere", formFactor: MOPED) '
        "{ allowed vehicleTypeIds } }",
    )
    types = raw("check-almere", "vehicle_types")["data"]["vehicle_types"]
    mopeds = [t["vehicle_type_id"] for t in types if t["form_factor"] == "moped"]
    assert mopeds
    expected = all(expected_ride_end("check-almere", 52.0, 5.0, t) for t in mopeds)
    assert body["data"]["rideEndCheck"]["allowed"] is expected
    assert body["data"]["rideEndCheck"]["vehicleTypeIds"] == [f"{almere}:{t}" for t in mopeds]


async def test_ride_end_check_for_a_vehicle_uses_its_type(
    api: httpx.AsyncClient, almere: str
) -> None:
    vehicle = raw("check-almere", "vehicle_status")["data"]["vehicles"][0]
    lat, lon = float(vehicle["lat"]), float(vehicle["lon"])
    body = await gql(
        api,
        "query($v: ID!, $lat: Float!, $lon: Float!) { rideEndCheck(lat: $lat, lon: $lon, "
        "vehicleId: $v) { allowed vehicleTypeIds } }",
        v=f"{almere}:{vehicle['vehicle_id']}",
        lat=lat,
        lon=lon,
    )
    check = body["data"]["rideEndCheck"]
    assert check["vehicleTypeIds"] == [f"{almere}:{vehicle['vehicle_type_id']}"]
    assert check["allowed"] is expected_ride_end(
        "check-almere", lat, lon, vehicle["vehicle_type_id"]
    )


async def test_geofencing_zones_by_provider_keep_feed_order(
    api: httpx.AsyncClient, almere: str
) -> None:
    body = await gql(
        api,
        '{ geofencingZones(providers: ["check-almere"], first: 50) { id order name '
        "geometry rules { rideEndAllowed vehicleTypeIds } } }",
    )
    zones = body["data"]["geofencingZones"]
    assert len(zones) == 14
    assert [z["order"] for z in zones] == sorted(z["order"] for z in zones)
    assert all(z["geometry"]["type"] == "MultiPolygon" for z in zones)


# --- bad input ----------------------------------------------------------------------------

NEAR = "{lat: 52.42, lon: 10.78, radiusMeters: 500}"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ vehicles(near: {lat: 91, lon: 10, radiusMeters: 100}) { id } }", "INVALID_COORDINATES"),
        (
            "{ vehicles(near: {lat: 52, lon: -181, radiusMeters: 100}) { id } }",
            "INVALID_COORDINATES",
        ),
        ("{ vehicles(near: {lat: 52, lon: 10, radiusMeters: 0}) { id } }", "INVALID_RADIUS"),
        ("{ vehicles(near: {lat: 52, lon: 10, radiusMeters: -5}) { id } }", "INVALID_RADIUS"),
        ("{ vehicles(near: {lat: 52, lon: 10, radiusMeters: 5001}) { id } }", "INVALID_RADIUS"),
        (f"{{ vehicles(near: {NEAR}, first: 0) {{ id }} }}", "INVALID_FIRST"),
        (f"{{ vehicles(near: {NEAR}, first: 201) {{ id }} }}", "INVALID_FIRST"),
        ("{ vehicles { id } }", "INVALID_AREA"),
        (
            f"{{ vehicles(near: {NEAR}, within: {{minLat: 1, minLon: 1, maxLat: 2, maxLon: 2}}) "
            "{ id } }",
            "INVALID_AREA",
        ),
        (
            "{ vehicles(within: {minLat: 53, minLon: 10, maxLat: 52, maxLon: 11}) { id } }",
            "INVALID_BOUNDING_BOX",
        ),
        (
            f'{{ vehicles(near: {NEAR}, filter: {{providers: ["nope"]}}) {{ id }} }}',
            "UNKNOWN_PROVIDER",
        ),
        (
            f"{{ vehicles(near: {NEAR}, filter: {{formFactors: [HOVERCRAFT]}}) {{ id }} }}",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            f"{{ vehicles(near: {NEAR}, filter: {{minRangeMeters: -1}}) {{ id }} }}",
            "INVALID_FILTER",
        ),
        ("{ stations(near: {lat: 52, lon: 10, radiusMeters: 99999}) { id } }", "INVALID_RADIUS"),
        ("{ rideEndCheck(lat: 52, lon: 10) { allowed } }", "INVALID_ARGUMENTS"),
        (
            '{ rideEndCheck(lat: 52, lon: 10, vehicleTypeId: "x:y") { allowed } }',
            "UNKNOWN_VEHICLE_TYPE",
        ),
        ("{ vehicles(near: ", "GRAPHQL_PARSE_FAILED"),
        ("{ nothingHere }", "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_bad_input_gets_a_stable_error_code(
    api: httpx.AsyncClient, query: str, code: str
) -> None:
    body = await gql(api, query)
    assert body.get("data") in (None, {}) or all(v is None for v in body["data"].values())
    codes = [e["extensions"]["code"] for e in body["errors"]]
    assert codes == [code], body
    assert body["errors"][0]["message"]


async def test_bad_variable_value_is_a_user_input_error(api: httpx.AsyncClient) -> None:
    body = await gql(
        api,
        "query($f: [FormFactor!]) { vehicles(near: {lat: 52, lon: 10, radiusMeters: 10}, "
        "filter: {formFactors: $f}) { id } }",
        f=["SPACESHIP"],
    )
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


async def test_alias_and_token_limits_are_enforced(api: httpx.AsyncClient) -> None:
    aliases = " ".join(f"a{i}: providers {{ id }}" for i in range(40))
    body = await gql(api, f"{{ {aliases} }}")
    # Forty root fields also cost more than a request may spend: both rules say so.
    codes = {e["extensions"]["code"] for e in body["errors"]}
    assert codes == {"TOO_MANY_ALIASES", "QUERY_TOO_COSTLY"}

    tokens = " ".join("id" for _ in range(3000))
    body = await gql(api, f"{{ providers {{ {tokens} }} }}")
    assert [e["extensions"]["code"] for e in body["errors"]] == ["TOO_MANY_TOKENS"]


async def test_depth_limit_is_enforced(runtime: Runtime) -> None:
    from app.main import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(max_query_depth=2))
    app.state.runtime = runtime
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as c:
        body = await gql(
            c, f"{{ vehicles(near: {NEAR}) {{ provider {{ boundingBox {{ minLat }} }} }} }}"
        )
    assert [e["extensions"]["code"] for e in body["errors"]] == ["QUERY_TOO_DEEP"]


def test_committed_schema_matches_the_code() -> None:
    from graphql_schema.schema import schema

    committed = Path(__file__).resolve().parents[2] / "schema.graphql"
    assert committed.read_text().strip() == schema.as_str().strip(), (
        "schema.graphql is out of date: run `make schema` and commit the diff"
    )


async def test_provider_validation_report_lists_the_skipped_zones(
    api: httpx.AsyncClient, almere: str
) -> None:
    body = await gql(
        api,
        "{ providers { id validation(first: 200) { syncStatus errorCount warningCount "
        "findings { severity code feed recordId } } } }",
    )
    (provider,) = body["data"]["providers"]
    report = provider["validation"]
    missing = [f for f in report["findings"] if f["code"] == "GEOMETRY_MISSING"]
    assert report["syncStatus"] == "succeeded"
    assert len(missing) == 2
    assert report["errorCount"] == sum(1 for f in report["findings"] if f["severity"] == "error")


async def test_vehicle_pricing_plan_money_is_in_minor_units(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    assert (await runtime.sync.sync(slug)).ok
    car = raw("getaround-stavanger", "vehicle_status")["data"]["vehicles"][0]
    plans = {
        p["plan_id"]: p for p in raw("getaround-stavanger", "system_pricing_plans")["data"]["plans"]
    }
    plan = plans[car["pricing_plan_id"]]

    body = await gql(
        api,
        "query($id: ID!) { vehicle(id: $id) { pricingPlan { id currency "
        "price { amountMinor currency amount } "
        "perMinPricing { start interval rate { amountMinor } } "
        "perKmPricing { start interval rate { amountMinor } } } } }",
        id=f"{slug}:{car['vehicle_id']}",
    )

    got = body["data"]["vehicle"]["pricingPlan"]
    minor = int(Decimal(str(plan["price"])) * 100)  # NOK has two decimals
    assert got["id"] == f"{slug}:{plan['plan_id']}"
    assert got["price"] == {
        "amountMinor": minor,
        "currency": plan["currency"],
        "amount": f"{Decimal(minor) / 100:.2f}",
    }
    for key, field in (("per_min_pricing", "perMinPricing"), ("per_km_pricing", "perKmPricing")):
        expected = [
            (s["start"], s["interval"], int(Decimal(str(s["rate"])) * 100))
            for s in plan.get(key, [])
        ]
        assert [
            (s["start"], s["interval"], s["rate"]["amountMinor"]) for s in got[field]
        ] == expected


async def test_provider_without_a_recent_good_sync_is_reported_stale(
    runtime: Runtime, api: httpx.AsyncClient, wolfsburg: str
) -> None:
    query = "{ providers { id stale error } }"
    assert (await gql(api, query))["data"]["providers"][0]["stale"] is False
    await age_last_success(runtime, wolfsburg, runtime.settings.stale_after_seconds + 60)

    provider = (await gql(api, query))["data"]["providers"][0]

    assert provider["stale"] is True
    assert provider["error"] is None  # nothing failed; the data is simply old


async def test_selective_filter_reads_past_many_rejected_neighbours(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    centre = (52.52, 13.40)
    # 400 scooters packed around the centre, 6 cars further out: the nearest several hundred
    # candidates are all rejected by a CAR filter.
    fleet = [
        scooter(f"s{i}", centre[0] + (i % 20) * 0.00005, centre[1] + (i // 20) * 0.00005)
        for i in range(400)
    ]
    cars = [
        scooter(f"c{i}", centre[0] + 0.004 + i * 0.001, centre[1], vehicle_type_id="car")
        for i in range(6)
    ]
    documents = synthetic_scooter_feeds(fleet + cars)
    documents["vehicle_types"]["data"]["vehicle_types"].append(
        {
            "vehicle_type_id": "car",
            "form_factor": "car",
            "propulsion_type": "electric",
            "max_range_meters": 300000,
        }
    )
    await add_provider(runtime, "mixed", serve_documents(server, base_url, "mixed", documents))
    assert (await runtime.sync.sync("mixed")).ok
    ranked = sorted((geodesic(*centre, c["lat"], c["lon"]), f"mixed:{c['bike_id']}") for c in cars)

    body = await gql(
        api,
        "{ vehicles(near: {lat: 52.52, lon: 13.40, radiusMeters: 2000}, first: 4, "
        "filter: {formFactors: [CAR]}) { id distanceMeters } }",
    )

    assert [v["id"] for v in body["data"]["vehicles"]] == [vid for _, vid in ranked[:4]]


async def test_automatic_persisted_queries_follow_the_apollo_protocol(
    runtime: Runtime, api: httpx.AsyncClient, wolfsburg: str
) -> None:
    query = "{ providers { id } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}

    unknown = (await api.post("/graphql", json={"extensions": persisted})).json()
    registered = (await api.post("/graphql", json={"query": query, "extensions": persisted})).json()
    by_hash = (await api.post("/graphql", json={"extensions": persisted})).json()
    mismatch = (
        await api.post("/graphql", json={"query": "{ __typename }", "extensions": persisted})
    ).json()

    assert [e["extensions"]["code"] for e in unknown["errors"]] == ["PERSISTED_QUERY_NOT_FOUND"]
    assert unknown["errors"][0]["message"] == "PersistedQueryNotFound"
    assert registered["data"] == by_hash["data"] == {"providers": [{"id": wolfsburg}]}
    assert [e["extensions"]["code"] for e in mismatch["errors"]] == [
        "PERSISTED_QUERY_HASH_MISMATCH"
    ]
    # Stored in Redis, so another API process knows the document too.
    assert (
        await runtime.redis.get(f"{runtime.settings.redis_prefix}:apq:{digest}") == query.encode()
    )


async def test_postgis_fallback_ranks_like_the_index_with_filters(
    runtime: Runtime, api: httpx.AsyncClient, wolfsburg: str
) -> None:
    query = (
        "{ vehicles(near: {lat: 52.4227, lon: 10.7865, radiusMeters: 3000}, first: 60, "
        "filter: {minRangeMeters: 10000}) { id distanceMeters currentRangeMeters } }"
    )
    from_index = (await gql(api, query))["data"]["vehicles"]
    original = runtime.search.index
    try:
        runtime.search.index = None  # what an open circuit to Redis does
        from_postgis = (await gql(api, query))["data"]["vehicles"]
    finally:
        runtime.search.index = original
    assert len(from_index) == 60
    assert [v["id"] for v in from_postgis] == [v["id"] for v in from_index]
    assert all(v["currentRangeMeters"] >= 10000 for v in from_postgis)


async def test_vehicles_at_one_spot_come_once_each_in_id_order(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    # 70 scooters on one pavement: equal distances. Redis orders ties arbitrarily, and not
    # alike in two calls, while a search reads further into a circle in several calls.
    server, base_url = feed_server
    spot = (52.5301, 13.4102)
    fleet = [scooter(f"v{i:02d}", *spot) for i in range(70)]
    fleet += [scooter(f"w{i}", spot[0] + 0.002 + i * 0.0001, spot[1]) for i in range(5)]
    await add_provider(
        runtime, "heap", serve_documents(server, base_url, "heap", synthetic_scooter_feeds(fleet))
    )
    assert (await runtime.sync.sync("heap")).ok
    # From the spot, and from the centre of a box around it (17 m away), the same order.
    expected = sorted(f"heap:v{i:02d}" for i in range(70)) + [f"heap:w{i}" for i in range(5)]
    box = {"minLat": 52.52, "minLon": 13.40, "maxLat": 52.54, "maxLon": 13.42}
    query = (
        "query($n: NearInput, $b: WithinInput, $first: Int) { vehicles(near: $n, within: $b, "
        "first: $first) { id } }"
    )
    for store in ("redis", "postgis"):
        original = runtime.search.index
        runtime.search.index = original if store == "redis" else None
        try:
            for first in (5, 40, 72):
                for area in (
                    {"n": {"lat": spot[0], "lon": spot[1], "radiusMeters": 900}},
                    {"b": box},
                ):
                    body = await gql(api, query, first=first, **area)
                    ids = [v["id"] for v in body["data"]["vehicles"]]
                    assert ids == expected[:first], (store, first, area)
        finally:
            runtime.search.index = original
