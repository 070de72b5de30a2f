"""Live data: stations (``station_information`` + ``station_status``) and vehicles.

References are only kept when they resolve inside the snapshot, so the sync never stores a
dangling id: an unknown ``pricing_plan_id`` / ``station_id`` / ``region_id`` /
``vehicle_types_available`` entry is dropped with a warning, while a vehicle whose
``vehicle_type_id`` is unknown is skipped (its form factor, hence what it *is*, is unknown).
Docked vehicles without coordinates take their station's.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, replace
from typing import Any

from adapters.dto import PropulsionType, Station, Vehicle, VehicleType, VehicleTypeCount
from adapters.gbfs.values import Reader, RecordSkipped, coordinates, records


def _by_version(v3_name: str, v2_name: str, major: int) -> tuple[str, str]:
    """Both spellings of a renamed field, the one of the feed's version first."""
    return (v3_name, v2_name) if major >= 3 else (v2_name, v3_name)


@dataclass(frozen=True, slots=True)
class TypeCatalog:
    """What vehicles and stations may reference."""

    types: Mapping[str, VehicleType]
    plan_ids: Set[str]
    region_ids: Set[str]
    # Set when the feed has no vehicle_types: every vehicle is this type.
    default_type_id: str | None = None


# --- stations --------------------------------------------------------------------------------


def parse_stations(
    information: Mapping[str, Any] | None,
    status: Mapping[str, Any] | None,
    info_reader: Reader,
    status_reader: Reader,
    catalog: TypeCatalog,
) -> list[Station]:
    if information is None:
        if status is not None:
            _report_status_without_information(status, status_reader)
        return []
    stations: dict[str, Station] = {}
    seen_ids: set[str] = set()  # every id station_information lists, kept or not
    for station_id, raw in records(
        information, ("stations",), ("station_id",), info_reader, stations
    ):
        seen_ids.add(station_id)
        try:
            stations[station_id] = _station(station_id, raw, info_reader, catalog)
        except RecordSkipped as skipped:
            info_reader.error(skipped.code, f"station skipped: {skipped.message}", station_id)
    if status is None:
        return list(stations.values())

    merged: dict[str, Station] = {}
    for station_id, raw in records(status, ("stations",), ("station_id",), status_reader, merged):
        if station_id not in seen_ids:
            status_reader.error(
                "STATION_INFORMATION_MISSING",
                "station_status entry without station_information: skipped",
                station_id,
            )
            continue
        if station_id not in stations:
            continue  # its information was skipped, already reported
        try:
            merged[station_id] = _with_status(stations[station_id], raw, status_reader, catalog)
        except RecordSkipped as skipped:
            status_reader.error(
                skipped.code, f"status skipped, station kept: {skipped.message}", station_id
            )
            merged[station_id] = stations[station_id]
    for station_id in stations:
        if station_id not in merged:
            status_reader.warn("STATION_WITHOUT_STATUS", "station has no status entry", station_id)
    # Feed order of station_information, whatever the order of station_status.
    return [merged.get(station_id, station) for station_id, station in stations.items()]


def _report_status_without_information(status: Mapping[str, Any], reader: Reader) -> None:
    # One finding, not one per station: the whole file is missing, not 256 records broken.
    entries = status.get("stations")
    count = len(entries) if isinstance(entries, list) else 0
    reader.error(
        "STATION_INFORMATION_MISSING",
        f"station_status without station_information: all {count} stations skipped "
        "(no name or location)",
        None,
    )


def _station(
    station_id: str, raw: Mapping[str, Any], reader: Reader, catalog: TypeCatalog
) -> Station:
    position = coordinates(reader, raw.get("lat"), raw.get("lon"), station_id)
    if position is None:
        raise RecordSkipped("COORDINATES_MISSING", "station has no lat/lon")
    short_name = reader.optional(reader.localized, raw.get("short_name"), "short_name", station_id)
    name = reader.localized(raw.get("name"), "name", station_id)
    region_id = reader.optional(reader.ident, raw.get("region_id"), "region_id", station_id)
    if region_id is not None and region_id not in catalog.region_ids:
        reader.warn("UNKNOWN_REGION", "region_id not in system_regions, dropped", station_id)
        region_id = None
    return Station(
        external_id=station_id,
        name=reader.defaulted(name, short_name or station_id, "name", station_id),
        lat=position[0],
        lon=position[1],
        short_name=short_name,
        capacity=reader.optional(reader.count, raw.get("capacity"), "capacity", station_id),
        region_id=region_id,
        is_virtual=bool(
            reader.optional(
                reader.boolean, raw.get("is_virtual_station"), "is_virtual_station", station_id
            )
        ),
        rental_uris=reader.optional(
            reader.rental_uris, raw.get("rental_uris"), "rental_uris", station_id
        ),
    )


def _first_present(raw: Mapping[str, Any], keys: tuple[str, str], reader: Reader, rid: str) -> Any:
    if raw.get(keys[0]) is not None:
        return raw[keys[0]]
    if raw.get(keys[1]) is not None:
        reader.warn("FIELD_VERSION_MISMATCH", f"`{keys[1]}` used for `{keys[0]}`", rid)
        return raw[keys[1]]
    return None


def _with_status(
    station: Station, raw: Mapping[str, Any], reader: Reader, catalog: TypeCatalog
) -> Station:
    rid = station.external_id
    available = reader.require(
        reader.count(
            _first_present(
                raw,
                _by_version("num_vehicles_available", "num_bikes_available", reader.major),
                reader,
                rid,
            ),
            "num_vehicles_available",
            rid,
        ),
        "num_vehicles_available",
    )
    disabled = reader.optional(
        reader.count,
        _first_present(
            raw,
            _by_version("num_vehicles_disabled", "num_bikes_disabled", reader.major),
            reader,
            rid,
        ),
        "num_vehicles_disabled",
        rid,
    )
    return replace(
        station,
        num_vehicles_available=available,
        num_vehicles_disabled=disabled,
        num_docks_available=reader.optional(
            reader.count, raw.get("num_docks_available"), "num_docks_available", rid
        ),
        is_installed=reader.optional(reader.boolean, raw.get("is_installed"), "is_installed", rid),
        is_renting=reader.optional(reader.boolean, raw.get("is_renting"), "is_renting", rid),
        is_returning=reader.optional(reader.boolean, raw.get("is_returning"), "is_returning", rid),
        vehicle_types_available=_type_counts(raw, available, reader, catalog, rid),
        last_reported=reader.optional(
            reader.timestamp, raw.get("last_reported"), "last_reported", rid
        ),
    )


def _type_counts(
    raw: Mapping[str, Any], available: int, reader: Reader, catalog: TypeCatalog, rid: str
) -> tuple[VehicleTypeCount, ...]:
    entries = raw.get("vehicle_types_available")
    if entries is None:
        if catalog.default_type_id is not None:
            # No vehicle_types feed: every vehicle is the default bicycle, so the split is known.
            return (VehicleTypeCount(catalog.default_type_id, available),)
        reader.warn(
            "MISSING_VEHICLE_TYPES_AVAILABLE",
            "vehicle_types exists but station lacks vehicle_types_available",
            rid,
        )
        return ()
    if not isinstance(entries, list):
        reader.warn("INVALID_OPTIONAL_FIELD", "vehicle_types_available: not an array", rid)
        return ()
    counts: list[VehicleTypeCount] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            reader.warn("INVALID_OPTIONAL_FIELD", "vehicle_types_available: bad entry", rid)
            continue
        type_id = reader.optional(
            reader.ident, entry.get("vehicle_type_id"), "vehicle_type_id", rid
        )
        count = reader.optional(reader.count, entry.get("count"), "count", rid)
        if type_id is None or count is None:
            reader.warn("INVALID_OPTIONAL_FIELD", "vehicle_types_available: bad entry", rid)
        elif type_id not in catalog.types:
            reader.warn(
                "UNKNOWN_VEHICLE_TYPE", "vehicle_types_available type not in vehicle_types", rid
            )
        else:
            counts.append(VehicleTypeCount(type_id, count))
    return tuple(counts)


# --- vehicles --------------------------------------------------------------------------------


def parse_vehicles(
    data: Mapping[str, Any],
    reader: Reader,
    catalog: TypeCatalog,
    stations: Mapping[str, Station],
) -> list[Vehicle]:
    arrays = _by_version("vehicles", "bikes", reader.major)
    ids = _by_version("vehicle_id", "bike_id", reader.major)
    vehicles: dict[str, Vehicle] = {}
    for vehicle_id, raw in records(data, arrays, ids, reader, vehicles):
        try:
            vehicles[vehicle_id] = _vehicle(vehicle_id, raw, reader, catalog, stations)
        except RecordSkipped as skipped:
            reader.error(skipped.code, f"vehicle skipped: {skipped.message}", vehicle_id)
    return list(vehicles.values())


def _vehicle_type(raw: Mapping[str, Any], reader: Reader, catalog: TypeCatalog, rid: str) -> str:
    type_id = reader.ident(raw.get("vehicle_type_id"), "vehicle_type_id", rid)
    if catalog.default_type_id is not None:
        if type_id is not None:
            raise RecordSkipped(
                "UNKNOWN_VEHICLE_TYPE",
                f"vehicle_type_id {type_id!r} but the feed publishes no vehicle_types",
            )
        return catalog.default_type_id
    if type_id is None:
        if len(catalog.types) == 1:
            only = next(iter(catalog.types))
            reader.warn("MISSING_VEHICLE_TYPE_ID", "no vehicle_type_id: the only type used", rid)
            return only
        raise RecordSkipped("MISSING_VEHICLE_TYPE_ID", "no vehicle_type_id")
    if type_id not in catalog.types:
        raise RecordSkipped("UNKNOWN_VEHICLE_TYPE", f"vehicle_type_id {type_id!r} not in types")
    return type_id


def _fuel_percent(raw: object, reader: Reader, rid: str) -> float | None:
    value = reader.optional(reader.non_negative, raw, "current_fuel_percent", rid)
    if value is None or value <= 1:
        return value
    if value <= 100:
        # The schema says 0..1; some operators publish 0..100.
        reader.warn("FUEL_PERCENT_SCALED", "current_fuel_percent above 1 read as percent", rid)
        return value / 100
    reader.warn("INVALID_OPTIONAL_FIELD", "current_fuel_percent: above 100, dropped", rid)
    return None


def _vehicle(
    vehicle_id: str,
    raw: Mapping[str, Any],
    reader: Reader,
    catalog: TypeCatalog,
    stations: Mapping[str, Station],
) -> Vehicle:
    rid = vehicle_id
    type_id = _vehicle_type(raw, reader, catalog, rid)
    vehicle_type = catalog.types[type_id]

    station_id = reader.optional(reader.ident, raw.get("station_id"), "station_id", rid)
    station = stations.get(station_id) if station_id is not None else None
    if station_id is not None and station is None:
        reader.warn("UNKNOWN_STATION", "station_id not in station_information, dropped", rid)
        station_id = None
    position = coordinates(reader, raw.get("lat"), raw.get("lon"), rid)
    if position is None:
        if station is None:
            raise RecordSkipped("COORDINATES_MISSING", "no lat/lon and no known station_id")
        position = (station.lat, station.lon)

    current_range = reader.optional(
        reader.non_negative, raw.get("current_range_meters"), "current_range_meters", rid
    )
    motorised = vehicle_type.propulsion_type is not PropulsionType.HUMAN
    if current_range is None and motorised:
        reader.warn("MISSING_CURRENT_RANGE", "motorised vehicle without current_range_meters", rid)
    max_range = vehicle_type.max_range_meters
    if current_range is not None and max_range is not None and current_range > max_range:
        reader.warn("RANGE_ABOVE_MAX", "current_range_meters above the type's max, kept", rid)

    plan_id = reader.optional(reader.ident, raw.get("pricing_plan_id"), "pricing_plan_id", rid)
    if plan_id is not None and plan_id not in catalog.plan_ids:
        reader.warn("UNKNOWN_PRICING_PLAN", "pricing_plan_id not in plans, dropped", rid)
        plan_id = None

    return Vehicle(
        external_id=vehicle_id,
        lat=position[0],
        lon=position[1],
        is_reserved=reader.defaulted(
            reader.boolean(raw.get("is_reserved"), "is_reserved", rid), False, "is_reserved", rid
        ),
        is_disabled=reader.defaulted(
            reader.boolean(raw.get("is_disabled"), "is_disabled", rid), False, "is_disabled", rid
        ),
        vehicle_type_id=type_id,
        pricing_plan_id=plan_id,
        station_id=station_id,
        current_range_meters=current_range,
        current_fuel_percent=_fuel_percent(raw.get("current_fuel_percent"), reader, rid),
        rental_uris=reader.optional(reader.rental_uris, raw.get("rental_uris"), "rental_uris", rid),
        last_reported=reader.optional(
            reader.timestamp, raw.get("last_reported"), "last_reported", rid
        ),
    )
