"""References a feed does not satisfy, and quirks of real feeds: records are kept, never lost.

Synthetic documents built here (the real feeds are in tests/providers/test_real_feeds.py). Each
expected value is written out from the input, not read from the adapter.
"""

from __future__ import annotations

from typing import Any

from adapters.dto import (
    UNSPECIFIED_VEHICLE_TYPE_ID,
    Finding,
    FormFactor,
    PropulsionType,
    Snapshot,
)
from adapters.gbfs import parse_snapshot
from adapters.gbfs.documents import duplicate_keys
from adapters.testing import snapshot_problems

Doc = dict[str, Any]


def envelope(data: Doc, version: str = "2.3", **header: Any) -> Doc:
    return {"last_updated": 1_700_000_000, "ttl": 60, "version": version, "data": data, **header}


def system(**data: Any) -> Doc:
    return envelope({"system_id": "sys", "name": "System", "timezone": "Europe/Oslo", **data})


def bike(vehicle_id: str, **fields: Any) -> Doc:
    return {
        "bike_id": vehicle_id,
        "lat": 59.91,
        "lon": 10.75,
        "is_reserved": False,
        "is_disabled": False,
        **fields,
    }


SCOOTER = {
    "vehicle_type_id": "es",
    "form_factor": "scooter_standing",
    "propulsion_type": "electric",
    "max_range_meters": 40000,
    "default_pricing_plan_id": "basic",
}
BIKE = {"vehicle_type_id": "cb", "form_factor": "bicycle", "propulsion_type": "human"}
PLAN = {"plan_id": "basic", "name": "Basic", "currency": "EUR", "price": 1.0, "is_taxable": True}


def feed(*bikes: Doc, types: list[Doc] | None = None, **documents: Doc) -> dict[str, Doc]:
    out = {
        "system_information": system(),
        "system_pricing_plans": envelope({"plans": [PLAN]}),
        "free_bike_status": envelope({"bikes": list(bikes)}),
        **documents,
    }
    if types is not None:
        out["vehicle_types"] = envelope({"vehicle_types": types})
    return out


def found(snapshot: Snapshot, code: str) -> list[Finding]:
    return [f for f in snapshot.findings if f.code == code]


def errors(snapshot: Snapshot) -> list[Finding]:
    return [f for f in snapshot.findings if f.severity == "error"]


# --- unknown references ----------------------------------------------------------------------


def test_vehicles_naming_an_unpublished_type_are_kept_as_other_with_one_warning_per_id() -> None:
    bikes = [
        bike("a", vehicle_type_id="es"),
        bike("b", vehicle_type_id="ghost"),
        bike("c", vehicle_type_id="ghost"),
        bike("d", vehicle_type_id="phantom"),
    ]
    snapshot = parse_snapshot(feed(*bikes, types=[SCOOTER]))

    assert [(v.external_id, v.vehicle_type_id) for v in snapshot.vehicles] == [
        ("a", "es"),
        ("b", "ghost"),
        ("c", "ghost"),
        ("d", "phantom"),
    ]
    types = {t.external_id: t for t in snapshot.vehicle_types}
    for placeholder in ("ghost", "phantom"):
        kind = types[placeholder]
        assert (kind.form_factor, kind.propulsion_type, kind.max_range_meters, kind.name) == (
            FormFactor.OTHER,
            PropulsionType.HUMAN,
            None,
            None,
        )
    warnings = {f.record_id: f for f in found(snapshot, "UNKNOWN_VEHICLE_TYPE")}
    assert set(warnings) == {"ghost", "phantom"}
    assert "2 vehicle(s)" in warnings["ghost"].message
    assert "1 vehicle(s)" in warnings["phantom"].message
    assert all(f.severity == "warning" and f.feed == "free_bike_status" for f in warnings.values())
    assert errors(snapshot) == []
    # The snapshot contract holds: every reference resolves inside it.
    assert snapshot_problems(snapshot) == []


def test_a_vehicle_naming_no_type_among_several_is_kept_under_the_unspecified_placeholder() -> None:
    snapshot = parse_snapshot(feed(bike("a"), bike("b"), types=[SCOOTER, BIKE]))

    assert {v.vehicle_type_id for v in snapshot.vehicles} == {UNSPECIFIED_VEHICLE_TYPE_ID}
    (warning,) = found(snapshot, "MISSING_VEHICLE_TYPE_ID")
    assert warning.severity == "warning" and "2 vehicle(s)" in warning.message
    assert snapshot_problems(snapshot) == []


def test_an_unknown_pricing_plan_is_dropped_and_the_vehicle_kept() -> None:
    bikes = [bike("a", vehicle_type_id="es", pricing_plan_id="weekly") for _ in range(1)]
    bikes.append(bike("b", vehicle_type_id="es", pricing_plan_id="weekly"))
    snapshot = parse_snapshot(feed(*bikes, types=[SCOOTER]))

    assert [(v.external_id, v.pricing_plan_id) for v in snapshot.vehicles] == [
        ("a", None),
        ("b", None),
    ]
    (warning,) = found(snapshot, "UNKNOWN_PRICING_PLAN")
    assert warning.record_id == "weekly" and "2 vehicle(s)" in warning.message


def test_station_counts_naming_an_unpublished_type_keep_their_count() -> None:
    stations = [{"station_id": "s1", "name": "A", "lat": 59.9, "lon": 10.7}]
    status = [
        {
            "station_id": "s1",
            "num_bikes_available": 5,
            "is_installed": True,
            "is_renting": True,
            "is_returning": True,
            "last_reported": 1_700_000_000,
            "vehicle_types_available": [
                {"vehicle_type_id": "es", "count": 2},
                {"vehicle_type_id": "cargo", "count": 3},
            ],
        }
    ]
    documents = feed(
        types=[SCOOTER],
        station_information=envelope({"stations": stations}),
        station_status=envelope({"stations": status}),
    )

    snapshot = parse_snapshot(documents)

    (station,) = snapshot.stations
    assert [(c.vehicle_type_id, c.count) for c in station.vehicle_types_available] == [
        ("es", 2),
        ("cargo", 3),
    ]
    (warning,) = found(snapshot, "UNKNOWN_VEHICLE_TYPE")
    assert (warning.feed, warning.record_id) == ("station_status", "cargo")
    assert snapshot_problems(snapshot) == []


# --- quirks of real feeds --------------------------------------------------------------------


def test_a_motorised_type_with_zero_max_range_has_an_unknown_range() -> None:
    minibus = {
        "vehicle_type_id": "bus",
        "form_factor": "car",
        "propulsion_type": "electric",
        "max_range_meters": 0,
    }
    snapshot = parse_snapshot(feed(bike("a", vehicle_type_id="bus"), types=[minibus]))

    (kind,) = snapshot.vehicle_types
    assert kind.max_range_meters is None
    assert [f.record_id for f in found(snapshot, "MAX_RANGE_ZERO")] == ["bus"]
    assert found(snapshot, "MISSING_MAX_RANGE") == []


def test_an_exactly_repeated_record_is_a_warning_a_conflicting_one_an_error() -> None:
    snapshot = parse_snapshot(
        feed(
            bike("a", vehicle_type_id="es"),
            bike("a", vehicle_type_id="es"),
            bike("b", vehicle_type_id="es"),
            bike("b", vehicle_type_id="es", lat=60.0),
            types=[SCOOTER],
        )
    )

    assert [v.external_id for v in snapshot.vehicles] == ["a", "b"]
    assert [(f.severity, f.record_id) for f in found(snapshot, "DUPLICATE_RECORD")] == [
        ("warning", "a")
    ]
    assert [(f.severity, f.record_id) for f in found(snapshot, "DUPLICATE_ID")] == [("error", "b")]


def test_advertised_but_empty_station_files_are_reported() -> None:
    documents = feed(
        bike("a", vehicle_type_id="es"),
        types=[SCOOTER],
        station_information=envelope({"stations": []}),
        station_status=envelope({"stations": []}),
    )

    snapshot = parse_snapshot(documents)

    assert sorted(f.feed for f in found(snapshot, "EMPTY_FEED")) == [
        "station_information",
        "station_status",
    ]
    assert len(snapshot.vehicles) == 1


def test_a_file_left_months_behind_the_live_data_is_reported_stale() -> None:
    day = 86400
    documents = feed(bike("a", vehicle_type_id="es"), types=[SCOOTER])
    documents["free_bike_status"]["last_updated"] = 1_700_000_000 + 100 * day
    documents["vehicle_types"]["last_updated"] = 1_700_000_000 + 95 * day  # recent enough

    snapshot = parse_snapshot(documents)

    stale = found(snapshot, "STALE_FILE")
    assert sorted(f.feed for f in stale) == ["system_information", "system_pricing_plans"]
    assert all("100 days" in f.message for f in stale)


def test_a_legacy_or_invalid_time_zone_is_reported_and_kept() -> None:
    cases = (("CET", "TIMEZONE_NOT_A_LOCATION"), ("Mars/Olympus", "INVALID_TIMEZONE"))
    for timezone, code in cases:
        documents = feed(bike("a", vehicle_type_id="es"), types=[SCOOTER])
        documents["system_information"] = system(timezone=timezone)

        snapshot = parse_snapshot(documents)

        assert snapshot.system.timezone == timezone
        assert [f.feed for f in found(snapshot, code)] == ["system_information"]
    snapshot = parse_snapshot(feed(bike("a", vehicle_type_id="es"), types=[SCOOTER]))
    assert not found(snapshot, "TIMEZONE_NOT_A_LOCATION") + found(snapshot, "INVALID_TIMEZONE")


def test_a_discovery_file_listing_a_non_standard_feed_is_reported() -> None:
    documents = feed(bike("a", vehicle_type_id="es"), types=[SCOOTER])
    documents["gbfs"] = envelope(
        {
            "en": {
                "feeds": [
                    {"name": "system_information", "url": "https://x/system_information"},
                    {"name": "nearby_stations", "url": "https://x/nearby/{station_id}"},
                ]
            }
        }
    )

    snapshot = parse_snapshot(documents)

    assert [f.record_id for f in found(snapshot, "NON_STANDARD_FEED")] == ["nearby_stations"]


def test_a_v3_rule_that_also_carries_the_v2_ride_allowed_is_reported() -> None:
    square = [[4.0, 52.0], [4.1, 52.0], [4.1, 52.1], [4.0, 52.1], [4.0, 52.0]]
    rule = {
        "ride_allowed": False,
        "ride_start_allowed": True,
        "ride_end_allowed": True,
        "ride_through_allowed": True,
    }
    zones = {
        "geofencing_zones": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": {"type": "MultiPolygon", "coordinates": [[square]]},
                    "properties": {"rules": [rule]},
                }
            ],
        },
        "global_rules": [
            {"ride_start_allowed": True, "ride_end_allowed": True, "ride_through_allowed": True}
        ],
    }
    documents = {
        "system_information": envelope(
            {"system_id": "s", "name": [{"text": "S", "language": "en"}], "languages": ["en"]},
            "3.0",
        ),
        "geofencing_zones": envelope(zones, "3.0"),
    }

    snapshot = parse_snapshot(documents)

    # The v3 fields win: the rule allows what its v3 fields say.
    assert snapshot.zones[0].rules[0].ride_start_allowed is True
    (warning,) = found(snapshot, "FIELD_VERSION_MISMATCH")
    assert "ride_allowed" in warning.message


def test_repeated_json_keys_are_found_with_their_paths() -> None:
    body = b'{"data": {"apps": {"android": 1, "ios": 2, "android": 3}}, "list": [{"a": 1, "a": 2}]}'

    assert duplicate_keys(body) == ["data.apps.android", "list[0].a"]
    assert duplicate_keys(b'{"a": 1, "b": {"a": 2}}') == []
    assert duplicate_keys(b"not json") == []


def test_repeated_json_keys_given_to_the_parse_become_warnings() -> None:
    documents = feed(bike("a", vehicle_type_id="es"), types=[SCOOTER])

    snapshot = parse_snapshot(
        documents, duplicate_keys={"system_information": ["data.rental_apps.android"]}
    )

    (warning,) = found(snapshot, "DUPLICATE_JSON_KEY")
    assert (warning.feed, warning.severity) == ("system_information", "warning")
    assert "data.rental_apps.android" in warning.message
