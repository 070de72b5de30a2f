"""Live data: stations (``station_information`` + ``station_status``) and vehicles.

References resolve leniently, so a quirky feed never loses a fleet and the sync never stores a
dangling id (the rules live in :class:`TypeCatalog`): a vehicle or station count naming a type
the feed does not describe keeps its record under a placeholder type; an unknown ``region_id``
is kept under a placeholder region named by its id; an unknown ``pricing_plan_id`` is dropped
(a price cannot be defaulted, so the type's default plan applies) and an unknown
``station_id`` too (the vehicle keeps its own position). Each unknown id is reported once, with
the number of records that named it. Docked vehicles without coordinates take their station's.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import replace
from typing import Any

from adapters.dto import (
    UNSPECIFIED_VEHICLE_TYPE_ID,
    PropulsionType,
    Region,
    Station,
    Vehicle,
    VehicleEquipment,
    VehicleType,
    VehicleTypeCount,
    placeholder_vehicle_type,
)
from adapters.gbfs.findings import FindingCollector
from adapters.gbfs.values import Reader, RecordSkipped, coordinates, records


def _by_version(v3_name: str, v2_name: str, major: int) -> tuple[str, str]:
    """Both spellings of a renamed field, the one of the feed's version first."""
    return (v3_name, v2_name) if major >= 3 else (v2_name, v3_name)


class TypeCatalog:
    """What vehicles and stations may reference, and what they named that the feed lacks.

    ``types`` are the described types (the feed's, then those the provider's overrides supply);
    placeholders join them as records name unknown ids. ``type_map`` / ``plan_map`` (overrides)
    redirect an operator's ids before they are looked up. ``default_type_id`` is set when the
    feed has no ``vehicle_types``: every vehicle that names no type is of that type.
    """

    def __init__(
        self,
        types: Mapping[str, VehicleType],
        plan_ids: Set[str],
        regions: Mapping[str, Region],
        *,
        feed_has_types: bool,
        default_type_id: str | None = None,
        type_map: Mapping[str, str] | None = None,
        plan_map: Mapping[str, str] | None = None,
    ) -> None:
        self.types: dict[str, VehicleType] = dict(types)
        self.described = frozenset(types)
        self.plan_ids = plan_ids
        self.regions: dict[str, Region] = dict(regions)
        self.feed_has_types = feed_has_types
        self.default_type_id = default_type_id
        self.type_map = dict(type_map or {})
        self.plan_map = dict(plan_map or {})
        self.placeholder_types: dict[str, VehicleType] = {}
        self.placeholder_regions: dict[str, Region] = {}
        # What records used: which supplied types and plans earned their place, and which
        # override map entries ever applied.
        self.used_type_ids: set[str] = set()
        self.used_plan_ids: set[str] = set()
        self.mapped_type_ids: set[str] = set()
        self.mapped_plan_ids: set[str] = set()
        # (code, feed, unknown id) -> how many records named it, in first-seen order.
        self._unknown: dict[tuple[str, str, str], int] = {}

    # --- resolving -------------------------------------------------------------------------

    def map_type_id(self, type_id: str) -> str:
        target = self.type_map.get(type_id)
        if target is None:
            return type_id
        self.mapped_type_ids.add(type_id)
        return target

    def vehicle_type(self, type_id: str | None, reader: Reader, rid: str) -> str:
        """The type of a vehicle that names ``type_id`` (None: it names none)."""
        if type_id is None:
            if self.default_type_id is not None:
                return self.use(self.default_type_id)
            if len(self.described) == 1:
                (only,) = self.described
                reader.warn(
                    "MISSING_VEHICLE_TYPE_ID", "no vehicle_type_id: the only type used", rid
                )
                return self.use(only)
            return self._placeholder(UNSPECIFIED_VEHICLE_TYPE_ID, "MISSING_VEHICLE_TYPE_ID", reader)
        type_id = self.map_type_id(type_id)
        if type_id in self.described:
            return self.use(type_id)
        return self._placeholder(type_id, "UNKNOWN_VEHICLE_TYPE", reader)

    def counted_type(self, type_id: str, reader: Reader) -> str:
        """The type a station's ``vehicle_types_available`` entry counts."""
        type_id = self.map_type_id(type_id)
        if type_id in self.described:
            return self.use(type_id)
        return self._placeholder(type_id, "UNKNOWN_VEHICLE_TYPE", reader)

    def region(self, region_id: str, reader: Reader) -> str:
        if region_id in self.regions and region_id not in self.placeholder_regions:
            return region_id
        # A region is only a name; its id still groups the stations, so it is kept.
        if region_id not in self.regions:
            self.regions[region_id] = self.placeholder_regions[region_id] = Region(
                region_id, region_id
            )
        self._count("UNKNOWN_REGION", reader.feed, region_id)
        return region_id

    def pricing_plan(self, plan_id: str, reader: Reader) -> str | None:
        mapped = self.plan_map.get(plan_id)
        if mapped is not None:
            self.mapped_plan_ids.add(plan_id)
            plan_id = mapped
        if plan_id in self.plan_ids:
            self.used_plan_ids.add(plan_id)
            return plan_id
        self._count("UNKNOWN_PRICING_PLAN", reader.feed, plan_id)
        return None

    def use(self, type_id: str) -> str:
        self.used_type_ids.add(type_id)
        return type_id

    def _placeholder(self, type_id: str, code: str, reader: Reader) -> str:
        if type_id not in self.types:
            placeholder = placeholder_vehicle_type(type_id, types_described=self.feed_has_types)
            self.types[type_id] = self.placeholder_types[type_id] = placeholder
        self._count(code, reader.feed, type_id)
        return self.use(type_id)

    def _count(self, code: str, feed: str, ref_id: str) -> None:
        key = (code, feed, ref_id)
        self._unknown[key] = self._unknown.get(key, 0) + 1

    # --- reporting -------------------------------------------------------------------------

    def report(self, findings: FindingCollector) -> None:
        """One warning per unknown id and feed, naming the id and how many records kept it."""
        for (code, feed, ref_id), count in self._unknown.items():
            findings.summary(code, feed, self._message(code, feed, ref_id, count), ref_id)

    def _message(self, code: str, feed: str, ref_id: str, count: int) -> str:
        if code == "UNKNOWN_REGION":
            return (
                f"region_id {ref_id!r} is not in system_regions: kept by {count} station(s), "
                "under a region named by its id"
            )
        if code == "UNKNOWN_PRICING_PLAN":
            return (
                f"pricing_plan_id {ref_id!r} is not in system_pricing_plans: dropped from "
                f"{count} vehicle(s), which keep their type's default plan"
            )
        kind = self.types[ref_id]
        shape = f"{kind.form_factor.value}, {kind.propulsion_type.value}, range unknown"
        if code == "MISSING_VEHICLE_TYPE_ID":
            return (
                f"{count} vehicle(s) name no vehicle_type_id although vehicle_types lists "
                f"several: kept as placeholder type {ref_id!r} ({shape})"
            )
        if feed == "station_status":
            return (
                f"vehicle_types_available names {ref_id!r}, which vehicle_types does not "
                f"describe: counted at {count} station(s) under a placeholder type ({shape})"
            )
        if not self.feed_has_types:
            return (
                f"vehicle_type_id {ref_id!r} but the feed publishes no vehicle_types: {count} "
                f"vehicle(s) kept as the spec's default, a non-motorised bicycle"
            )
        return (
            f"vehicle_type_id {ref_id!r} is not in vehicle_types: {count} vehicle(s) kept as a "
            f"placeholder type ({shape})"
        )


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
    short_name = reader.optional_field(reader.localized, raw, "short_name", station_id)
    name = reader.localized(raw.get("name"), "name", station_id)
    region_id = reader.optional_field(reader.ident, raw, "region_id", station_id)
    if region_id is not None:
        region_id = catalog.region(region_id, reader)
    return Station(
        external_id=station_id,
        name=reader.defaulted(name, short_name or station_id, "name", station_id),
        lat=position[0],
        lon=position[1],
        short_name=short_name,
        capacity=reader.optional_field(reader.count, raw, "capacity", station_id),
        region_id=region_id,
        is_virtual=bool(
            reader.optional_field(reader.boolean, raw, "is_virtual_station", station_id)
        ),
        rental_uris=reader.optional_field(reader.rental_uris, raw, "rental_uris", station_id),
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
        num_docks_available=reader.optional_field(reader.count, raw, "num_docks_available", rid),
        is_installed=reader.optional_field(reader.boolean, raw, "is_installed", rid),
        is_renting=reader.optional_field(reader.boolean, raw, "is_renting", rid),
        is_returning=reader.optional_field(reader.boolean, raw, "is_returning", rid),
        vehicle_types_available=_type_counts(raw, available, reader, catalog, rid),
        last_reported=reader.optional_field(reader.timestamp, raw, "last_reported", rid),
    )


def _type_counts(
    raw: Mapping[str, Any], available: int, reader: Reader, catalog: TypeCatalog, rid: str
) -> tuple[VehicleTypeCount, ...]:
    entries = raw.get("vehicle_types_available")
    if entries is None:
        if catalog.default_type_id is not None:
            # No vehicle_types feed: every vehicle is the default bicycle, so the split is known.
            return (VehicleTypeCount(catalog.use(catalog.default_type_id), available),)
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
        type_id = reader.optional_field(reader.ident, entry, "vehicle_type_id", rid)
        count = reader.optional_field(reader.count, entry, "count", rid)
        if type_id is None or count is None:
            reader.warn("INVALID_OPTIONAL_FIELD", "vehicle_types_available: bad entry", rid)
        else:
            counts.append(VehicleTypeCount(catalog.counted_type(type_id, reader), count))
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


_EQUIPMENT = {e.value: e for e in VehicleEquipment}


def _equipment(raw: object, reader: Reader, rid: str) -> tuple[VehicleEquipment, ...] | None:
    """Known values, each once, in the spec's order; unknown ones are dropped and reported."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        reader.warn("INVALID_OPTIONAL_FIELD", "vehicle_equipment: not an array, dropped", rid)
        return None
    found = set()
    for item in raw:
        equipment = _EQUIPMENT.get(item) if isinstance(item, str) else None
        if equipment is None:
            reader.warn(
                "UNKNOWN_VEHICLE_EQUIPMENT", "vehicle_equipment: unknown value dropped", rid
            )
        else:
            found.add(equipment)
    return tuple(e for e in VehicleEquipment if e in found)


def _vehicle(
    vehicle_id: str,
    raw: Mapping[str, Any],
    reader: Reader,
    catalog: TypeCatalog,
    stations: Mapping[str, Station],
) -> Vehicle:
    rid = vehicle_id
    type_id = catalog.vehicle_type(
        reader.optional_field(reader.ident, raw, "vehicle_type_id", rid),
        reader,
        rid,
    )
    vehicle_type = catalog.types[type_id]

    station_id = reader.optional_field(reader.ident, raw, "station_id", rid)
    station = stations.get(station_id) if station_id is not None else None
    if station_id is not None and station is None:
        reader.warn("UNKNOWN_STATION", "station_id not in station_information, dropped", rid)
        station_id = None
    position = coordinates(reader, raw.get("lat"), raw.get("lon"), rid)
    if position is None:
        if station is None:
            raise RecordSkipped("COORDINATES_MISSING", "no lat/lon and no known station_id")
        position = (station.lat, station.lon)

    current_range = reader.optional_field(reader.non_negative, raw, "current_range_meters", rid)
    motorised = vehicle_type.propulsion_type is not PropulsionType.HUMAN
    if current_range is None and motorised:
        reader.warn("MISSING_CURRENT_RANGE", "motorised vehicle without current_range_meters", rid)
    max_range = vehicle_type.max_range_meters
    if current_range is not None and max_range is not None and current_range > max_range:
        reader.warn("RANGE_ABOVE_MAX", "current_range_meters above the type's max, kept", rid)

    plan_id = reader.optional_field(reader.ident, raw, "pricing_plan_id", rid)
    if plan_id is not None:
        plan_id = catalog.pricing_plan(plan_id, reader)

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
        rental_uris=reader.optional_field(reader.rental_uris, raw, "rental_uris", rid),
        last_reported=reader.optional_field(reader.timestamp, raw, "last_reported", rid),
        vehicle_equipment=_equipment(raw.get("vehicle_equipment"), reader, rid),
    )
