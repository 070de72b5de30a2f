"""``geofencing_zones``: zone geometry (validated with shapely), rules and global rules.

v2 and v3 rules are normalised to :class:`ZoneRule`: v2 ``ride_allowed`` becomes both
``ride_start_allowed`` and ``ride_end_allowed``, and v2 ``vehicle_type_id`` (an array despite its
name) becomes ``vehicle_type_ids``. A v2 feed gets the unrestricted global rule that keeps the v2
meaning ("no restriction outside zones"). ``ordinal`` is the feature's index in the feed, so
precedence ("the earlier polygon wins") survives skipped zones.

Geometry comes out as a closed, valid GeoJSON MultiPolygon in RFC 7946 orientation
(counter-clockwise exterior rings): a Polygon is wrapped, an invalid one is repaired with
``make_valid`` when a polygonal result remains, anything else skips the zone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient
from shapely.validation import explain_validity

from adapters.base import AdapterError
from adapters.dto import GeofencingZone, ZoneRule
from adapters.gbfs.values import Reader, RecordSkipped

FEED = "geofencing_zones"
UNRESTRICTED = ZoneRule(
    vehicle_type_ids=None,
    ride_start_allowed=True,
    ride_end_allowed=True,
    ride_through_allowed=True,
)


TypeIdMap = Callable[[str], str]


def _same(type_id: str) -> str:
    return type_id


def parse_geofencing(
    data: Mapping[str, Any], reader: Reader, map_type_id: TypeIdMap = _same
) -> tuple[list[GeofencingZone], list[ZoneRule]]:
    """Zones in feed order, and the global rules (parsed for v3, synthesized for v1/v2).

    ``map_type_id`` redirects the operator's type ids in rules (the provider's overrides), so a
    rule keeps applying to the vehicles whose type was redirected.
    """
    zones: list[GeofencingZone] = []
    for index, feature in enumerate(_features(data, reader)):
        zone = _zone(index, feature, reader, map_type_id)
        if zone is not None:
            zones.append(zone)
    return zones, _global_rules(data, reader, map_type_id)


def _features(data: Mapping[str, Any], reader: Reader) -> list[object]:
    collection = data.get("geofencing_zones")
    if isinstance(collection, Mapping) and isinstance(collection.get("features"), list):
        return list(collection["features"])
    if isinstance(collection, list):
        reader.warn("FIELD_SHAPE", "geofencing_zones: bare feature array", None)
        return collection
    # Reading this as "no zones" would lift every restriction: fail the document instead.
    raise AdapterError("geofencing_zones: `geofencing_zones` is not a FeatureCollection", feed=FEED)


def _zone(
    index: int, feature: object, reader: Reader, map_type_id: TypeIdMap
) -> GeofencingZone | None:
    record_id = f"feature[{index}]"
    if not isinstance(feature, Mapping):
        reader.error("INVALID_RECORD", "feature is not an object", record_id)
        return None
    properties = feature.get("properties")
    if not isinstance(properties, Mapping):
        properties = {}
    name = reader.optional_field(reader.localized, properties, "name", record_id)
    label = f"zone {record_id}" + (f" ({name!r})" if name else "")
    try:
        geometry = _geometry(feature.get("geometry"), reader, record_id)
    except RecordSkipped as skipped:
        reader.error(skipped.code, f"{label} skipped: {skipped.message}", record_id)
        return None
    rules: list[ZoneRule] = []
    raw_rules = properties.get("rules")
    if raw_rules is not None and not isinstance(raw_rules, list):
        reader.error("INVALID_FIELD", f"{label}: `rules` is not an array, ignored", record_id)
        raw_rules = None
    for position, raw_rule in enumerate(raw_rules or []):
        try:
            rules.append(_rule(raw_rule, reader, record_id, map_type_id))
        except RecordSkipped as skipped:
            reader.error(
                skipped.code, f"{label}: rules[{position}] dropped: {skipped.message}", record_id
            )
    return GeofencingZone(
        ordinal=index,
        geometry=geometry,
        rules=tuple(rules),
        name=name,
        start=reader.optional_field(reader.timestamp, properties, "start", record_id),
        end=reader.optional_field(reader.timestamp, properties, "end", record_id),
    )


def _rule(raw: object, reader: Reader, record_id: str, map_type_id: TypeIdMap) -> ZoneRule:
    if not isinstance(raw, Mapping):
        raise RecordSkipped("INVALID_FIELD", "rule is not an object")
    if "vehicle_type_ids" in raw:
        type_ids = reader.id_list(raw["vehicle_type_ids"], "vehicle_type_ids", record_id)
        if reader.major < 3:
            reader.warn("FIELD_VERSION_MISMATCH", "rule uses v3 `vehicle_type_ids`", record_id)
    else:
        type_ids = reader.id_list(raw.get("vehicle_type_id"), "vehicle_type_id", record_id)
        if type_ids is not None and reader.major >= 3:
            reader.warn("FIELD_VERSION_MISMATCH", "rule uses v2 `vehicle_type_id`", record_id)
    if type_ids == ():
        # An empty list restricting nothing is meaningless; "all types" is the spec's reading
        # of an absent list and the one that keeps the rule's restriction in force.
        reader.warn("EMPTY_VEHICLE_TYPE_IDS", "rule with empty type list applies to all", record_id)
        type_ids = None
    if type_ids is not None:
        type_ids = tuple(dict.fromkeys(map_type_id(type_id) for type_id in type_ids))

    if "ride_start_allowed" in raw or "ride_end_allowed" in raw:
        start = reader.require(
            reader.boolean(raw.get("ride_start_allowed"), "ride_start_allowed", record_id),
            "ride_start_allowed",
        )
        end = reader.require(
            reader.boolean(raw.get("ride_end_allowed"), "ride_end_allowed", record_id),
            "ride_end_allowed",
        )
        if reader.major < 3:
            reader.warn("FIELD_VERSION_MISMATCH", "rule uses v3 ride_start/end_allowed", record_id)
        elif "ride_allowed" in raw:
            # Cooltra sends both spellings; the v3 fields are the ones this version defines.
            reader.warn(
                "FIELD_VERSION_MISMATCH", "rule also has v2 `ride_allowed`: ignored", record_id
            )
    else:
        allowed = reader.require(
            reader.boolean(raw.get("ride_allowed"), "ride_allowed", record_id), "ride_allowed"
        )
        if reader.major >= 3:
            reader.warn("FIELD_VERSION_MISMATCH", "rule uses v2 `ride_allowed`", record_id)
        start = end = allowed
    through = reader.require(
        reader.boolean(raw.get("ride_through_allowed"), "ride_through_allowed", record_id),
        "ride_through_allowed",
    )
    return ZoneRule(
        vehicle_type_ids=type_ids,
        ride_start_allowed=start,
        ride_end_allowed=end,
        ride_through_allowed=through,
        maximum_speed_kph=reader.optional_field(reader.count, raw, "maximum_speed_kph", record_id),
        station_parking=reader.optional_field(reader.boolean, raw, "station_parking", record_id),
    )


def _global_rules(
    data: Mapping[str, Any], reader: Reader, map_type_id: TypeIdMap
) -> list[ZoneRule]:
    raw = data.get("global_rules")
    if raw is None:
        if reader.major >= 3:
            reader.warn(
                "GLOBAL_RULES_MISSING", "v3 feed without global_rules: unrestricted assumed", None
            )
        return [UNRESTRICTED]
    if not isinstance(raw, list):
        reader.error("INVALID_FIELD", "`global_rules` is not an array: unrestricted used", None)
        return [UNRESTRICTED]
    rules: list[ZoneRule] = []
    for position, raw_rule in enumerate(raw):
        record_id = f"global_rules[{position}]"
        try:
            rules.append(_rule(raw_rule, reader, record_id, map_type_id))
        except RecordSkipped as skipped:
            reader.error(skipped.code, f"global rule dropped: {skipped.message}", record_id)
    return rules


# --- geometry --------------------------------------------------------------------------------

_SHAPE_ERRORS = (
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    shapely.errors.GEOSException,
)


def _geometry(raw: object, reader: Reader, record_id: str) -> dict[str, Any]:
    if raw is None:
        raise RecordSkipped("GEOMETRY_MISSING", "geometry is null")
    if not isinstance(raw, Mapping):
        raise RecordSkipped("GEOMETRY_INVALID", "geometry is not a GeoJSON object")
    try:
        geom: BaseGeometry = shapely.force_2d(shape(raw))
    except _SHAPE_ERRORS as exc:
        raise RecordSkipped("GEOMETRY_INVALID", f"unreadable GeoJSON: {exc}") from None
    if geom.geom_type == "Polygon":
        reader.warn("POLYGON_WRAPPED", "Polygon geometry wrapped as MultiPolygon", record_id)
        geom = MultiPolygon([geom])
    elif geom.geom_type != "MultiPolygon":
        raise RecordSkipped("GEOMETRY_INVALID", f"{geom.geom_type}, not a MultiPolygon")
    if geom.is_empty:
        raise RecordSkipped("GEOMETRY_INVALID", "empty geometry")
    min_x, min_y, max_x, max_y = (float(v) for v in geom.bounds)
    if not (-180 <= min_x <= max_x <= 180 and -90 <= min_y <= max_y <= 90):
        raise RecordSkipped("GEOMETRY_INVALID", "coordinates outside lon/lat range")
    if not geom.is_valid:
        reason = str(explain_validity(geom))
        polygons = _polygons(shapely.make_valid(geom))
        if not polygons:
            raise RecordSkipped("GEOMETRY_INVALID", f"invalid and not repairable: {reason}")
        reader.warn("GEOMETRY_REPAIRED", "invalid polygon repaired with make_valid", record_id)
        geom = MultiPolygon(polygons)
    oriented = MultiPolygon([orient(polygon, sign=1.0) for polygon in _polygons(geom)])
    return cast(dict[str, Any], _lists(mapping(oriented)))


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    """The non-empty polygonal parts; make_valid may also return collapsed lines or points."""
    if geom.geom_type == "Polygon":
        return [cast(Polygon, geom)] if not geom.is_empty else []
    if geom.geom_type in ("MultiPolygon", "GeometryCollection"):
        return [part for sub in getattr(geom, "geoms", ()) for part in _polygons(sub)]
    return []


def _lists(value: object) -> object:
    """shapely's mapping() uses tuples; JSON consumers (and equality with feeds) want lists."""
    if isinstance(value, tuple | list):
        return [_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    return value
