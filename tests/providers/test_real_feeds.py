"""Six more real operator feeds, as published, end to end: local HTTP -> sync -> PostGIS + Redis.

Each folder of ``conformance/gbfs/feeds`` is served unchanged by the project's FeedServer and
registered with explicit per-feed URLs (its discovery file points at the operator's hosts).
What must land is computed in this module from the raw JSON with deliberately simple logic of
its own, never from the adapter: every record with an id and a usable position is stored, and
every record that is not is named by a finding. Then each feed's own quirks are checked to be
reported, and the overrides are shown on Bird Seattle through the GraphQL API.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from adapters.dto import Finding
from app.platform.db import transaction
from app.runtime import Runtime
from app.staff_auth import create_token
from providers.simulators.feed_server import FeedServer
from providers.sync import SyncReport
from tests.helpers import add_conformance_provider, add_provider, feed_dir

FOLDERS = [
    "cooltra-the-hague",
    "bolt-essen",
    "nextbike-linz",
    "bird-seattle",
    "mybuxi-ch",
    "pogoh-pittsburgh",
]
# The propulsion values GBFS defines (2.3 and 3.0): a type naming another cannot be read.
PROPULSIONS = {
    "human",
    "electric_assist",
    "electric",
    "combustion",
    "combustion_diesel",
    "hybrid",
    "plug_in_hybrid",
    "hydrogen_fuel_cell",
}
LIVE = ("vehicle_status", "free_bike_status", "station_status")
DAY = 86400


# --- what the raw files say ------------------------------------------------------------------


def documents(folder: str) -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(feed_dir(folder).glob("*.json"))}


def located(record: dict[str, Any]) -> bool:
    lat, lon = record.get("lat"), record.get("lon")
    if not (isinstance(lat, int | float) and isinstance(lon, int | float)):
        return False
    return -90 <= lat <= 90 and -180 <= lon <= 180 and (lat, lon) != (0, 0)


def timestamp(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


@dataclass
class Expected:
    vehicle_ids: set[str] = field(default_factory=set)
    station_ids: set[str] = field(default_factory=set)
    # Raw records that cannot be stored (no position, a repeated id), by file.
    not_stored: dict[str, set[str]] = field(default_factory=dict)
    form_factors: Counter[str] = field(default_factory=Counter)
    available: Counter[str] = field(default_factory=Counter)  # by form factor
    vehicle_types: int = 0
    pricing_plans: int = 0
    regions: int = 0
    zones: int = 0


def expected(folder: str) -> Expected:
    docs = documents(folder)
    out = Expected()

    station_ids: list[str] = []
    for s in docs.get("station_information", {}).get("data", {}).get("stations", []):
        if s["station_id"] in station_ids or not located(s):
            out.not_stored.setdefault("station_information", set()).add(s["station_id"])
        else:
            station_ids.append(s["station_id"])
    out.station_ids = set(station_ids)

    raw_types = docs.get("vehicle_types", {}).get("data", {}).get("vehicle_types")
    form_factor: dict[str, str] = {
        t["vehicle_type_id"]: {"scooter": "scooter_standing"}.get(
            t["form_factor"], t["form_factor"]
        )
        for t in raw_types or []
        if t.get("propulsion_type") in PROPULSIONS
    }

    def form_factor_of(type_id: str | None) -> str:
        if raw_types is None:
            return "bicycle"  # GBFS: without vehicle_types, every vehicle is a bicycle
        if type_id is None and len(form_factor) == 1:
            return next(iter(form_factor.values()))
        return form_factor.get(type_id or "", "other")  # undescribed: kept as `other`

    vehicle_doc = docs.get("vehicle_status") or docs.get("free_bike_status") or {"data": {}}
    vehicle_file = "vehicle_status" if "vehicle_status" in docs else "free_bike_status"
    named_types: set[str] = set()
    for v in vehicle_doc["data"].get("vehicles", vehicle_doc["data"].get("bikes", [])):
        vid = v.get("vehicle_id") or v.get("bike_id")
        if vid in out.vehicle_ids or not (located(v) or v.get("station_id") in out.station_ids):
            out.not_stored.setdefault(vehicle_file, set()).add(vid)
            continue
        out.vehicle_ids.add(vid)
        kind = form_factor_of(v.get("vehicle_type_id"))
        out.form_factors[kind] += 1
        if v.get("vehicle_type_id"):
            named_types.add(v["vehicle_type_id"])
        if not (bool(v["is_reserved"]) or bool(v["is_disabled"])):
            out.available[kind] += 1

    regions = {
        r["region_id"] for r in docs.get("system_regions", {}).get("data", {}).get("regions", [])
    }
    for s in docs.get("station_information", {}).get("data", {}).get("stations", []):
        if s["station_id"] in out.station_ids and s.get("region_id"):
            regions.add(s["region_id"])
    for s in docs.get("station_status", {}).get("data", {}).get("stations", []):
        for entry in s.get("vehicle_types_available") or []:
            named_types.add(entry["vehicle_type_id"])
    out.regions = len(regions)
    if raw_types is not None:
        out.vehicle_types = len(form_factor.keys() | named_types)
    else:
        has_records = bool(out.vehicle_ids or out.station_ids)
        out.vehicle_types = int(has_records) + len(named_types)
    out.pricing_plans = len(docs.get("system_pricing_plans", {}).get("data", {}).get("plans", []))
    zones = docs.get("geofencing_zones", {}).get("data", {}).get("geofencing_zones", {})
    out.zones = sum(1 for f in zones.get("features", []) if f.get("geometry"))
    return out


# --- what the service holds ------------------------------------------------------------------


async def scalar_set(runtime: Runtime, sql: str, provider_id: str) -> set[Any]:
    async with runtime.sessions() as session:
        return {row[0] for row in await session.execute(text(sql), {"p": provider_id})}


async def count(runtime: Runtime, table: str, provider_id: str) -> int:
    async with runtime.sessions() as session:
        result = await session.execute(
            text(f"SELECT count(*) FROM {table} WHERE provider_id = :p"), {"p": provider_id}
        )
        return int(result.scalar_one())


async def form_factor_counts(runtime: Runtime, provider_id: str) -> Counter[str]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT form_factor, count(*) FROM vehicles WHERE provider_id = :p "
                "GROUP BY form_factor"
            ),
            {"p": provider_id},
        )
        return Counter({r[0]: r[1] for r in rows})


def named(findings: list[Finding], record_id: str) -> bool:
    return any(f.record_id == record_id or record_id in f.message for f in findings)


def codes(report: SyncReport, code: str, feed: str | None = None) -> list[Finding]:
    return [f for f in report.findings if f.code == code and (feed is None or f.feed == feed)]


# --- each feed's own quirks, checked against its raw text ------------------------------------


async def cooltra(runtime: Runtime, slug: str, report: SyncReport) -> None:
    docs = documents("cooltra-the-hague")
    # The same key twice in one object: the raw text shows it, the parsed document cannot.
    raw_text = (feed_dir("cooltra-the-hague") / "system_information.json").read_text()
    apps = docs["system_information"]["data"]["rental_apps"]
    repeated = [key for key in apps if raw_text.count(f'"{key}"') > 1]
    assert repeated
    messages = " ".join(f.message for f in codes(report, "DUPLICATE_JSON_KEY"))
    for key in repeated:
        assert f"data.rental_apps.{key}" in messages
    # A legacy time zone name, kept as sent.
    timezone = docs["system_information"]["data"]["timezone"]
    assert "/" not in timezone
    assert codes(report, "TIMEZONE_NOT_A_LOCATION", "system_information")
    stored = await scalar_set(
        runtime, "SELECT system_info->>'timezone' FROM providers WHERE id = :p", slug
    )
    assert stored == {timezone}
    # A v3 rule also carrying v2's ride_allowed.
    features = docs["geofencing_zones"]["data"]["geofencing_zones"]["features"]
    both = [
        r
        for f in features
        for r in f["properties"].get("rules", [])
        if "ride_allowed" in r and "ride_start_allowed" in r
    ]
    assert both
    assert any("ride_allowed" in f.message for f in codes(report, "FIELD_VERSION_MISMATCH"))
    # Files months behind the live data (the discovery file is not read with explicit URLs).
    newest = max(timestamp(docs[n]["last_updated"]) for n in LIVE if n in docs)
    stale = {
        name
        for name, doc in docs.items()
        if name not in (*LIVE, "gbfs")
        and newest - (timestamp(doc["last_updated"]) + doc.get("ttl", 0)) > 30 * DAY
    }
    assert stale
    assert {f.feed for f in codes(report, "STALE_FILE")} == stale


async def bolt(runtime: Runtime, slug: str, report: SyncReport) -> None:
    docs = documents("bolt-essen")
    # Global rules forbid ending a ride outside the zones: stored as published.
    raw_rules = docs["geofencing_zones"]["data"]["global_rules"]
    async with runtime.sessions() as session:
        stored = (
            await session.execute(
                text("SELECT global_rules FROM providers WHERE id = :p"), {"p": slug}
            )
        ).scalar_one()
    keys = ("ride_start_allowed", "ride_end_allowed", "ride_through_allowed")
    assert [tuple(r[k] for k in keys) for r in stored] == [
        tuple(r[k] for k in keys) for r in raw_rules
    ]
    assert any(not r["ride_end_allowed"] for r in stored)
    # Rules of v3 zones written with v2's `vehicle_type_id`: read, and reported.
    assert codes(report, "FIELD_VERSION_MISMATCH", "geofencing_zones")
    # Its (valid, if distant) time zone is kept as sent.
    timezone = docs["system_information"]["data"]["timezone"]
    stored_tz = await scalar_set(
        runtime, "SELECT system_info->>'timezone' FROM providers WHERE id = :p", slug
    )
    assert stored_tz == {timezone}


async def nextbike(runtime: Runtime, slug: str, report: SyncReport) -> None:
    docs = documents("nextbike-linz")
    stations = {s["station_id"] for s in docs["station_information"]["data"]["stations"]}
    docked = {
        b["bike_id"]
        for b in docs["free_bike_status"]["data"]["bikes"]
        if b.get("station_id") in stations
    }
    assert docked
    # Docked bikes are listed as vehicles too: each stays linked to its station.
    stored = await scalar_set(
        runtime,
        "SELECT external_id FROM vehicles WHERE provider_id = :p AND station_id IS NOT NULL",
        slug,
    )
    assert stored == docked
    assert [f for f in report.findings if f.severity == "error"] == []


async def bird(runtime: Runtime, slug: str, report: SyncReport) -> None:
    docs = documents("bird-seattle")
    for name in ("station_information", "station_status"):
        assert docs[name]["data"]["stations"] == []
        assert codes(report, "EMPTY_FEED", name)
    deprecated = [
        t for t in docs["vehicle_types"]["data"]["vehicle_types"] if t["form_factor"] == "scooter"
    ]
    assert deprecated
    raw_kept = await scalar_set(
        runtime,
        "SELECT external_id FROM vehicle_types "
        "WHERE provider_id = :p AND raw_form_factor = 'scooter'",
        slug,
    )
    assert raw_kept == {t["vehicle_type_id"] for t in deprecated}


async def mybuxi(runtime: Runtime, slug: str, report: SyncReport) -> None:
    docs = documents("mybuxi-ch")
    zero = [
        t["vehicle_type_id"]
        for t in docs["vehicle_types"]["data"]["vehicle_types"]
        if t.get("max_range_meters") == 0 and t["propulsion_type"] != "human"
    ]
    assert zero
    assert [f.record_id for f in codes(report, "MAX_RANGE_ZERO")] == zero
    ranges = await scalar_set(
        runtime, "SELECT max_range_meters FROM vehicle_types WHERE provider_id = :p", slug
    )
    assert ranges == {None}
    # Its repeated station is the same record twice: nothing is lost, so a warning.
    stations = docs["station_information"]["data"]["stations"]
    counts = Counter(s["station_id"] for s in stations)
    repeated = {sid for sid, n in counts.items() if n > 1}
    assert repeated
    assert {f.record_id for f in codes(report, "DUPLICATE_RECORD")} == repeated


async def pogoh(runtime: Runtime, slug: str, report: SyncReport) -> None:
    docs = documents("pogoh-pittsburgh")
    assert all("version" not in doc for doc in docs.values())
    versions = await scalar_set(runtime, "SELECT gbfs_version FROM providers WHERE id = :p", slug)
    assert versions == {"1.0"}  # what the official validator assumes without `version`
    # 0/1 booleans: every field that has them is reported, none dropped.
    statuses = docs["station_status"]["data"]["stations"]
    integer_fields = {
        key
        for s in statuses
        for key in ("is_installed", "is_renting", "is_returning")
        if type(s.get(key)) is int
    }
    assert integer_fields
    reported = {f.message.split(":")[0] for f in codes(report, "COERCED_BOOLEAN", "station_status")}
    assert reported == integer_fields
    renting = await scalar_set(
        runtime, "SELECT count(*) FROM stations WHERE provider_id = :p AND is_renting", slug
    )
    assert renting == {sum(1 for s in statuses if s["is_renting"])}


QUIRKS: dict[str, Callable[[Runtime, str, SyncReport], Any]] = {
    "cooltra-the-hague": cooltra,
    "bolt-essen": bolt,
    "nextbike-linz": nextbike,
    "bird-seattle": bird,
    "mybuxi-ch": mybuxi,
    "pogoh-pittsburgh": pogoh,
}


@pytest.mark.parametrize("folder", FOLDERS)
async def test_real_feed_is_ingested_with_every_usable_record_and_its_quirks_reported(
    runtime: Runtime, feed_server: tuple[FeedServer, str], folder: str
) -> None:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, folder)
    want = expected(folder)

    report = await runtime.sync.sync(slug)

    assert report.ok, report.error
    # Every record the text describes with an id and a position is stored: by id, not count.
    assert (
        await scalar_set(runtime, "SELECT external_id FROM vehicles WHERE provider_id = :p", slug)
        == want.vehicle_ids
    )
    assert (
        await scalar_set(runtime, "SELECT external_id FROM stations WHERE provider_id = :p", slug)
        == want.station_ids
    )
    assert await form_factor_counts(runtime, slug) == want.form_factors
    assert {
        "vehicle_types": await count(runtime, "vehicle_types", slug),
        "pricing_plans": await count(runtime, "pricing_plans", slug),
        "regions": await count(runtime, "system_regions", slug),
        "zones": await count(runtime, "geofencing_zones", slug),
    } == {
        "vehicle_types": want.vehicle_types,
        "pricing_plans": want.pricing_plans,
        "regions": want.regions,
        "zones": want.zones,
    }
    # What is not stored is accounted for: each such record is named by a finding of its file.
    for feed, ids in want.not_stored.items():
        of_feed = [f for f in report.findings if f.feed == feed]
        assert all(named(of_feed, record_id) for record_id in ids), (feed, ids)
    # Search serves every available vehicle, each in its form factor's index too.
    assert await runtime.redis.zcard(runtime.keys.vehicle_geo) == want.available.total()
    for form_factor, available in want.available.items():
        assert await runtime.redis.zcard(runtime.keys.vehicle_geo_of(form_factor)) == available
    await QUIRKS[folder](runtime, slug, report)


# --- the overrides, shown on Bird Seattle through the API -------------------------------------

# Bird's own ids, as a deployment would copy them from the vehicles it sees.
BIRD_SCOOTER = "bae2102b-56ba-42ba-9097-720e5990b4b2"
BIRD_EBIKE = "2ea3c8b2-ed07-4c53-b87e-638c08471309"
BIRD_PLAN = "5c469505-2249-4383-9f13-8e4fd1430b0d"
OVERRIDES = {
    "vehicle_types": [
        {
            "vehicle_type_id": "seattle-scooter",
            "form_factor": "scooter_standing",
            "propulsion_type": "electric",
            "max_range_meters": 24000,
            "name": "Bird scooter",
            "default_pricing_plan_id": "seattle-standard",
        },
        {
            "vehicle_type_id": "seattle-ebike",
            "form_factor": "bicycle",
            "propulsion_type": "electric_assist",
            "max_range_meters": 60000,
            "name": "Bird e-bike",
            "default_pricing_plan_id": "seattle-standard",
        },
    ],
    "pricing_plans": [
        {
            "plan_id": "seattle-standard",
            "name": "Standard",
            "currency": "USD",
            "price": 1.0,
            "is_taxable": True,
            "per_min_pricing": [{"start": 0, "rate": 0.45, "interval": 1}],
        }
    ],
    "vehicle_type_map": {BIRD_SCOOTER: "seattle-scooter", BIRD_EBIKE: "seattle-ebike"},
    "pricing_plan_map": {BIRD_PLAN: "seattle-standard"},
    "exclude_feeds": ["geofencing_zones"],
}
SET_OVERRIDES = """
mutation($id: ID!, $overrides: JSON) {
  setProviderOverrides(id: $id, overrides: $overrides) {
    id
    overrides {
      vehicleTypeIds pricingPlanIds excludedFeeds
      vehicleTypeMap { operatorId mappedTo }
      pricingPlanMap { operatorId mappedTo }
    }
  }
}"""
NEAR = """
query($lat: Float!, $lon: Float!, $formFactors: [FormFactor!]) {
  vehicles(near: {lat: $lat, lon: $lon, radiusMeters: 1}, first: 5,
           filter: {formFactors: $formFactors, includeReserved: true, includeDisabled: true}) {
    id formFactor propulsionType
    vehicleType { id formFactor propulsionType maxRangeMeters name }
    pricingPlan { id name }
  }
}"""
QUOTE = """
query($id: ID!) {
  quote(vehicleId: $id, minutes: 10) {
    price { amountMinor currency }
    priceBreakdown { unlockFee { amountMinor } timePrice { amountMinor } }
  }
}"""
VALIDATION = """
query { providers { id config overrides { vehicleTypeIds }
                    validation(first: 200) { findings { code feed recordId message } } } }"""


async def gql(
    api: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, token: str = ""
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def test_a_fleet_whose_types_and_plan_the_feed_set_lacks_is_kept_then_described_by_overrides(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    slug = "bird-seattle"
    paths = server.add_directory(slug, feed_dir(slug))
    # A partial feed set, as operators publish them: no vehicle_types, no pricing plans. Bird's
    # vehicles still name its type and plan ids.
    lacking = {"gbfs", "vehicle_types", "system_pricing_plans"}
    feeds = {Path(p).stem: base_url + p for p in paths if Path(p).stem not in lacking}
    await add_provider(runtime, slug, feeds)
    bikes = documents(slug)["free_bike_status"]["data"]["bikes"]
    usable = {b["bike_id"]: b for b in bikes if located(b)}
    per_type = Counter(b["vehicle_type_id"] for b in usable.values())
    assert set(per_type) == {BIRD_SCOOTER, BIRD_EBIKE}

    # 1. Without overrides, the whole fleet is kept (it used to vanish), as the spec's default
    #    bicycle, and each unknown id is reported with the number of vehicles naming it.
    report = await runtime.sync.sync(slug)

    assert report.ok, report.error
    stored = await scalar_set(
        runtime, "SELECT external_id FROM vehicles WHERE provider_id = :p", slug
    )
    assert stored == set(usable)
    assert await form_factor_counts(runtime, slug) == Counter({"bicycle": len(usable)})
    unknown = {f.record_id: f for f in codes(report, "UNKNOWN_VEHICLE_TYPE", "free_bike_status")}
    assert set(unknown) == set(per_type)
    for type_id, n in per_type.items():
        assert f"{n} vehicle(s)" in unknown[type_id].message
    plans = Counter(b["pricing_plan_id"] for b in usable.values())
    (plan_warning,) = codes(report, "UNKNOWN_PRICING_PLAN")
    assert f"{plans[BIRD_PLAN]} vehicle(s)" in plan_warning.message
    assert [f for f in report.findings if f.severity == "error"] == []
    assert await count(runtime, "geofencing_zones", slug) > 0

    # 2. Staff describe the fleet through the admin API: types, a plan, id maps, and no zones.
    async with transaction(runtime.sessions) as session:
        _, token = await create_token(session, "ops")
    body = await gql(api, SET_OVERRIDES, {"id": slug, "overrides": OVERRIDES}, token)
    assert body["data"]["setProviderOverrides"]["overrides"] == {
        "vehicleTypeIds": ["seattle-scooter", "seattle-ebike"],
        "pricingPlanIds": ["seattle-standard"],
        "excludedFeeds": ["geofencing_zones"],
        "vehicleTypeMap": sorted(
            [
                {"operatorId": BIRD_SCOOTER, "mappedTo": "seattle-scooter"},
                {"operatorId": BIRD_EBIKE, "mappedTo": "seattle-ebike"},
            ],
            key=lambda m: m["operatorId"],
        ),
        "pricingPlanMap": [{"operatorId": BIRD_PLAN, "mappedTo": "seattle-standard"}],
    }
    zones_before = server.request_counts[f"/{slug}/geofencing_zones.json"]
    runtime.sync._caches.clear()

    report = await runtime.sync.sync(slug)

    assert report.ok, report.error
    assert server.request_counts[f"/{slug}/geofencing_zones.json"] == zones_before
    assert await count(runtime, "geofencing_zones", slug) == 0
    assert await scalar_set(
        runtime, "SELECT external_id FROM vehicles WHERE provider_id = :p", slug
    ) == set(usable)
    assert await form_factor_counts(runtime, slug) == Counter(
        {"scooter_standing": per_type[BIRD_SCOOTER], "bicycle": per_type[BIRD_EBIKE]}
    )
    assert codes(report, "UNKNOWN_VEHICLE_TYPE") == codes(report, "UNKNOWN_PRICING_PLAN") == []
    assert [f for f in report.findings if f.feed == "overrides"] == []

    # 3. Through the API: a scooter is found as a scooter, typed and priced as supplied.
    runtime.reference.invalidate()
    scooter = next(b for b in usable.values() if b["vehicle_type_id"] == BIRD_SCOOTER)
    found = (
        await gql(
            api,
            NEAR,
            {"lat": scooter["lat"], "lon": scooter["lon"], "formFactors": ["SCOOTER_STANDING"]},
        )
    )["data"]["vehicles"]
    hit = next(v for v in found if v["id"] == f"{slug}:{scooter['bike_id']}")
    assert hit == {
        "id": f"{slug}:{scooter['bike_id']}",
        "formFactor": "SCOOTER_STANDING",
        "propulsionType": "ELECTRIC",
        "vehicleType": {
            "id": f"{slug}:seattle-scooter",
            "formFactor": "SCOOTER_STANDING",
            "propulsionType": "ELECTRIC",
            "maxRangeMeters": 24000.0,
            "name": "Bird scooter",
        },
        "pricingPlan": {"id": f"{slug}:seattle-standard", "name": "Standard"},
    }
    # Asked for bicycles only, the same spot does not offer the scooter.
    bicycles = (
        await gql(
            api, NEAR, {"lat": scooter["lat"], "lon": scooter["lon"], "formFactors": ["BICYCLE"]}
        )
    )["data"]["vehicles"]
    assert hit["id"] not in {v["id"] for v in bicycles}
    if not (scooter["is_reserved"] or scooter["is_disabled"]):
        quote = (await gql(api, QUOTE, {"id": hit["id"]}))["data"]["quote"]
        plan = OVERRIDES["pricing_plans"][0]  # type: ignore[index]
        unlock = round(plan["price"] * 100)
        per_minute = round(plan["per_min_pricing"][0]["rate"] * 100)
        assert quote["priceBreakdown"]["unlockFee"]["amountMinor"] == unlock
        assert quote["priceBreakdown"]["timePrice"]["amountMinor"] == 10 * per_minute
        assert quote["price"] == {"amountMinor": unlock + 10 * per_minute, "currency": "USD"}

    # Staff see the overrides and their effect on the provider; nobody else does.
    seen = (await gql(api, VALIDATION, token=token))["data"]["providers"]
    (provider,) = [p for p in seen if p["id"] == slug]
    assert provider["overrides"] == {"vehicleTypeIds": ["seattle-scooter", "seattle-ebike"]}
    assert provider["config"]["overrides"] == OVERRIDES
    assert provider["config"]["adapter"] == "gbfs"
    anonymous = (await gql(api, VALIDATION))["data"]["providers"]
    assert [(p["config"], p["overrides"]) for p in anonymous] == [(None, None)]
