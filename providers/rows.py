"""Canonical snapshot -> provider-scoped table rows and index documents.

This is where external ids become public ids (``<provider>:<external id>``), where a vehicle's
effective pricing plan is resolved, and where references the snapshot cannot satisfy are reported.
An adapter should resolve its own references (the contract says so, and GBFS does), but the rule
is enforced here too, the same way, for any adapter: a vehicle or a station count naming a type
the snapshot does not describe keeps its record under :func:`placeholder_vehicle_type`, and a
vehicle naming an unknown plan keeps its type's default plan. Each is reported once per id.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from adapters.dto import (
    Finding,
    FormFactor,
    PropulsionType,
    Snapshot,
    VehicleType,
    placeholder_vehicle_type,
)
from app.vehicle import VehicleDoc, copy_records, record_from_dto, uris_dict

_INT4 = 2**31 - 1


class _IntGuard:
    """Integers that do not fit their int4 column become unknown (NULL) and are reported,
    instead of failing the whole merge."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings

    def __call__(self, value: int | None, feed: str, field_name: str, record: str) -> int | None:
        if value is None or -_INT4 - 1 <= value <= _INT4:
            return value
        self.findings.append(
            Finding(
                "warning",
                "VALUE_OUT_OF_RANGE",
                feed,
                f"{field_name} {value} is out of range; stored as unknown",
                record_id=record,
            )
        )
        return None


def scoped(provider_id: str, external_id: str) -> str:
    return f"{provider_id}:{external_id}"


def _uris_json(uris: dict[str, str | None] | None) -> str | None:
    return None if uris is None else orjson.dumps(uris).decode()


@dataclass(slots=True)
class SnapshotRows:
    vehicle_types: list[tuple[Any, ...]] = field(default_factory=list)
    pricing_plans: list[tuple[Any, ...]] = field(default_factory=list)
    stations: list[tuple[Any, ...]] = field(default_factory=list)
    zones: list[tuple[Any, ...]] = field(default_factory=list)
    regions: list[tuple[Any, ...]] = field(default_factory=list)
    vehicle_docs: dict[str, VehicleDoc] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def vehicles(self) -> list[tuple[Any, ...]]:
        """The vehicles' staging rows (app/vehicle.STAGE_COLUMNS), from their records as they
        are now: built when the merge asks, after :func:`hold_booked`."""
        return copy_records(self.vehicle_docs.values())


def build_rows(provider_id: str, snap: Snapshot) -> SnapshotRows:
    out = SnapshotRows()
    p = provider_id
    int4 = _IntGuard(out.findings)

    plan_ids = {plan.external_id for plan in snap.pricing_plans}
    for plan in snap.pricing_plans:
        out.pricing_plans.append(
            (
                scoped(p, plan.external_id),
                p,
                plan.external_id,
                plan.name,
                plan.description,
                plan.currency.upper(),
                plan.price_minor,
                plan.is_taxable,
                orjson.dumps([asdict(s) for s in plan.per_km_pricing]).decode(),
                orjson.dumps([asdict(s) for s in plan.per_min_pricing]).decode(),
                plan.surge_pricing,
                plan.url,
            )
        )

    def type_row(t: VehicleType) -> tuple[Any, ...]:
        default_plan = t.default_pricing_plan_id if t.default_pricing_plan_id in plan_ids else None
        return (
            scoped(p, t.external_id),
            p,
            t.external_id,
            t.form_factor.value,
            t.propulsion_type.value,
            t.name,
            t.max_range_meters,
            int4(t.rider_capacity, "vehicle_types", "rider_capacity", t.external_id),
            scoped(p, default_plan) if default_plan else None,
            t.return_constraint,
            t.co2_grams_per_km,
            int4(
                t.default_reserve_time_minutes,
                "vehicle_types",
                "default_reserve_time",
                t.external_id,
            ),
            t.raw_form_factor,
        )

    types = {t.external_id: t for t in snap.vehicle_types}
    for t in snap.vehicle_types:
        out.vehicle_types.append(type_row(t))
    types_described = bool(types)
    # Types the records name but the snapshot lacks, and how often, per feed: reported once each.
    placeholders: dict[str, VehicleType] = {}
    unknown_types: dict[tuple[str, str], int] = {}

    def known_type(type_id: str, feed: str) -> str:
        if type_id not in types:
            placeholders[type_id] = types[type_id] = placeholder_vehicle_type(
                type_id, types_described=types_described
            )
        if type_id in placeholders:
            key = (feed, type_id)
            unknown_types[key] = unknown_types.get(key, 0) + 1
        return type_id

    station_ids = set()
    for s in snap.stations:
        station_ids.add(s.external_id)
        out.stations.append(
            (
                scoped(p, s.external_id),
                p,
                s.external_id,
                s.name,
                s.short_name,
                s.lat,
                s.lon,
                int4(s.capacity, "station_information", "capacity", s.external_id),
                s.region_id,
                s.is_virtual,
                _uris_json(uris_dict(s.rental_uris)),
                int4(
                    s.num_vehicles_available,
                    "station_status",
                    "num_vehicles_available",
                    s.external_id,
                ),
                int4(
                    s.num_vehicles_disabled,
                    "station_status",
                    "num_vehicles_disabled",
                    s.external_id,
                ),
                int4(s.num_docks_available, "station_status", "num_docks_available", s.external_id),
                s.is_installed,
                s.is_renting,
                s.is_returning,
                orjson.dumps(
                    [
                        {
                            "vehicle_type_id": scoped(
                                p, known_type(c.vehicle_type_id, "station_status")
                            ),
                            "count": c.count,
                        }
                        for c in s.vehicle_types_available
                    ]
                ).decode(),
                s.last_reported,
            )
        )

    unknown_plans: dict[str, int] = {}
    duplicates: dict[str, int] = {}
    # What every vehicle of a type shares, worked out once per type rather than per vehicle
    # (enum values and scoped ids were a third of a 100,000-vehicle snapshot's row building):
    # scoped type id, form factor, propulsion, scoped default plan id.
    shared: dict[str | None, tuple[str | None, str, str, str | None]] = {
        None: (None, FormFactor.BICYCLE.value, PropulsionType.HUMAN.value, None)
    }
    for ext, vtype in types.items():
        default_plan = vtype.default_pricing_plan_id
        shared[ext] = (
            scoped(p, ext),
            vtype.form_factor.value,
            vtype.propulsion_type.value,
            scoped(p, default_plan) if default_plan in plan_ids else None,
        )
    docs = out.vehicle_docs
    for v in snap.vehicles:
        vid = f"{p}:{v.external_id}"  # scoped(), inlined on the per-vehicle path
        if vid in docs:
            # Adapters should not send one vehicle twice; if one does, the first wins (as in
            # the GBFS parser) rather than the whole merge failing on the key.
            duplicates[v.external_id] = duplicates.get(v.external_id, 0) + 1
            continue
        # No type at all (None or ""): an untyped bicycle, as GBFS 1.x/2.x feeds imply.
        type_values = shared.get(v.vehicle_type_id or None)
        if type_values is None or v.vehicle_type_id in placeholders:
            # A type the snapshot does not describe: the vehicle stays, under a placeholder.
            unknown = known_type(str(v.vehicle_type_id), "vehicle_status")
            type_values = shared.get(unknown)
            if type_values is None:
                vtype = types[unknown]
                type_values = shared[unknown] = (
                    scoped(p, unknown),
                    vtype.form_factor.value,
                    vtype.propulsion_type.value,
                    None,
                )
        type_id, form_factor, propulsion, default_plan_id = type_values
        # The vehicle's own plan overrides its type's default (GBFS 2.2+).
        plan_id: str | None = default_plan_id
        if v.pricing_plan_id in plan_ids:
            plan_id = scoped(p, v.pricing_plan_id)
        elif v.pricing_plan_id:
            unknown_plans[v.pricing_plan_id] = unknown_plans.get(v.pricing_plan_id, 0) + 1
        station_id = (
            scoped(p, v.station_id) if v.station_id and v.station_id in station_ids else None
        )
        docs[vid] = record_from_dto(
            v, vid, p, form_factor, propulsion, type_id, plan_id, station_id
        )
    for external_id, count in duplicates.items():
        out.findings.append(
            Finding(
                "error",
                "DUPLICATE_ID",
                "vehicle_status",
                f"vehicle {external_id!r} appears {count + 1} times; the first is kept",
                record_id=external_id,
            )
        )
    for placeholder in placeholders.values():
        out.vehicle_types.append(type_row(placeholder))
    for (feed, type_id), count in unknown_types.items():
        shape = (
            f"{types[type_id].form_factor.value}, {types[type_id].propulsion_type.value}, "
            "range unknown"
        )
        records = "vehicle(s)" if feed == "vehicle_status" else "station count(s)"
        out.findings.append(
            Finding(
                "warning",
                "UNKNOWN_VEHICLE_TYPE",
                feed,
                f"{count} {records} name vehicle_type_id {type_id!r}, which the snapshot does "
                f"not describe: kept under a placeholder type ({shape})",
                record_id=type_id,
            )
        )
    for plan_id, count in unknown_plans.items():
        out.findings.append(
            Finding(
                "warning",
                "UNKNOWN_PRICING_PLAN",
                "vehicle_status",
                f"{count} vehicle(s) name pricing_plan_id {plan_id!r}, which the snapshot does "
                "not describe: they keep their type's default plan",
                record_id=plan_id,
            )
        )

    for zone in snap.zones:
        out.zones.append(
            (
                f"{p}:zone-{zone.ordinal}",
                p,
                zone.ordinal,
                zone.name,
                orjson.dumps(zone.geometry).decode(),
                orjson.dumps([rule_json(p, r) for r in zone.rules]).decode(),
                zone.start,
                zone.end,
            )
        )

    for region in snap.regions:
        out.regions.append((scoped(p, region.external_id), p, region.external_id, region.name))
    return out


def rule_json(provider_id: str, rule: Any) -> dict[str, Any]:
    return {
        "vehicle_type_ids": [scoped(provider_id, t) for t in rule.vehicle_type_ids]
        if rule.vehicle_type_ids is not None
        else None,
        "ride_start_allowed": rule.ride_start_allowed,
        "ride_end_allowed": rule.ride_end_allowed,
        "ride_through_allowed": rule.ride_through_allowed,
        "maximum_speed_kph": rule.maximum_speed_kph,
        "station_parking": rule.station_parking,
    }


def hold_booked(rows: SnapshotRows, held: set[str]) -> None:
    """Vehicles with an active booking here stay reserved, whatever the operator's feed says:
    its feed may predate the booking, and a booked vehicle must not come back into search."""
    for vid in held:
        doc = rows.vehicle_docs.get(vid)
        if doc is not None and not doc.is_reserved:
            rows.vehicle_docs[vid] = doc._replace(is_reserved=True)
