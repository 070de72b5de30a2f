"""Well-formedness of a canonical :class:`~adapters.dto.Snapshot`: what the sync may rely on.

:func:`snapshot_problems` lists every problem (an empty list means well-formed);
:func:`assert_well_formed` raises :class:`ContractViolation` listing them. Pure functions: no
network, no pytest.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from adapters.dto import (
    FeedMeta,
    Finding,
    FormFactor,
    GeofencingZone,
    PricingPlan,
    PricingSegment,
    PropulsionType,
    Snapshot,
    Station,
    Vehicle,
    VehicleEquipment,
    VehicleType,
    ZoneRule,
)

__all__ = ["ContractViolation", "assert_well_formed", "snapshot_problems"]

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_SEVERITIES = frozenset({"error", "warning"})


class ContractViolation(AssertionError):
    """An adapter broke the availability-adapter contract. An ``AssertionError``, so pytest
    reports it as a plain test failure with the message."""


def assert_well_formed(snapshot: object) -> None:
    problems = snapshot_problems(snapshot)
    if problems:
        shown = "\n  - ".join(problems[:50])
        more = f"\n  … and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise ContractViolation(f"snapshot is not well-formed:\n  - {shown}{more}")


def snapshot_problems(snapshot: object) -> list[str]:
    """Every way ``snapshot`` is not a well-formed canonical snapshot, as readable lines."""
    if not isinstance(snapshot, Snapshot):
        return [f"fetch_snapshot returned {type(snapshot).__name__}, not adapters.dto.Snapshot"]
    out: list[str] = []
    if not _text(snapshot.version):
        out.append("snapshot.version is empty")
    if not isinstance(snapshot.system.system_id, str):
        out.append("system.system_id is not a string")
    elif not snapshot.system.system_id.strip() and not any(
        f.severity == "error" for f in snapshot.findings
    ):
        # A feed set without system information is usable (it is reported); silence is not.
        out.append("system.system_id is empty and no error finding says why")
    if not isinstance(snapshot.system.name, str):
        out.append("system.name is not a string")

    plan_ids = _ids("pricing_plans", [p.external_id for p in snapshot.pricing_plans], out)
    type_ids = _ids("vehicle_types", [t.external_id for t in snapshot.vehicle_types], out)
    region_ids = _ids("regions", [r.external_id for r in snapshot.regions], out)
    station_ids = _ids("stations", [s.external_id for s in snapshot.stations], out)
    _ids("vehicles", [v.external_id for v in snapshot.vehicles], out)

    for plan in snapshot.pricing_plans:
        _check_plan(plan, out)
    for vtype in snapshot.vehicle_types:
        _check_type(vtype, plan_ids, out)
    for station in snapshot.stations:
        _check_station(station, type_ids, region_ids, out)
    for vehicle in snapshot.vehicles:
        _check_vehicle(vehicle, type_ids, plan_ids, station_ids, out)
    ordinals = Counter(z.ordinal for z in snapshot.zones)
    out.extend(f"zones: ordinal {o} used {n} times" for o, n in ordinals.items() if n > 1)
    # Rule filters name vehicle types; a feed set without vehicle types (zones only) cannot
    # resolve them, so they are checked when the snapshot carries types.
    rule_type_ids = type_ids if snapshot.vehicle_types else None
    for zone in snapshot.zones:
        _check_zone(zone, rule_type_ids, out)
    for rule in snapshot.global_rules:
        _check_rule("global_rules", rule, rule_type_ids, out)
    for region in snapshot.regions:
        if not isinstance(region.name, str):
            out.append(f"region {region.external_id!r}: name is not a string")
    _ids("feeds", [f.name for f in snapshot.feeds], out)
    for feed in snapshot.feeds:
        _check_feed(feed, out)
    for finding in snapshot.findings:
        _check_finding(finding, out)
    return out


# -- per record --------------------------------------------------------------------------------


def _check_plan(plan: PricingPlan, out: list[str]) -> None:
    where = f"pricing plan {plan.external_id!r}"
    if not isinstance(plan.currency, str) or not _CURRENCY.match(plan.currency):
        out.append(f"{where}: currency {plan.currency!r} is not an ISO 4217 code")
    if not _int(plan.price_minor) or plan.price_minor < 0:
        out.append(f"{where}: price_minor {plan.price_minor!r} is not a non-negative integer")
    if not isinstance(plan.is_taxable, bool):
        out.append(f"{where}: is_taxable is not a bool")
    for kind, segments in (("per_km", plan.per_km_pricing), ("per_min", plan.per_min_pricing)):
        for segment in segments:
            _check_segment(f"{where} {kind}", segment, out)


def _check_segment(where: str, segment: PricingSegment, out: list[str]) -> None:
    if not _int(segment.rate_minor):
        out.append(f"{where}: rate_minor {segment.rate_minor!r} is not an integer (minor units)")
    if not _int(segment.start) or segment.start < 0:
        out.append(f"{where}: start {segment.start!r} is not a non-negative integer")
    if not _int(segment.interval) or segment.interval < 0:
        out.append(f"{where}: interval {segment.interval!r} is not a non-negative integer")
    if segment.end is not None and (
        not _int(segment.end) or (_int(segment.start) and segment.end < segment.start)
    ):
        out.append(f"{where}: end {segment.end!r} is before start {segment.start!r}")


def _check_type(vtype: VehicleType, plan_ids: set[str], out: list[str]) -> None:
    where = f"vehicle type {vtype.external_id!r}"
    if not isinstance(vtype.form_factor, FormFactor):
        out.append(f"{where}: form_factor {vtype.form_factor!r} is not a FormFactor")
    if not isinstance(vtype.propulsion_type, PropulsionType):
        out.append(f"{where}: propulsion_type {vtype.propulsion_type!r} is not a PropulsionType")
    _non_negative(where, "max_range_meters", vtype.max_range_meters, out)
    _non_negative(where, "rider_capacity", vtype.rider_capacity, out)
    _non_negative(where, "co2_grams_per_km", vtype.co2_grams_per_km, out)
    _non_negative(where, "default_reserve_time_minutes", vtype.default_reserve_time_minutes, out)
    _refs(where, "default_pricing_plan_id", [vtype.default_pricing_plan_id], plan_ids, out)
    _refs(where, "pricing_plan_ids", vtype.pricing_plan_ids, plan_ids, out)


def _check_vehicle(
    vehicle: Vehicle, type_ids: set[str], plan_ids: set[str], station_ids: set[str], out: list[str]
) -> None:
    where = f"vehicle {vehicle.external_id!r}"
    _position(where, vehicle.lat, vehicle.lon, out)
    for name in ("is_reserved", "is_disabled"):
        if not isinstance(getattr(vehicle, name), bool):
            out.append(f"{where}: {name} is not a bool")
    _refs(where, "vehicle_type_id", [vehicle.vehicle_type_id], type_ids, out)
    _refs(where, "pricing_plan_id", [vehicle.pricing_plan_id], plan_ids, out)
    _refs(where, "station_id", [vehicle.station_id], station_ids, out)
    _non_negative(where, "current_range_meters", vehicle.current_range_meters, out)
    fuel = vehicle.current_fuel_percent
    if fuel is not None and not (_number(fuel) and 0.0 <= fuel <= 1.0):
        out.append(f"{where}: current_fuel_percent {fuel!r} is not within 0..1")
    _timestamp(where, "last_reported", vehicle.last_reported, out)
    equipment = vehicle.vehicle_equipment
    if equipment is not None and (
        not all(isinstance(e, VehicleEquipment) for e in equipment)
        or list(equipment) != [e for e in VehicleEquipment if e in equipment]
    ):
        out.append(
            f"{where}: vehicle_equipment must be VehicleEquipment values, each once, in order"
        )


def _check_station(
    station: Station, type_ids: set[str], region_ids: set[str], out: list[str]
) -> None:
    where = f"station {station.external_id!r}"
    if not isinstance(station.name, str):
        out.append(f"{where}: name is not a string")
    _position(where, station.lat, station.lon, out)
    for name in ("capacity", "num_vehicles_available", "num_vehicles_disabled"):
        _non_negative(where, name, getattr(station, name), out)
    _non_negative(where, "num_docks_available", station.num_docks_available, out)
    _refs(where, "region_id", [station.region_id], region_ids, out)
    counted = [c.vehicle_type_id for c in station.vehicle_types_available]
    _refs(where, "vehicle_types_available", counted, type_ids, out)
    for count in station.vehicle_types_available:
        _non_negative(where, f"vehicle_types_available[{count.vehicle_type_id}]", count.count, out)
    _timestamp(where, "last_reported", station.last_reported, out)


def _check_zone(zone: GeofencingZone, type_ids: set[str] | None, out: list[str]) -> None:
    where = f"zone #{zone.ordinal}"
    geometry = zone.geometry
    if not isinstance(geometry, dict) or geometry.get("type") != "MultiPolygon":
        out.append(f"{where}: geometry is not a GeoJSON MultiPolygon")
    else:
        _check_multipolygon(where, geometry.get("coordinates"), out)
    for rule in zone.rules:
        _check_rule(where, rule, type_ids, out)
    _timestamp(where, "start", zone.start, out)
    _timestamp(where, "end", zone.end, out)
    if _aware(zone.start) and _aware(zone.end) and zone.start > zone.end:  # type: ignore[operator]
        out.append(f"{where}: start is after end")


def _check_multipolygon(where: str, coordinates: Any, out: list[str]) -> None:
    if not isinstance(coordinates, list) or not coordinates:
        out.append(f"{where}: MultiPolygon has no polygons")
        return
    for polygon in coordinates:
        if not isinstance(polygon, list) or not polygon:
            out.append(f"{where}: a polygon has no rings")
            return
        for ring in polygon:
            if not isinstance(ring, list) or len(ring) < 4 or ring[0] != ring[-1]:
                out.append(f"{where}: a ring is not closed or has fewer than 4 positions")
                return
            for position in ring:
                ok = isinstance(position, list | tuple) and len(position) >= 2
                if not ok or not _in_range(position[1], 90) or not _in_range(position[0], 180):
                    out.append(f"{where}: position {position!r} is not a [lon, lat] in range")
                    return


def _check_rule(where: str, rule: ZoneRule, type_ids: set[str] | None, out: list[str]) -> None:
    for name in ("ride_start_allowed", "ride_end_allowed", "ride_through_allowed"):
        if not isinstance(getattr(rule, name), bool):
            out.append(f"{where}: rule {name} is not a bool")
    if type_ids is not None:
        _refs(f"{where} rule", "vehicle_type_ids", rule.vehicle_type_ids or (), type_ids, out)
    _non_negative(f"{where} rule", "maximum_speed_kph", rule.maximum_speed_kph, out)


def _check_feed(feed: FeedMeta, out: list[str]) -> None:
    where = f"feed {feed.name!r}"
    if not isinstance(feed.url, str):
        out.append(f"{where}: url is not a string")
    _non_negative(where, "ttl", feed.ttl, out)
    _timestamp(where, "last_updated", feed.last_updated, out)


def _check_finding(finding: Finding, out: list[str]) -> None:
    if finding.severity not in _SEVERITIES:
        out.append(f"finding {finding.code!r}: severity {finding.severity!r} is not error/warning")
    if not _text(finding.code) or not isinstance(finding.message, str):
        out.append(f"finding {finding!r}: empty code or message")


# -- helpers -----------------------------------------------------------------------------------


def _ids(kind: str, ids: list[str], out: list[str]) -> set[str]:
    """The set of well-formed ids; empty and duplicate ids are reported."""
    empty = sum(1 for i in ids if not _text(i))
    if empty:
        out.append(f"{kind}: {empty} record(s) with an empty or non-string id")
    duplicates = sorted(i for i, n in Counter(i for i in ids if _text(i)).items() if n > 1)
    if duplicates:
        out.append(f"{kind}: duplicate id(s) {', '.join(map(repr, duplicates[:10]))}")
    return {i for i in ids if _text(i)}


def _refs(
    where: str, name: str, values: Iterable[str | None], known: set[str], out: list[str]
) -> None:
    for value in values:
        if value is not None and value not in known:
            out.append(f"{where}: {name} {value!r} refers to nothing in the snapshot")


def _position(where: str, lat: object, lon: object, out: list[str]) -> None:
    if not _in_range(lat, 90) or not _in_range(lon, 180):
        out.append(f"{where}: position ({lat!r}, {lon!r}) is out of range")


def _timestamp(where: str, name: str, value: object, out: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, datetime):
        out.append(f"{where}: {name} is not a datetime")
    elif not _aware(value):
        out.append(f"{where}: {name} {value.isoformat()} is not timezone-aware")
    elif value.utcoffset() != timedelta(0):
        out.append(f"{where}: {name} {value.isoformat()} is not in UTC")


def _non_negative(where: str, name: str, value: object, out: list[str]) -> None:
    if value is not None and not (_number(value) and value >= 0):  # type: ignore[operator]
        out.append(f"{where}: {name} {value!r} is not a non-negative number")


def _aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _in_range(value: object, limit: float) -> bool:
    return _number(value) and -limit <= value <= limit  # type: ignore[operator]
