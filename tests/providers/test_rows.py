"""Row building keeps records whose references the snapshot cannot satisfy, as the parser does.

An adapter other than GBFS may hand over a snapshot with a dangling type or plan id; the rows
are built without a database, and the expected values are written out from the snapshot.
"""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.dto import (
    FeedMeta,
    FormFactor,
    PricingPlan,
    PropulsionType,
    Snapshot,
    Station,
    SystemInfo,
    Vehicle,
    VehicleType,
    VehicleTypeCount,
)
from providers.merge import VEHICLES
from providers.rows import build_rows

COLUMNS = [name for name, _ in VEHICLES.stage_columns]


def _snapshot(*vehicles: Vehicle, stations: list[Station] | None = None) -> Snapshot:
    return Snapshot(
        version="x",
        system=SystemInfo(system_id="s", name="S"),
        vehicle_types=[
            VehicleType(
                "car",
                FormFactor.CAR,
                PropulsionType.ELECTRIC,
                max_range_meters=300000,
                default_pricing_plan_id="minute",
            )
        ],
        pricing_plans=[PricingPlan("minute", "Minute", "EUR", 100, True)],
        vehicles=list(vehicles),
        stations=stations or [],
        feeds=[FeedMeta("vehicle_status", "", datetime(2025, 1, 1, tzinfo=UTC), 60)],
    )


def _vehicle(vid: str, type_id: str | None, plan_id: str | None = None) -> Vehicle:
    return Vehicle(vid, 52.5, 13.4, False, False, vehicle_type_id=type_id, pricing_plan_id=plan_id)


def _row(rows: list[tuple[object, ...]], vid: str) -> dict[str, object]:
    for row in rows:
        if row[0] == vid:
            return dict(zip(COLUMNS, row, strict=True))
    raise AssertionError(f"no row {vid}")


def test_a_vehicle_of_an_undescribed_type_is_kept_under_a_placeholder_type_row() -> None:
    snapshot = _snapshot(
        _vehicle("v1", "car"),
        _vehicle("v2", "van"),
        _vehicle("v3", "van"),
        stations=[
            Station(
                "st1",
                "Station",
                52.5,
                13.4,
                vehicle_types_available=(VehicleTypeCount("bus", 2),),
            )
        ],
    )

    rows = build_rows("p", snapshot)

    assert sorted(rows.vehicle_docs) == ["p:v1", "p:v2", "p:v3"]
    van = _row(rows.vehicles, "p:v2")
    assert (van["vehicle_type_id"], van["form_factor"], van["propulsion_type"]) == (
        "p:van",
        "other",
        "human",
    )
    # Placeholder rows exist for every undescribed id, so the API can show what they are.
    type_rows = {row[0]: row for row in rows.vehicle_types}
    assert set(type_rows) == {"p:car", "p:van", "p:bus"}
    assert type_rows["p:van"][3:7] == ("other", "human", None, None)
    warnings = {(f.feed, f.record_id): f for f in rows.findings}
    assert set(warnings) == {("vehicle_status", "van"), ("station_status", "bus")}
    assert "2 vehicle(s)" in warnings[("vehicle_status", "van")].message
    assert all(f.severity == "warning" for f in rows.findings)


def test_a_vehicle_naming_an_unknown_plan_keeps_its_types_default_plan() -> None:
    rows = build_rows("p", _snapshot(_vehicle("v1", "car", "weekend"), _vehicle("v2", "car")))

    assert _row(rows.vehicles, "p:v1")["pricing_plan_id"] == "p:minute"
    (warning,) = rows.findings
    assert (warning.code, warning.record_id, warning.severity) == (
        "UNKNOWN_PRICING_PLAN",
        "weekend",
        "warning",
    )
