"""parse_snapshot on real conformance feeds and on small synthetic documents (no network, no DB).

Expected values are computed here from the raw JSON, never taken from the adapter. The real
feeds are read from MOBILITY_CONFORMANCE_DIR (default ``<repo>/../shared/conformance``); when the
folder is missing the conformance tests fail in CI (CI=true) and are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import shape

from adapters.base import AdapterError
from adapters.dto import Finding, FormFactor, PropulsionType, Snapshot, ZoneRule
from adapters.gbfs import DEFAULT_VEHICLE_TYPE_ID, parse_snapshot
from adapters.gbfs.documents import discovery_feeds, manifest_gbfs_url

Doc = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]

# --- conformance material --------------------------------------------------------------------


def conformance_dir() -> Path:
    configured = os.environ.get("MOBILITY_CONFORMANCE_DIR")
    root = Path(configured) if configured else REPO.parent / "shared" / "conformance"
    if not (root / "gbfs" / "feeds").is_dir():
        reason = f"GBFS conformance feeds not found under {root} (set MOBILITY_CONFORMANCE_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        print(reason)
        pytest.skip(reason)
    return root


def load_feed(folder: str) -> dict[str, Any]:
    """Every file of a conformance folder, by GBFS file name."""
    path = conformance_dir() / "gbfs" / "feeds" / folder
    return {file.stem: json.loads(file.read_text()) for file in sorted(path.glob("*.json"))}


# Oslo Bysykkel's folder holds station_status alone. Without system_information the parse reports
# MISSING_FEED (tested on its own); here the test supplies a minimal one so these checks are
# about the stations.
OSLO_SYSTEM: Doc = {
    "last_updated": 1743466320,
    "ttl": 15,
    "version": "2.3",
    "data": {"system_id": "oslobysykkel", "name": "Oslo Bysykkel", "timezone": "Europe/Oslo"},
}
FOLDERS = [
    "check-almere",
    "getaround-stavanger",
    "lillestrom-bysykkel",
    "oslo-bysykkel",
    "tier-oslo",
    "tier-wolfsburg",
]
# Six more real feeds, each with its own departures from the spec (README of the material).
QUIRKY_FOLDERS = [
    "bird-seattle",
    "bolt-essen",
    "cooltra-the-hague",
    "mybuxi-ch",
    "nextbike-linz",
    "pogoh-pittsburgh",
]


def conformance_documents(folder: str) -> dict[str, Any]:
    documents = load_feed(folder)
    if folder == "oslo-bysykkel":
        documents.setdefault("system_information", OSLO_SYSTEM)
    return documents


# --- helpers ---------------------------------------------------------------------------------


def findings(snapshot: Snapshot, code: str, severity: str | None = None) -> list[Finding]:
    return [
        f
        for f in snapshot.findings
        if f.code == code and (severity is None or f.severity == severity)
    ]


def expected_timestamp(raw: int | str) -> datetime:
    if isinstance(raw, int):
        return datetime.fromtimestamp(raw, UTC)
    return datetime.fromisoformat(raw).astimezone(UTC)


def minor(price: float | str, exponent: int = 2) -> int:
    return int(Decimal(str(price)).scaleb(exponent))


def localized_text(items: list[dict[str, str]], language: str) -> str:
    return next(item["text"] for item in items if item["language"] == language)


def envelope(data: Doc, version: str | None = "2.3", **header: Any) -> Doc:
    document: Doc = {"last_updated": 1_700_000_000, "ttl": 60, "data": data, **header}
    if version is not None:
        document["version"] = version
    return document


def system_doc(version: str | None = "2.3", **data: Any) -> Doc:
    return envelope({"system_id": "sys", "name": "System", "timezone": "UTC", **data}, version)


def bike(vehicle_id: str, **fields: Any) -> Doc:
    return {
        "bike_id": vehicle_id,
        "lat": 59.91,
        "lon": 10.75,
        "is_reserved": False,
        "is_disabled": False,
        **fields,
    }


def scooter_feed(*bikes: Doc, version: str = "2.3", **type_fields: Any) -> dict[str, Doc]:
    scooter_type = {
        "vehicle_type_id": "es",
        "form_factor": "scooter_standing",
        "propulsion_type": "electric",
        "max_range_meters": 40000,
        **type_fields,
    }
    return {
        "system_information": system_doc(version),
        "vehicle_types": envelope({"vehicle_types": [scooter_type]}, version),
        "free_bike_status": envelope(
            {"bikes": [{"vehicle_type_id": "es", **b} for b in bikes]}, version
        ),
    }


# --- every conformance feed --------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_conformance_feed_parses_with_one_feed_meta_per_document(folder: str) -> None:
    documents = conformance_documents(folder)
    urls = {name: f"https://example.test/{folder}/{name}.json" for name in documents}

    snapshot = parse_snapshot(documents, feed_urls=urls)

    metas = {meta.name: meta for meta in snapshot.feeds}
    assert set(metas) == set(documents)
    for name, document in documents.items():
        assert metas[name].url == urls[name]
        assert metas[name].ttl == document["ttl"]
        assert metas[name].last_updated == expected_timestamp(document["last_updated"])
        assert metas[name].not_modified is False
    version = (documents.get("gbfs") or documents["system_information"])["version"]
    assert snapshot.version == version.lstrip("v")
    assert snapshot.system.system_id == documents["system_information"]["data"]["system_id"]


@pytest.mark.parametrize("folder", FOLDERS + QUIRKY_FOLDERS)
def test_conformance_vehicle_counts_match_raw_located_records(folder: str) -> None:
    documents = conformance_documents(folder)
    vehicle_doc = documents.get("vehicle_status") or documents.get("free_bike_status")
    raw_vehicles = (vehicle_doc or {"data": {}})["data"]
    raw_vehicles = raw_vehicles.get("vehicles", raw_vehicles.get("bikes", []))
    # Every located vehicle, whatever type it names: an unknown type is no reason to lose it.
    expected = [v for v in raw_vehicles if ("lat" in v and "lon" in v) or "station_id" in v]

    snapshot = parse_snapshot(documents)

    assert len(snapshot.vehicles) == len(expected)
    ids = [v.get("vehicle_id", v.get("bike_id")) for v in expected]
    assert [vehicle.external_id for vehicle in snapshot.vehicles] == ids


# --- facts of individual real feeds ----------------------------------------------------------


def test_getaround_stavanger_has_40_cars_4_types_40_plans_and_resolved_localized_names() -> None:
    documents = load_feed("getaround-stavanger")
    raw_plans = documents["system_pricing_plans"]["data"]["plans"]
    raw_types = documents["vehicle_types"]["data"]["vehicle_types"]
    raw_vehicles = documents["vehicle_status"]["data"]["vehicles"]
    first_language = documents["system_information"]["data"]["languages"][0]

    # "en" is not published, so names fall back to languages[0] (nb-NO).
    snapshot = parse_snapshot(documents, preferred_language="en")

    assert (len(snapshot.vehicles), len(snapshot.vehicle_types), len(snapshot.pricing_plans)) == (
        40,
        4,
        40,
    )
    assert (len(raw_vehicles), len(raw_types), len(raw_plans)) == (40, 4, 40)
    assert snapshot.system.name == localized_text(
        documents["system_information"]["data"]["name"], first_language
    )
    assert snapshot.system.language == first_language
    for plan, raw in zip(snapshot.pricing_plans, raw_plans, strict=True):
        assert plan.external_id == raw["plan_id"]
        assert plan.name == localized_text(raw["name"], first_language)
        assert plan.description == localized_text(raw["description"], first_language)
        assert (plan.currency, plan.price_minor) == (raw["currency"], minor(raw["price"]))
    by_id = {v.external_id: v for v in snapshot.vehicles}
    for raw in raw_vehicles:
        vehicle = by_id[raw["vehicle_id"]]
        assert vehicle.pricing_plan_id == raw["pricing_plan_id"]
        assert (
            vehicle.rental_uris is not None and vehicle.rental_uris.web == raw["rental_uris"]["web"]
        )
    assert {t.propulsion_type for t in snapshot.vehicle_types} == {
        PropulsionType(t["propulsion_type"]) for t in raw_types
    }


def test_getaround_ranges_above_the_type_maximum_are_kept_with_one_aggregated_warning() -> None:
    documents = load_feed("getaround-stavanger")
    max_range = {
        t["vehicle_type_id"]: t["max_range_meters"]
        for t in documents["vehicle_types"]["data"]["vehicle_types"]
    }
    over = [
        v["vehicle_id"]
        for v in documents["vehicle_status"]["data"]["vehicles"]
        if v["current_range_meters"] > max_range[v["vehicle_type_id"]]
    ]

    snapshot = parse_snapshot(documents)

    warnings = findings(snapshot, "RANGE_ABOVE_MAX", "warning")
    assert len(over) > 1 and len(warnings) == 1
    assert f"{len(over)} times" in warnings[0].message
    kept = {v.external_id: v.current_range_meters for v in snapshot.vehicles}
    assert all(kept[vehicle_id] is not None for vehicle_id in over)


def test_tier_wolfsburg_840_scooters_are_standing_scooters() -> None:
    documents = load_feed("tier-wolfsburg")
    raw_types = documents["vehicle_types"]["data"]["vehicle_types"]
    raw_form = {t["vehicle_type_id"]: t["form_factor"] for t in raw_types}
    uses_deprecated = "scooter" in raw_form.values()

    snapshot = parse_snapshot(documents)

    assert len(snapshot.vehicles) == len(documents["free_bike_status"]["data"]["bikes"]) == 840
    for vehicle_type in snapshot.vehicle_types:
        raw = raw_form[vehicle_type.external_id]
        expected = FormFactor.SCOOTER_STANDING if raw == "scooter" else FormFactor(raw)
        assert vehicle_type.form_factor == expected
        assert vehicle_type.raw_form_factor == ("scooter" if raw == "scooter" else None)
    types = {t.external_id: t for t in snapshot.vehicle_types}
    assert all(
        types[v.vehicle_type_id or ""].form_factor is FormFactor.SCOOTER_STANDING
        for v in snapshot.vehicles
    )
    assert bool(findings(snapshot, "DEPRECATED_FORM_FACTOR")) == uses_deprecated


def test_check_almere_keeps_14_of_16_zones_and_reports_the_2_without_geometry() -> None:
    documents = load_feed("check-almere")
    data = documents["geofencing_zones"]["data"]
    features = data["geofencing_zones"]["features"]
    null_positions = [i for i, f in enumerate(features) if f["geometry"] is None]

    snapshot = parse_snapshot(documents)

    assert (len(features), len(null_positions), len(snapshot.zones)) == (16, 2, 14)
    missing = findings(snapshot, "GEOMETRY_MISSING")
    assert [f.severity for f in missing] == ["error", "error"]
    assert [f.record_id for f in missing] == [f"feature[{i}]" for i in null_positions]
    assert all(f.feed == "geofencing_zones" for f in missing)
    # Ordinals are feed positions, so precedence survives the skipped zones.
    kept_positions = [i for i in range(len(features)) if i not in null_positions]
    assert [zone.ordinal for zone in snapshot.zones] == kept_positions
    for zone in snapshot.zones:
        raw = features[zone.ordinal]
        assert zone.geometry["type"] == "MultiPolygon"
        assert shape(zone.geometry).equals(shape(raw["geometry"]))
        raw_rule = raw["properties"]["rules"][0]
        assert zone.rules[0] == ZoneRule(
            vehicle_type_ids=tuple(raw_rule["vehicle_type_ids"]),
            ride_start_allowed=raw_rule["ride_start_allowed"],
            ride_end_allowed=raw_rule["ride_end_allowed"],
            ride_through_allowed=raw_rule["ride_through_allowed"],
        )
    assert snapshot.global_rules == [
        ZoneRule(None, ride_start_allowed=False, ride_end_allowed=False, ride_through_allowed=True)
    ]
    assert data["global_rules"] == [
        {"ride_end_allowed": False, "ride_start_allowed": False, "ride_through_allowed": True}
    ]


def test_check_almere_space_separated_timestamps_parse_with_a_warning() -> None:
    documents = load_feed("check-almere")
    raw = documents["vehicle_status"]["last_updated"]
    assert " " in raw

    snapshot = parse_snapshot(documents)

    meta = next(m for m in snapshot.feeds if m.name == "vehicle_status")
    assert meta.last_updated == datetime.fromisoformat(raw).astimezone(UTC)
    assert findings(snapshot, "TIMESTAMP_NOT_RFC3339", "warning")


@pytest.mark.parametrize("language", ["en", "nl", "de"])
def test_check_almere_localized_names_follow_preferred_then_first_listed_language(
    language: str,
) -> None:
    documents = load_feed("check-almere")
    languages = documents["system_information"]["data"]["languages"]
    features = documents["geofencing_zones"]["data"]["geofencing_zones"]["features"]

    def resolve(items: list[dict[str, str]]) -> str:
        by_language = {item["language"]: item["text"] for item in items}
        return by_language.get(language) or by_language.get(languages[0]) or items[0]["text"]

    snapshot = parse_snapshot(documents, preferred_language=language)

    assert snapshot.system.name == resolve(documents["system_information"]["data"]["name"])
    for zone in snapshot.zones:
        assert zone.name == resolve(features[zone.ordinal]["properties"]["name"])


def test_tier_oslo_v2_ride_allowed_maps_to_start_and_end_with_unrestricted_global_rule() -> None:
    documents = load_feed("tier-oslo")
    features = documents["geofencing_zones"]["data"]["geofencing_zones"]["features"]

    snapshot = parse_snapshot(documents)

    assert len(snapshot.zones) == len(features) == 2
    for zone, raw in zip(snapshot.zones, features, strict=True):
        raw_rule = raw["properties"]["rules"][0]
        assert zone.name == raw["properties"]["name"]
        assert zone.rules == (
            ZoneRule(
                vehicle_type_ids=tuple(raw_rule["vehicle_type_id"]),
                ride_start_allowed=raw_rule["ride_allowed"],
                ride_end_allowed=raw_rule["ride_allowed"],
                ride_through_allowed=raw_rule["ride_through_allowed"],
            ),
        )
    park = [zone for zone in snapshot.zones if not zone.rules[0].ride_start_allowed]
    assert len(park) == 1 and not park[0].rules[0].ride_end_allowed
    assert snapshot.global_rules == [ZoneRule(None, True, True, True)]
    # The feed publishes no vehicle_types: the rules' type ids are reported, and kept.
    assert findings(snapshot, "UNKNOWN_VEHICLE_TYPE", "warning")


def test_lillestrom_has_6_stations_1_type_and_2_plans_priced_in_nok_minor_units() -> None:
    documents = load_feed("lillestrom-bysykkel")
    raw_info = documents["station_information"]["data"]["stations"]
    raw_status = {s["station_id"]: s for s in documents["station_status"]["data"]["stations"]}
    raw_plans = documents["system_pricing_plans"]["data"]["plans"]

    snapshot = parse_snapshot(documents)

    assert (len(snapshot.stations), len(snapshot.vehicle_types), len(snapshot.pricing_plans)) == (
        6,
        1,
        2,
    )
    for plan, raw in zip(snapshot.pricing_plans, raw_plans, strict=True):
        assert plan.currency == raw["currency"] == "NOK"
        assert plan.price_minor == minor(raw["price"])
        assert plan.name == raw["name"]
        assert plan.is_taxable is raw["is_taxable"]
    for station, raw in zip(snapshot.stations, raw_info, strict=True):
        status = raw_status[raw["station_id"]]
        assert (station.external_id, station.name, station.lat, station.lon) == (
            raw["station_id"],
            raw["name"],
            raw["lat"],
            raw["lon"],
        )
        assert station.capacity == raw["capacity"]
        assert station.num_vehicles_available == status["num_bikes_available"]
        assert station.num_docks_available == status["num_docks_available"]
        assert station.is_renting is status["is_renting"]
        assert station.last_reported == expected_timestamp(status["last_reported"])
        assert [(c.vehicle_type_id, c.count) for c in station.vehicle_types_available] == [
            (c["vehicle_type_id"], c["count"]) for c in status["vehicle_types_available"]
        ]
    assert snapshot.system.language == documents["system_information"]["data"]["language"]
    assert not [f for f in snapshot.findings if f.severity == "error"]


def test_oslo_station_status_without_information_skips_all_stations_in_one_error() -> None:
    documents = conformance_documents("oslo-bysykkel")
    raw_count = len(documents["station_status"]["data"]["stations"])

    snapshot = parse_snapshot(documents)

    assert snapshot.stations == []
    (error,) = findings(snapshot, "STATION_INFORMATION_MISSING")
    assert error.severity == "error" and error.feed == "station_status"
    assert f"all {raw_count} stations" in error.message
    # Nothing uses the synthesized default type, so none is published.
    assert snapshot.vehicle_types == []


# --- discovery files -------------------------------------------------------------------------


def test_v2_discovery_picks_the_preferred_language_else_the_first() -> None:
    documents = load_feed("lillestrom-bysykkel")
    listed = documents["gbfs"]["data"]["nb"]["feeds"]

    assert discovery_feeds(documents["gbfs"], preferred_language="nb-NO") == {
        f["name"]: f["url"] for f in listed
    }
    two_languages = envelope(
        {
            "fr": {"feeds": [{"name": "system_information", "url": "https://x.test/fr/si"}]},
            "en": {"feeds": [{"name": "system_information", "url": "https://x.test/en/si"}]},
        }
    )
    assert discovery_feeds(two_languages, preferred_language="en")["system_information"] == (
        "https://x.test/en/si"
    )
    assert discovery_feeds(two_languages, preferred_language="de")["system_information"] == (
        "https://x.test/fr/si"
    )


def test_v3_discovery_reads_feeds_and_resolves_relative_urls() -> None:
    document = envelope(
        {"feeds": [{"name": "vehicle_status", "url": "vehicle_status.json"}]}, version="3.0"
    )
    assert discovery_feeds(
        document, preferred_language="en", base_url="https://x.test/gbfs/3/gbfs.json"
    ) == {"vehicle_status": "https://x.test/gbfs/3/vehicle_status.json"}


def test_manifest_picks_the_dataset_by_system_id_and_its_highest_supported_version() -> None:
    manifest = envelope(
        {
            "datasets": [
                {
                    "system_id": "berlin",
                    "versions": [
                        {"version": "2.3", "url": "https://b.test/2/gbfs"},
                        {"version": "3.0", "url": "https://b.test/3/gbfs"},
                        {"version": "9.0", "url": "https://b.test/9/gbfs"},
                    ],
                },
                {"system_id": "paris", "versions": [{"version": "2.3", "url": "https://p.test"}]},
            ]
        },
        version="3.0",
    )
    assert manifest_gbfs_url(manifest, system_id="berlin") == ("https://b.test/3/gbfs", "3.0")
    with pytest.raises(AdapterError, match="system_id"):
        manifest_gbfs_url(manifest, system_id=None)


# --- synthetic: versions and the envelope ----------------------------------------------------


def test_v1_feed_without_version_or_vehicle_types_reads_bikes_as_default_bicycles() -> None:
    documents = {
        "system_information": system_doc(version=None, language="en"),
        "free_bike_status": envelope({"bikes": [bike("b1"), bike("b2")]}, version=None),
    }

    snapshot = parse_snapshot(documents)

    assert snapshot.version == "1.0"
    assert [v.external_id for v in snapshot.vehicles] == ["b1", "b2"]
    (default,) = snapshot.vehicle_types
    assert (default.external_id, default.form_factor, default.propulsion_type) == (
        DEFAULT_VEHICLE_TYPE_ID,
        FormFactor.BICYCLE,
        PropulsionType.HUMAN,
    )
    assert {v.vehicle_type_id for v in snapshot.vehicles} == {DEFAULT_VEHICLE_TYPE_ID}
    assert not findings(snapshot, "VERSION_UNSUPPORTED")


def test_vehicle_type_id_without_a_vehicle_types_feed_keeps_the_vehicle_as_a_bicycle() -> None:
    documents = {
        "system_information": system_doc(),
        "free_bike_status": envelope({"bikes": [bike("b1", vehicle_type_id="ghost"), bike("b2")]}),
    }

    snapshot = parse_snapshot(documents)

    # Spec: without vehicle_types every vehicle is a non-motorised bicycle; the operator's id
    # is kept, so a type supplied for it later takes over without the vehicle changing.
    assert [(v.external_id, v.vehicle_type_id) for v in snapshot.vehicles] == [
        ("b1", "ghost"),
        ("b2", DEFAULT_VEHICLE_TYPE_ID),
    ]
    ghost = next(t for t in snapshot.vehicle_types if t.external_id == "ghost")
    assert (ghost.form_factor, ghost.propulsion_type, ghost.max_range_meters) == (
        FormFactor.BICYCLE,
        PropulsionType.HUMAN,
        None,
    )
    (warning,) = findings(snapshot, "UNKNOWN_VEHICLE_TYPE", "warning")
    assert warning.record_id == "ghost" and "1 vehicle(s)" in warning.message
    assert not [f for f in snapshot.findings if f.severity == "error"]


def test_v_prefixed_version_is_stripped_with_a_warning() -> None:
    documents = scooter_feed(bike("b1"), version="v2.3")
    documents["gbfs"] = envelope({"en": {"feeds": []}}, version="v2.3")

    snapshot = parse_snapshot(documents)

    assert snapshot.version == "2.3"
    assert findings(snapshot, "VERSION_PREFIX", "warning")
    assert not findings(snapshot, "VERSION_MISMATCH")


def test_version_hint_overrides_headers() -> None:
    snapshot = parse_snapshot(scooter_feed(bike("b1")), version_hint="2.3")
    assert snapshot.version == "2.3"


def test_missing_system_information_is_reported_not_fatal() -> None:
    snapshot = parse_snapshot({"free_bike_status": envelope({"bikes": [bike("b1"), bike("b2")]})})
    assert [v.external_id for v in snapshot.vehicles] == ["b1", "b2"]
    missing = [f for f in snapshot.findings if f.code == "MISSING_FEED"]
    assert [(f.severity, f.feed) for f in missing] == [("error", "system_information")]


def test_broken_system_information_fails_the_whole_snapshot() -> None:
    with pytest.raises(AdapterError) as excinfo:
        parse_snapshot(
            {
                "system_information": envelope({"name": "no id"}),
                "free_bike_status": envelope({"bikes": []}),
            }
        )
    assert excinfo.value.feed == "system_information"


@pytest.mark.parametrize(
    "broken",
    [[], {"no_data": True}, {"data": []}, envelope({"something_else": []})],
    ids=["not-an-object", "no-data", "data-not-object", "no-bikes-array"],
)
def test_an_unreadable_document_fails_instead_of_emptying_the_provider(broken: Any) -> None:
    documents = scooter_feed(bike("b1"))
    documents["free_bike_status"] = broken

    with pytest.raises(AdapterError) as excinfo:
        parse_snapshot(documents)
    assert excinfo.value.feed == "free_bike_status"


def test_unknown_documents_are_ignored() -> None:
    documents: dict[str, Any] = scooter_feed(bike("b1"))
    documents["system_hours"] = "not even a document"

    snapshot = parse_snapshot(documents)

    assert "system_hours" not in {meta.name for meta in snapshot.feeds}


# --- synthetic: lenient values ---------------------------------------------------------------


def test_zero_one_and_string_booleans_are_coerced_with_one_warning_per_field() -> None:
    bikes = [bike(f"b{i}", is_reserved=i % 2, is_disabled="false") for i in range(5)]

    snapshot = parse_snapshot(scooter_feed(*bikes))

    assert [v.is_reserved for v in snapshot.vehicles] == [False, True, False, True, False]
    assert not any(v.is_disabled for v in snapshot.vehicles)
    coerced = findings(snapshot, "COERCED_BOOLEAN", "warning")
    assert len(coerced) == 2  # one for is_reserved (0/1), one for is_disabled (string)
    assert all("5 times" in f.message for f in coerced)


def test_unreadable_boolean_skips_the_record() -> None:
    snapshot = parse_snapshot(scooter_feed(bike("b1", is_reserved="maybe"), bike("b2")))

    assert [v.external_id for v in snapshot.vehicles] == ["b2"]
    (error,) = findings(snapshot, "INVALID_FIELD", "error")
    assert error.record_id == "b1" and "is_reserved" in error.message


def test_numbers_sent_as_strings_are_coerced_with_a_warning() -> None:
    documents = scooter_feed(
        bike("b1", lat="52.5", lon="13.4", current_range_meters="1200.5"),
        max_range_meters="40000",
    )
    documents["free_bike_status"]["ttl"] = "30"

    snapshot = parse_snapshot(documents)

    (vehicle,) = snapshot.vehicles
    assert (vehicle.lat, vehicle.lon, vehicle.current_range_meters) == (52.5, 13.4, 1200.5)
    assert snapshot.vehicle_types[0].max_range_meters == 40000
    assert next(m for m in snapshot.feeds if m.name == "free_bike_status").ttl == 30
    assert len(findings(snapshot, "COERCED_NUMBER", "warning")) == 5


def test_sentinel_timestamp_86400_reads_as_unknown() -> None:
    documents = scooter_feed(bike("b1", last_reported=86400), bike("b2", last_reported=1700000000))

    snapshot = parse_snapshot(documents)

    assert [v.last_reported for v in snapshot.vehicles] == [
        None,
        datetime.fromtimestamp(1700000000, UTC),
    ]
    (warning,) = findings(snapshot, "SENTINEL_TIMESTAMP")
    assert warning.severity == "warning" and warning.record_id == "b1"


def test_v3_timestamps_accept_z_offsets_and_space_forms_and_come_out_utc() -> None:
    vehicles = [
        {**bike(f"v{i}"), "vehicle_id": f"v{i}", "last_reported": stamp}
        for i, stamp in enumerate(
            ["2024-03-21T09:27:38.821Z", "2024-03-21T11:27:38+02:00", "2024-03-21 09:27:38+00:00"]
        )
    ]
    documents = {
        "system_information": system_doc("3.0", languages=["en"]),
        "vehicle_status": envelope({"vehicles": vehicles}, "3.0"),
    }

    snapshot = parse_snapshot(documents)

    stamps = [v.last_reported for v in snapshot.vehicles]
    assert stamps[0] == datetime(2024, 3, 21, 9, 27, 38, 821000, tzinfo=UTC)
    assert stamps[1] == stamps[2] == datetime(2024, 3, 21, 9, 27, 38, tzinfo=UTC)
    assert all(s is not None and s.tzinfo is UTC for s in stamps)
    (space,) = findings(snapshot, "TIMESTAMP_NOT_RFC3339")
    assert space.record_id == "v2"


def test_fuel_percent_is_a_fraction_and_values_up_to_100_are_read_as_percent() -> None:
    documents = scooter_feed(
        bike("fraction", current_fuel_percent=0.5),
        bike("percent", current_fuel_percent=80),
        bike("nonsense", current_fuel_percent=250),
    )

    snapshot = parse_snapshot(documents)

    fuel = {v.external_id: v.current_fuel_percent for v in snapshot.vehicles}
    assert fuel == {"fraction": 0.5, "percent": 0.8, "nonsense": None}
    assert findings(snapshot, "FUEL_PERCENT_SCALED", "warning")[0].record_id == "percent"
    assert findings(snapshot, "INVALID_OPTIONAL_FIELD", "warning")[0].record_id == "nonsense"


def test_deprecated_scooter_form_factor_maps_to_standing_and_keeps_the_raw_value() -> None:
    snapshot = parse_snapshot(scooter_feed(bike("b1"), form_factor="scooter"))

    (vehicle_type,) = snapshot.vehicle_types
    assert vehicle_type.form_factor is FormFactor.SCOOTER_STANDING
    assert vehicle_type.raw_form_factor == "scooter"
    assert findings(snapshot, "DEPRECATED_FORM_FACTOR", "warning")


def test_unknown_propulsion_skips_the_type_and_keeps_its_vehicles_under_a_placeholder() -> None:
    snapshot = parse_snapshot(scooter_feed(bike("b1"), propulsion_type="warp_drive"))

    assert findings(snapshot, "INVALID_FIELD", "error")[0].record_id == "es"
    assert [(v.external_id, v.vehicle_type_id) for v in snapshot.vehicles] == [("b1", "es")]
    (placeholder,) = snapshot.vehicle_types
    assert (placeholder.external_id, placeholder.form_factor, placeholder.propulsion_type) == (
        "es",
        FormFactor.OTHER,
        PropulsionType.HUMAN,
    )
    assert findings(snapshot, "UNKNOWN_VEHICLE_TYPE", "warning")[0].record_id == "es"


# --- synthetic: coordinates, stations, ids ---------------------------------------------------


def station_feed(*bikes: Doc, stations: list[Doc] | None = None) -> dict[str, Doc]:
    documents = scooter_feed(*bikes)
    info = stations or [{"station_id": "s1", "name": "Dock", "lat": 60.1, "lon": 11.2}]
    documents["station_information"] = envelope({"stations": info})
    documents["station_status"] = envelope(
        {
            "stations": [
                {
                    "station_id": s["station_id"],
                    "num_bikes_available": 1,
                    "num_docks_available": 3,
                    "is_installed": 1,
                    "is_renting": 1,
                    "is_returning": 1,
                    "last_reported": 1700000000,
                    "vehicle_types_available": [{"vehicle_type_id": "es", "count": 1}],
                }
                for s in info
            ]
        }
    )
    return documents


def test_docked_vehicle_without_coordinates_takes_its_station_coordinates() -> None:
    docked = {k: v for k, v in bike("docked").items() if k not in ("lat", "lon")}

    snapshot = parse_snapshot(station_feed({**docked, "station_id": "s1"}))

    (vehicle,) = snapshot.vehicles
    (station,) = snapshot.stations
    assert (vehicle.lat, vehicle.lon, vehicle.station_id) == (station.lat, station.lon, "s1")
    assert (station.is_installed, station.num_vehicles_available) == (True, 1)


def test_vehicle_without_coordinates_or_known_station_is_skipped() -> None:
    floating = {k: v for k, v in bike("lost").items() if k not in ("lat", "lon")}

    snapshot = parse_snapshot(
        station_feed(floating, {**floating, "bike_id": "b2", "station_id": "nope"})
    )

    assert snapshot.vehicles == []
    errors = findings(snapshot, "COORDINATES_MISSING", "error")
    assert [e.record_id for e in errors] == ["lost", "b2"]
    assert findings(snapshot, "UNKNOWN_STATION", "warning")


@pytest.mark.parametrize(
    ("lat", "lon"), [(91.0, 10.0), (-90.5, 10.0), (59.0, 180.5), ("north", 10.0), (True, 10.0)]
)
def test_out_of_range_or_non_numeric_coordinates_skip_the_record(lat: Any, lon: Any) -> None:
    snapshot = parse_snapshot(scooter_feed(bike("bad", lat=lat, lon=lon), bike("good")))

    assert [v.external_id for v in snapshot.vehicles] == ["good"]
    (error,) = findings(snapshot, "COORDINATES_INVALID", "error")
    assert error.record_id == "bad" and error.feed == "free_bike_status"


def test_out_of_range_station_latitude_skips_the_station() -> None:
    stations = [
        {"station_id": "s1", "name": "Good", "lat": 60.1, "lon": 11.2},
        {"station_id": "s2", "name": "Bad", "lat": 123.0, "lon": 11.2},
    ]
    snapshot = parse_snapshot(station_feed(bike("b1"), stations=stations))

    assert [s.external_id for s in snapshot.stations] == ["s1"]
    assert findings(snapshot, "COORDINATES_INVALID", "error")[0].record_id == "s2"


def test_duplicate_ids_keep_the_first_record_and_report_the_rest() -> None:
    documents = scooter_feed(bike("dup", lat=1.0), bike("dup", lat=2.0), bike("other"))

    snapshot = parse_snapshot(documents)

    assert [(v.external_id, v.lat) for v in snapshot.vehicles] == [("dup", 1.0), ("other", 59.91)]
    (error,) = findings(snapshot, "DUPLICATE_ID", "error")
    assert error.record_id == "dup"


def test_station_status_entry_without_information_is_skipped_and_others_merge() -> None:
    documents = station_feed(bike("b1"))
    status = documents["station_status"]["data"]["stations"]
    status.append({**status[0], "station_id": "ghost"})

    snapshot = parse_snapshot(documents)

    assert [s.external_id for s in snapshot.stations] == ["s1"]
    assert snapshot.stations[0].num_vehicles_available == 1
    (error,) = findings(snapshot, "STATION_INFORMATION_MISSING", "error")
    assert error.record_id == "ghost"


def test_v3_station_counts_use_num_vehicles_and_localized_names() -> None:
    documents = {
        "system_information": system_doc("3.0", languages=["nb", "en"]),
        "station_information": envelope(
            {
                "stations": [
                    {
                        "station_id": "s1",
                        "name": [
                            {"text": "Torget", "language": "nb"},
                            {"text": "Square", "language": "en"},
                        ],
                        "lat": 60.0,
                        "lon": 11.0,
                    }
                ]
            },
            "3.0",
        ),
        "station_status": envelope(
            {
                "stations": [
                    {
                        "station_id": "s1",
                        "num_vehicles_available": 4,
                        "num_vehicles_disabled": 1,
                        "is_installed": True,
                        "is_renting": True,
                        "is_returning": True,
                        "last_reported": "2024-01-01T00:00:00Z",
                    }
                ]
            },
            "3.0",
        ),
    }

    snapshot = parse_snapshot(documents, preferred_language="en")

    (station,) = snapshot.stations
    assert (station.name, station.num_vehicles_available, station.num_vehicles_disabled) == (
        "Square",
        4,
        1,
    )
    # No vehicle_types feed: all four are default bicycles.
    assert [(c.vehicle_type_id, c.count) for c in station.vehicle_types_available] == [
        (DEFAULT_VEHICLE_TYPE_ID, 4)
    ]


def test_many_identical_errors_are_capped_with_a_summary_finding() -> None:
    bikes = [bike(f"b{i}", lat=100.0) for i in range(30)]

    snapshot = parse_snapshot(scooter_feed(*bikes))

    errors = findings(snapshot, "COORDINATES_INVALID", "error")
    assert len(errors) == 21
    assert [e.record_id for e in errors[:20]] == [f"b{i}" for i in range(20)]
    assert errors[20].record_id is None and errors[20].message.startswith("10 more")


# --- synthetic: pricing and references -------------------------------------------------------


def priced_feed(plans: list[Doc], **vehicle_fields: Any) -> dict[str, Doc]:
    documents = scooter_feed(bike("b1", **vehicle_fields), default_pricing_plan_id="basic")
    documents["system_pricing_plans"] = envelope({"plans": plans})
    return documents


def plan(plan_id: str = "basic", **fields: Any) -> Doc:
    return {
        "plan_id": plan_id,
        "name": "Basic",
        "currency": "EUR",
        "price": 1.0,
        "is_taxable": True,
        "description": "Unlock plus per-minute rate",
        **fields,
    }


def test_pricing_segments_convert_to_minor_units() -> None:
    raw = plan(
        price="1.00",
        per_min_pricing=[{"start": 0, "rate": 0.25, "interval": 1, "end": 30}],
        per_km_pricing=[{"start": 25, "rate": -0.5, "interval": 5}],
        surge_pricing=0,
    )

    snapshot = parse_snapshot(priced_feed([raw]))

    (parsed,) = snapshot.pricing_plans
    assert parsed.price_minor == minor(raw["price"])
    minute = raw["per_min_pricing"][0]
    assert [(s.start, s.rate_minor, s.interval, s.end) for s in parsed.per_min_pricing] == [
        (minute["start"], minor(minute["rate"]), minute["interval"], minute["end"])
    ]
    km = raw["per_km_pricing"][0]
    assert [(s.start, s.rate_minor, s.interval, s.end) for s in parsed.per_km_pricing] == [
        (km["start"], minor(km["rate"]), km["interval"], None)
    ]
    assert parsed.surge_pricing is False
    assert findings(snapshot, "COERCED_NUMBER", "warning")  # the string price
    assert not findings(snapshot, "PRICE_ROUNDED")


def test_price_with_more_decimals_than_the_currency_rounds_half_up_with_a_warning() -> None:
    snapshot = parse_snapshot(priced_feed([plan(price=0.125, currency="EUR")]))

    assert snapshot.pricing_plans[0].price_minor == 13
    assert findings(snapshot, "PRICE_ROUNDED", "warning")


def test_zero_decimal_currency_prices_convert_without_scaling() -> None:
    snapshot = parse_snapshot(priced_feed([plan(price=300, currency="JPY")]))

    assert snapshot.pricing_plans[0].price_minor == 300


def test_plan_with_an_unreadable_segment_is_skipped_not_underpriced() -> None:
    broken = plan("broken", per_min_pricing=[{"start": 0, "rate": "cheap", "interval": 1}])

    snapshot = parse_snapshot(priced_feed([plan(), broken]))

    assert [p.external_id for p in snapshot.pricing_plans] == ["basic"]
    (error,) = findings(snapshot, "INVALID_FIELD", "error")
    assert error.record_id == "broken" and error.feed == "system_pricing_plans"


def test_unknown_pricing_plan_references_are_dropped_with_warnings() -> None:
    documents = priced_feed([plan()], pricing_plan_id="nope")
    documents["vehicle_types"]["data"]["vehicle_types"][0]["pricing_plan_ids"] = ["basic", "gone"]

    snapshot = parse_snapshot(documents)

    (vehicle,) = snapshot.vehicles
    assert vehicle.pricing_plan_id is None  # the caller falls back to the type's default
    (vehicle_type,) = snapshot.vehicle_types
    assert (vehicle_type.default_pricing_plan_id, vehicle_type.pricing_plan_ids) == (
        "basic",
        ("basic",),
    )
    assert {f.feed for f in findings(snapshot, "UNKNOWN_PRICING_PLAN", "warning")} == {
        "free_bike_status",
        "vehicle_types",
    }


def test_known_pricing_plan_id_is_kept_as_an_id() -> None:
    snapshot = parse_snapshot(priced_feed([plan(), plan("premium")], pricing_plan_id="premium"))

    assert snapshot.vehicles[0].pricing_plan_id == "premium"


def test_system_regions_become_regions_and_station_region_ids_resolve() -> None:
    stations = [
        {"station_id": "s1", "name": "A", "lat": 60.0, "lon": 11.0, "region_id": "r1"},
        {"station_id": "s2", "name": "B", "lat": 60.0, "lon": 11.0, "region_id": "r9"},
    ]
    documents = station_feed(bike("b1"), stations=stations)
    documents["system_regions"] = envelope({"regions": [{"region_id": "r1", "name": "Centre"}]})

    snapshot = parse_snapshot(documents)

    # An unknown region keeps grouping its stations, under a region named by its id.
    assert [(r.external_id, r.name) for r in snapshot.regions] == [("r1", "Centre"), ("r9", "r9")]
    assert [s.region_id for s in snapshot.stations] == ["r1", "r9"]
    (warning,) = findings(snapshot, "UNKNOWN_REGION", "warning")
    assert warning.record_id == "r9" and "1 station(s)" in warning.message


# --- synthetic: geofencing -------------------------------------------------------------------

SQUARE = [[10.0, 59.0], [10.1, 59.0], [10.1, 59.1], [10.0, 59.1], [10.0, 59.0]]
BOWTIE = [[10.0, 59.0], [10.1, 59.1], [10.1, 59.0], [10.0, 59.1], [10.0, 59.0]]


def zones_feed(
    features: list[Doc], version: str = "3.0", global_rules: list[Doc] | None = None
) -> dict[str, Doc]:
    data: Doc = {"geofencing_zones": {"type": "FeatureCollection", "features": features}}
    if global_rules is not None:
        data["global_rules"] = global_rules
    return {
        "system_information": system_doc(version, languages=["en"]),
        "geofencing_zones": envelope(data, version),
    }


def feature(geometry: Doc | None, **rule: Any) -> Doc:
    base = {"ride_start_allowed": False, "ride_end_allowed": False, "ride_through_allowed": True}
    return {"type": "Feature", "geometry": geometry, "properties": {"rules": [{**base, **rule}]}}


RULE_V3 = {"ride_start_allowed": True, "ride_end_allowed": True, "ride_through_allowed": True}


def test_polygon_geometry_is_wrapped_as_multipolygon_with_a_warning() -> None:
    documents = zones_feed(
        [feature({"type": "Polygon", "coordinates": [SQUARE]})], global_rules=[RULE_V3]
    )

    snapshot = parse_snapshot(documents)

    (zone,) = snapshot.zones
    assert zone.geometry["type"] == "MultiPolygon"
    assert shape(zone.geometry).equals(shape({"type": "Polygon", "coordinates": [SQUARE]}))
    assert findings(snapshot, "POLYGON_WRAPPED", "warning")


def test_self_intersecting_polygon_is_repaired_and_kept() -> None:
    documents = zones_feed(
        [feature({"type": "MultiPolygon", "coordinates": [[BOWTIE]]})], global_rules=[RULE_V3]
    )

    snapshot = parse_snapshot(documents)

    (zone,) = snapshot.zones
    assert shape(zone.geometry).is_valid and zone.geometry["type"] == "MultiPolygon"
    assert findings(snapshot, "GEOMETRY_REPAIRED", "warning")


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Point", "coordinates": [10.0, 59.0]},
        {"type": "MultiPolygon", "coordinates": "nonsense"},
        {
            "type": "MultiPolygon",
            "coordinates": [[[[200.0, 59.0], [201.0, 59.0], [201.0, 60.0], [200.0, 59.0]]]],
        },
    ],
    ids=["point", "garbage", "out-of-range"],
)
def test_unusable_geometry_skips_the_zone_with_geometry_invalid(geometry: Doc) -> None:
    documents = zones_feed(
        [feature(geometry), feature({"type": "MultiPolygon", "coordinates": [[SQUARE]]})],
        global_rules=[RULE_V3],
    )

    snapshot = parse_snapshot(documents)

    assert [zone.ordinal for zone in snapshot.zones] == [1]
    (error,) = findings(snapshot, "GEOMETRY_INVALID", "error")
    assert error.record_id == "feature[0]"


def test_v3_feed_without_global_rules_gets_unrestricted_rules_and_a_warning() -> None:
    snapshot = parse_snapshot(
        zones_feed([feature({"type": "MultiPolygon", "coordinates": [[SQUARE]]})])
    )

    assert snapshot.global_rules == [ZoneRule(None, True, True, True)]
    assert findings(snapshot, "GLOBAL_RULES_MISSING", "warning")


def test_v2_rule_fields_map_to_v3_rules_and_speed_and_parking_are_kept() -> None:
    v2_rule = {
        "vehicle_type_id": ["es"],
        "ride_allowed": 0,
        "ride_through_allowed": True,
        "maximum_speed_kph": 6,
        "station_parking": True,
    }
    documents = zones_feed(
        [
            {
                "type": "Feature",
                "geometry": {"type": "MultiPolygon", "coordinates": [[SQUARE]]},
                "properties": {"name": "Park", "start": 1700000000, "rules": [v2_rule]},
            }
        ],
        version="2.3",
    )

    snapshot = parse_snapshot(documents)

    (zone,) = snapshot.zones
    assert zone.rules == (ZoneRule(("es",), False, False, True, 6, True),)
    assert (zone.name, zone.start) == ("Park", datetime.fromtimestamp(1700000000, UTC))
    assert snapshot.global_rules == [ZoneRule(None, True, True, True)]
    assert not findings(snapshot, "GLOBAL_RULES_MISSING")


def test_rule_missing_a_required_boolean_is_dropped_with_an_error() -> None:
    incomplete = {"ride_start_allowed": True, "ride_end_allowed": True}  # no ride_through_allowed
    documents = zones_feed(
        [
            {
                "type": "Feature",
                "geometry": {"type": "MultiPolygon", "coordinates": [[SQUARE]]},
                "properties": {"rules": [incomplete, RULE_V3]},
            }
        ],
        global_rules=[RULE_V3],
    )

    snapshot = parse_snapshot(documents)

    assert snapshot.zones[0].rules == (ZoneRule(None, True, True, True),)
    (error,) = findings(snapshot, "MISSING_FIELD", "error")
    assert "ride_through_allowed" in error.message and error.record_id == "feature[0]"


def test_zone_rule_naming_an_unknown_type_is_kept_with_a_warning() -> None:
    documents = scooter_feed(bike("b1"), version="3.0")
    documents["system_information"] = system_doc("3.0", languages=["en"])
    documents["vehicle_status"] = envelope(
        {"vehicles": [{**bike("v1"), "vehicle_id": "v1", "vehicle_type_id": "es"}]}, "3.0"
    )
    del documents["free_bike_status"]
    documents.update(
        {
            "geofencing_zones": zones_feed(
                [
                    feature(
                        {"type": "MultiPolygon", "coordinates": [[SQUARE]]},
                        vehicle_type_ids=["es", "ghost"],
                    )
                ],
                global_rules=[RULE_V3],
            )["geofencing_zones"]
        }
    )

    snapshot = parse_snapshot(documents)

    assert snapshot.zones[0].rules[0].vehicle_type_ids == ("es", "ghost")
    assert findings(snapshot, "UNKNOWN_VEHICLE_TYPE", "warning")[0].feed == "geofencing_zones"


# --- the findings contract -------------------------------------------------------------------


def test_every_finding_carries_a_severity_code_and_feed() -> None:
    documents = station_feed(bike("b1", lat=95.0), bike("b1"), bike("b2", is_reserved=1))

    snapshot = parse_snapshot(documents)

    assert snapshot.findings
    for finding in snapshot.findings:
        assert finding.severity in ("error", "warning")
        assert finding.code.isupper() and finding.feed and finding.message


# --- links that reach riders' apps --------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>x</script>",
        "vbscript:x",
        "file:///etc/passwd",
        "https://x.example/ride me",
        "https:///no-host",
        "no-scheme/path",
    ],
)
def test_a_rental_link_that_is_not_an_http_or_app_link_is_dropped_and_reported(uri: str) -> None:
    documents = scooter_feed(
        bike("b1", rental_uris={"web": uri, "android": "scoot://ride/b1"}),
        bike("b2", rental_uris={"web": "https://ride.example/b2"}),
    )
    snapshot = parse_snapshot(documents)
    by_id = {v.external_id: v for v in snapshot.vehicles}
    assert set(by_id) == {"b1", "b2"}  # the vehicle stays; only the link goes
    assert by_id["b1"].rental_uris is not None
    assert (by_id["b1"].rental_uris.web, by_id["b1"].rental_uris.android) == (
        None,
        "scoot://ride/b1",
    )
    assert by_id["b2"].rental_uris is not None
    assert by_id["b2"].rental_uris.web == "https://ride.example/b2"
    assert [f.record_id for f in findings(snapshot, "UNSAFE_URI", "warning")] == ["b1"]
