"""A provider's overrides: validated at registration, applied by every sync's parse.

Synthetic documents; expected values are written out from them. The overrides on a real feed,
through the database and the API, are in tests/providers/test_real_feeds.py.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from adapters.base import AdapterConfigError, FetchContext
from adapters.dto import Finding, FormFactor, PropulsionType, Snapshot
from adapters.gbfs import GbfsAdapter, parse_snapshot
from adapters.gbfs.overrides import FeedOverrides, parse_overrides
from adapters.http import FeedCache
from adapters.testing import snapshot_problems
from providers.simulators.feed_server import FeedServer, serve_in_background

Doc = dict[str, Any]

SCOOTER = {
    "vehicle_type_id": "our-scooter",
    "form_factor": "scooter_standing",
    "propulsion_type": "electric",
    "max_range_meters": 45000,
    "name": "E-scooter",
    "default_pricing_plan_id": "our-plan",
}
OUR_PLAN = {
    "plan_id": "our-plan",
    "name": "Standard",
    "currency": "EUR",
    "price": 1.0,
    "is_taxable": True,
    "per_min_pricing": [{"start": 0, "rate": 0.25, "interval": 1}],
}


def envelope(data: Doc, version: str = "2.3") -> Doc:
    return {"last_updated": 1_700_000_000, "ttl": 60, "version": version, "data": data}


def bike(vehicle_id: str, **fields: Any) -> Doc:
    return {
        "bike_id": vehicle_id,
        "lat": 52.5,
        "lon": 13.4,
        "is_reserved": False,
        "is_disabled": False,
        **fields,
    }


def documents(*bikes: Doc, types: list[Doc] | None = None, plans: list[Doc] | None = None) -> Doc:
    out: Doc = {
        "system_information": envelope({"system_id": "s", "name": "S", "timezone": "UTC"}),
        "free_bike_status": envelope({"bikes": list(bikes)}),
    }
    if types is not None:
        out["vehicle_types"] = envelope({"vehicle_types": types})
    if plans is not None:
        out["system_pricing_plans"] = envelope({"plans": plans})
    return out


def overrides(**raw: Any) -> FeedOverrides:
    return parse_overrides(raw)


def found(snapshot: Snapshot, code: str) -> list[Finding]:
    return [f for f in snapshot.findings if f.code == code]


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be an object"),
        ({"vehicle_typez": []}, "unknown override(s) vehicle_typez"),
        ({"vehicle_types": {}}, "non-empty array"),
        ({"vehicle_types": [{**SCOOTER, "propulsion_type": None}]}, "propulsion_type"),
        ({"vehicle_types": [{**SCOOTER, "propulsion_type": "warp"}]}, "warp"),
        ({"vehicle_types": [{**SCOOTER, "form_factor": "scooter"}]}, "scooter_standing"),
        ({"vehicle_types": [{**SCOOTER, "max_range_meters": "45000"}]}, "number sent as a string"),
        ({"vehicle_types": [{**SCOOTER, "max_range_meters": 0}]}, "max_range_meters 0"),
        ({"vehicle_types": [SCOOTER, {**SCOOTER, "name": "x"}]}, "duplicate id 'our-scooter'"),
        ({"vehicle_types": [SCOOTER, SCOOTER]}, "repeated"),
        ({"vehicle_types": [{"form_factor": "car"}]}, "vehicle_type_id"),
        ({"pricing_plans": [{**OUR_PLAN, "currency": "euro"}]}, "ISO 4217"),
        ({"pricing_plans": [{**OUR_PLAN, "is_taxable": None}]}, "is_taxable"),
        ({"pricing_plans": [{**OUR_PLAN, "price": -1}]}, "negative"),
        ({"vehicle_type_map": {"a": ""}}, "non-empty strings"),
        ({"vehicle_type_map": {"a": "a"}}, "to itself"),
        ({"vehicle_type_map": {"a": "b", "b": "c"}}, "also maps"),
        ({"pricing_plan_map": []}, "non-empty object"),
        ({"exclude_feeds": ["geofencing_zone"]}, "geofencing_zone is not a file"),
        ({"exclude_feeds": ["system_information"]}, "cannot be excluded"),
        ({"exclude_feeds": ["vehicle_types", "vehicle_types"]}, "twice"),
        ({"exclude_feeds": "geofencing_zones"}, "array of file names"),
    ],
)
def test_unusable_overrides_are_refused_saying_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(AdapterConfigError) as refused:
        parse_overrides(raw)
    assert message in str(refused.value)
    # At registration: the adapter's own validation refuses it the same way.
    with pytest.raises(AdapterConfigError):
        GbfsAdapter.from_config({"discovery_url": "https://x/gbfs.json", "overrides": raw})


def test_supplied_records_may_use_plain_or_localized_names_and_omit_a_range() -> None:
    localized = {**SCOOTER, "name": [{"text": "Sparkesykkel", "language": "nb"}]}
    no_range = {**SCOOTER, "vehicle_type_id": "moped"}
    del no_range["max_range_meters"]

    parsed = parse_overrides({"vehicle_types": [localized, no_range]}, language="nb")

    assert [(t.name, t.max_range_meters) for t in parsed.vehicle_types] == [
        ("Sparkesykkel", 45000),
        ("E-scooter", None),
    ]


def test_excluding_everything_there_is_to_aggregate_is_refused() -> None:
    feeds = {"system_information": "https://x/si", "free_bike_status": "https://x/fbs"}
    with pytest.raises(AdapterConfigError, match="excludes everything"):
        GbfsAdapter.from_config(
            {"feeds": feeds, "overrides": {"exclude_feeds": ["free_bike_status"]}}
        )
    everything = ["free_bike_status", "vehicle_status", "station_information"]
    everything += ["station_status", "geofencing_zones"]
    with pytest.raises(AdapterConfigError, match="excludes everything"):
        GbfsAdapter.from_config(
            {"discovery_url": "https://x/gbfs.json", "overrides": {"exclude_feeds": everything}}
        )


# --- precedence and maps ---------------------------------------------------------------------


def test_supplied_types_and_plans_fill_what_the_feed_lacks() -> None:
    raw = documents(bike("a", vehicle_type_id="our-scooter"), bike("b", vehicle_type_id="ghost"))
    supplied = overrides(vehicle_types=[SCOOTER], pricing_plans=[OUR_PLAN])

    snapshot = parse_snapshot(raw, overrides=supplied)

    types = {t.external_id: t for t in snapshot.vehicle_types}
    assert types["our-scooter"].form_factor is FormFactor.SCOOTER_STANDING
    assert types["our-scooter"].default_pricing_plan_id == "our-plan"
    assert [p.external_id for p in snapshot.pricing_plans] == ["our-plan"]
    # "ghost" is still unknown: kept, as a bicycle (the feed has no vehicle_types at all).
    assert types["ghost"].form_factor is FormFactor.BICYCLE
    assert [f.record_id for f in found(snapshot, "UNKNOWN_VEHICLE_TYPE")] == ["ghost"]
    assert snapshot_problems(snapshot) == []


def test_the_feeds_own_record_wins_over_a_supplied_one_of_the_same_id() -> None:
    feed_type = {**SCOOTER, "max_range_meters": 20000, "default_pricing_plan_id": None}
    raw = documents(
        bike("a", vehicle_type_id="our-scooter"),
        types=[feed_type],
        plans=[{**OUR_PLAN, "price": 2.0}],
    )
    supplied = overrides(vehicle_types=[SCOOTER], pricing_plans=[OUR_PLAN])

    snapshot = parse_snapshot(raw, overrides=supplied)

    ((kind,), (plan,)) = snapshot.vehicle_types, snapshot.pricing_plans
    assert (kind.max_range_meters, plan.price_minor) == (20000, 200)
    shadowed = found(snapshot, "OVERRIDE_SHADOWED")
    assert sorted(f.record_id or "" for f in shadowed) == ["our-plan", "our-scooter"]
    # The deployment's own findings come first in the report.
    assert snapshot.findings[0].feed == "overrides"


def test_a_type_map_redirects_vehicles_station_counts_and_zone_rules() -> None:
    op_type = {**SCOOTER, "vehicle_type_id": "op-scooter", "max_range_meters": 1}
    op_type.pop("default_pricing_plan_id")
    raw = documents(bike("a", vehicle_type_id="op-scooter"), types=[op_type])
    raw["station_information"] = envelope(
        {"stations": [{"station_id": "s1", "name": "S1", "lat": 52.5, "lon": 13.4}]}
    )
    raw["station_status"] = envelope(
        {
            "stations": [
                {
                    "station_id": "s1",
                    "num_bikes_available": 4,
                    "is_installed": True,
                    "is_renting": True,
                    "is_returning": True,
                    "last_reported": 1_700_000_000,
                    "vehicle_types_available": [{"vehicle_type_id": "op-scooter", "count": 4}],
                }
            ]
        }
    )
    square = [[13.0, 52.0], [13.9, 52.0], [13.9, 52.9], [13.0, 52.9], [13.0, 52.0]]
    raw["geofencing_zones"] = envelope(
        {
            "geofencing_zones": {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "MultiPolygon", "coordinates": [[square]]},
                        "properties": {
                            "rules": [
                                {
                                    "vehicle_type_id": ["op-scooter"],
                                    "ride_allowed": False,
                                    "ride_through_allowed": True,
                                }
                            ]
                        },
                    }
                ],
            }
        }
    )
    supplied = overrides(
        vehicle_types=[SCOOTER],
        pricing_plans=[OUR_PLAN],
        vehicle_type_map={"op-scooter": "our-scooter", "never-seen": "our-scooter"},
    )

    snapshot = parse_snapshot(raw, overrides=supplied)

    assert [v.vehicle_type_id for v in snapshot.vehicles] == ["our-scooter"]
    assert [c.vehicle_type_id for c in snapshot.stations[0].vehicle_types_available] == [
        "our-scooter"
    ]
    assert snapshot.zones[0].rules[0].vehicle_type_ids == ("our-scooter",)
    (unused,) = found(snapshot, "OVERRIDE_UNUSED")
    assert unused.record_id == "never-seen" and unused.feed == "overrides"
    assert snapshot_problems(snapshot) == []


def test_a_plan_map_redirects_vehicle_and_type_plans() -> None:
    op_plan = {**OUR_PLAN, "plan_id": "op-plan", "price": 9.0}
    op_type = {**SCOOTER, "vehicle_type_id": "es", "default_pricing_plan_id": "op-plan"}
    raw = documents(
        bike("a", vehicle_type_id="es", pricing_plan_id="op-plan"),
        types=[op_type],
        plans=[op_plan],
    )
    supplied = overrides(pricing_plans=[OUR_PLAN], pricing_plan_map={"op-plan": "our-plan"})

    snapshot = parse_snapshot(raw, overrides=supplied)

    assert snapshot.vehicles[0].pricing_plan_id == "our-plan"
    assert snapshot.vehicle_types[0].default_pricing_plan_id == "our-plan"
    assert found(snapshot, "OVERRIDE_UNUSED") == []


def test_a_map_to_an_id_nobody_describes_is_reported_and_ignored() -> None:
    raw = documents(bike("a", vehicle_type_id="es"), types=[{**SCOOTER, "vehicle_type_id": "es"}])
    supplied = overrides(vehicle_type_map={"es": "typo-type"})

    snapshot = parse_snapshot(raw, overrides=supplied)

    assert snapshot.vehicles[0].vehicle_type_id == "es"  # as without the entry
    (ignored,) = found(snapshot, "OVERRIDE_TARGET_UNKNOWN")
    assert ignored.record_id == "es" and "typo-type" in ignored.message


def test_one_supplied_type_describes_a_feed_without_vehicle_types() -> None:
    raw = documents(bike("a"), bike("b"))

    snapshot = parse_snapshot(raw, overrides=overrides(vehicle_types=[SCOOTER]))

    assert {v.vehicle_type_id for v in snapshot.vehicles} == {"our-scooter"}
    (kind,) = snapshot.vehicle_types
    assert (kind.form_factor, kind.propulsion_type) == (
        FormFactor.SCOOTER_STANDING,
        PropulsionType.ELECTRIC,
    )
    # Its plan is neither the feed's nor supplied: reported, and dropped.
    assert kind.default_pricing_plan_id is None
    assert [f.feed for f in found(snapshot, "UNKNOWN_PRICING_PLAN")] == ["overrides"]


def test_supplied_records_nobody_uses_are_reported() -> None:
    moped = {**SCOOTER, "vehicle_type_id": "our-moped", "form_factor": "moped"}
    raw = documents(bike("a", vehicle_type_id="our-scooter"))

    snapshot = parse_snapshot(
        raw,
        overrides=overrides(
            vehicle_types=[SCOOTER, moped],
            pricing_plans=[OUR_PLAN, {**OUR_PLAN, "plan_id": "spare"}],
        ),
    )

    assert sorted(f.record_id or "" for f in found(snapshot, "OVERRIDE_UNUSED")) == [
        "our-moped",
        "spare",
    ]


# --- excluded feeds, over HTTP ---------------------------------------------------------------


def _now_envelope(data: Doc) -> Doc:
    return {"last_updated": int(time.time()), "ttl": 0, "version": "2.3", "data": data}


async def test_excluded_feeds_are_never_requested_and_unlisted_exclusions_are_reported() -> None:
    server = FeedServer()
    docs = {
        "system_information": _now_envelope({"system_id": "s", "name": "S", "timezone": "UTC"}),
        "free_bike_status": _now_envelope({"bikes": [bike("a", vehicle_type_id="op")]}),
        "vehicle_types": _now_envelope(
            {"vehicle_types": [{**SCOOTER, "vehicle_type_id": "op", "form_factor": "moped"}]}
        ),
    }
    for name, document in docs.items():
        server.add_static(f"/s/{name}.json", orjson.dumps(document))
    async with serve_in_background(server.app) as base_url:
        feeds = {name: f"{base_url}/s/{name}.json" for name in docs}
        server.add_static(
            "/s/gbfs.json",
            orjson.dumps(
                _now_envelope({"en": {"feeds": [{"name": n, "url": u} for n, u in feeds.items()]}})
            ),
        )
        # The deployment replaces the operator's types: excluded, supplied and mapped.
        replacing = {
            "exclude_feeds": ["vehicle_types", "geofencing_zones"],
            "vehicle_types": [SCOOTER],
            "vehicle_type_map": {"op": "our-scooter"},
        }
        for config in (
            {"feeds": feeds, "overrides": replacing},
            {"discovery_url": f"{base_url}/s/gbfs.json", "overrides": replacing},
        ):
            adapter = GbfsAdapter.from_config(config)
            async with httpx.AsyncClient(timeout=5.0) as client:
                snapshot = await adapter.fetch_snapshot(
                    FetchContext(http=client, cache=FeedCache())
                )

            assert server.request_counts["/s/vehicle_types.json"] == 0
            assert [v.vehicle_type_id for v in snapshot.vehicles] == ["our-scooter"]
            assert [t.form_factor for t in snapshot.vehicle_types] == [FormFactor.SCOOTER_STANDING]
            (unlisted,) = found(snapshot, "OVERRIDE_UNUSED")
            assert "geofencing_zones" in unlisted.message
            assert snapshot.findings[0] == unlisted
