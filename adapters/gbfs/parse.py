"""GBFS documents → canonical :class:`~adapters.dto.Snapshot`: the pure entry point.

:func:`parse_snapshot` owns the order of work (system → plans → types → regions → stations →
vehicles → zones), version detection, per-file metadata and the cross-file checks of
ADAPTER-NOTES §10. The per-file readers live next to it: ``catalog`` (plans, types, regions),
``fleet`` (stations, vehicles), ``zones`` (geofencing), ``values`` (lenient scalars).

Leniency contract: a deviation that still carries meaning is accepted and reported as a
``warning`` finding (tallied, one per kind); a record that cannot be understood is skipped with
an ``error`` finding; a missing ``system_information`` is an ``error`` finding; a document that
cannot be read at all (not an object, no ``data``, no main array) raises
:class:`~adapters.base.AdapterError`, because reading it as empty would delete the provider's
data instead of keeping the last good copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import AdapterError
from adapters.dto import FeedMeta, GeofencingZone, Snapshot, Station, SystemInfo, Vehicle, ZoneRule
from adapters.gbfs.catalog import (
    default_type,
    parse_pricing_plans,
    parse_regions,
    parse_vehicle_types,
)
from adapters.gbfs.documents import (
    DISCOVERY_FEEDS,
    SUPPORTED_MAJORS,
    USED_FEEDS,
    document_data,
    normalize_version,
    version_tuple,
)
from adapters.gbfs.findings import FindingCollector
from adapters.gbfs.fleet import TypeCatalog, parse_stations, parse_vehicles
from adapters.gbfs.values import LanguagePicker, Reader, RecordSkipped
from adapters.gbfs.zones import parse_geofencing

__all__ = ["parse_snapshot"]

_READ_FEEDS = (*DISCOVERY_FEEDS, *USED_FEEDS)
# Where the snapshot's version is looked for, in order, when no hint is given.
_VERSION_SOURCES = ("gbfs", "system_information", *USED_FEEDS)


def parse_snapshot(
    documents: Mapping[str, Any],
    *,
    feed_urls: Mapping[str, str] | None = None,
    preferred_language: str = "en",
    version_hint: str | None = None,
) -> Snapshot:
    """Parse one provider's GBFS documents (file name → parsed JSON) into a Snapshot.

    ``documents`` may hold any of ``gbfs``, ``manifest``, ``system_information`` (its absence
    is reported), ``vehicle_types``, ``system_pricing_plans``, ``system_regions``,
    ``station_information``, ``station_status``, ``vehicle_status`` / ``free_bike_status``
    and ``geofencing_zones``; other names are ignored. ``feed_urls`` only fills
    :attr:`FeedMeta.url`. ``version_hint`` (e.g. the version a manifest announced) overrides the
    ``version`` headers.
    """
    findings = FindingCollector()
    urls = feed_urls or {}
    data = {
        name: document_data(name, documents[name], urls.get(name))
        for name in _READ_FEEDS
        if name in documents
    }
    system_data = data.get("system_information")
    system_missing = system_data is None
    if system_data is None:
        # A partial feed set (e.g. only station_status, as some operators publish) is still
        # worth ingesting; the provider's registered name stands in for the system's.
        findings.error(
            "MISSING_FEED",
            "system_information",
            "no system_information document: system name, time zone and languages are unknown",
        )
        system_data = {}

    version, major = _snapshot_version(documents, version_hint, system_data, findings)
    picker = _language_picker(system_data, preferred_language)
    readers = {
        name: Reader(
            findings,
            name,
            major=_document_major(name, documents[name], version, major, findings)
            if name in data
            else major,
            languages=picker,
        )
        for name in _READ_FEEDS
    }
    feeds = [_feed_meta(name, documents[name], readers[name], urls) for name in data]
    system = (
        SystemInfo(system_id="", name="")
        if system_missing
        else _system(system_data, readers["system_information"], picker)
    )

    plans = (
        parse_pricing_plans(data["system_pricing_plans"], readers["system_pricing_plans"])
        if "system_pricing_plans" in data
        else []
    )
    plan_ids = {plan.external_id for plan in plans}
    types = (
        parse_vehicle_types(data["vehicle_types"], readers["vehicle_types"], plan_ids)
        if "vehicle_types" in data
        else []
    )
    default_type_id = None
    vehicle_feed = _vehicle_feed(data, major)
    if "vehicle_types" not in data and (vehicle_feed or "station_status" in data):
        # Spec: without vehicle_types, every vehicle is a non-motorised bicycle. Its id is
        # DEFAULT_VEHICLE_TYPE_ID ("default-bicycle"); it is only kept if something uses it.
        types = [default_type()]
        default_type_id = types[0].external_id
    regions = (
        parse_regions(data["system_regions"], readers["system_regions"])
        if "system_regions" in data
        else []
    )
    catalog = TypeCatalog(
        types={t.external_id: t for t in types},
        plan_ids=plan_ids,
        region_ids={region.external_id for region in regions},
        default_type_id=default_type_id,
    )

    stations = parse_stations(
        data.get("station_information"),
        data.get("station_status"),
        readers["station_information"],
        readers["station_status"],
        catalog,
    )
    vehicles = (
        parse_vehicles(
            data[vehicle_feed],
            readers[vehicle_feed],
            catalog,
            {station.external_id: station for station in stations},
        )
        if vehicle_feed
        else []
    )
    if default_type_id is not None and not vehicles and not stations:
        types = []  # nothing uses the synthesized type: do not publish a type nobody has
    zones: list[GeofencingZone] = []
    global_rules: list[ZoneRule] = []
    if "geofencing_zones" in data:
        zones, global_rules = parse_geofencing(
            data["geofencing_zones"], readers["geofencing_zones"]
        )
        _check_zone_types(zones, global_rules, set(catalog.types), readers["geofencing_zones"])
    _check_store_uris(system, vehicles, stations, readers["system_information"])

    return Snapshot(
        version=version,
        system=system,
        vehicle_types=types,
        pricing_plans=plans,
        vehicles=vehicles,
        stations=stations,
        zones=zones,
        global_rules=global_rules,
        regions=regions,
        feeds=feeds,
        findings=findings.findings(),
    )


def _vehicle_feed(data: Mapping[str, Any], major: int) -> str | None:
    """``vehicle_status`` (v3) or ``free_bike_status`` (v1/v2); the version's own name first."""
    order = ("vehicle_status", "free_bike_status")
    for name in order if major >= 3 else reversed(order):
        if name in data:
            return name
    return None


# --- version ---------------------------------------------------------------------------------


def _snapshot_version(
    documents: Mapping[str, Any],
    version_hint: str | None,
    system_data: Mapping[str, Any],
    findings: FindingCollector,
) -> tuple[str, int]:
    raw: object = version_hint
    source = "gbfs"
    if raw is None:
        for name in _VERSION_SOURCES:
            document = documents.get(name)
            if isinstance(document, Mapping) and document.get("version") is not None:
                raw, source = document["version"], name
                break
    version, prefixed = normalize_version(raw)
    if prefixed:
        findings.warn("VERSION_PREFIX", source, f"version {raw!r}: leading 'v' stripped")
    parsed = version_tuple(version)
    if parsed is None:
        # Guess by shape: only v3 system_information has a `languages` list.
        major = 3 if isinstance(system_data.get("languages"), list) else 2
        findings.warn(
            "VERSION_UNSUPPORTED", source, f"unreadable version {version!r}: read as v{major}"
        )
        return version, major
    if parsed[0] not in SUPPORTED_MAJORS:
        findings.warn("VERSION_UNSUPPORTED", source, f"version {version!r}: read leniently")
    return version, parsed[0]


def _document_major(
    name: str, document: Mapping[str, Any], version: str, major: int, findings: FindingCollector
) -> int:
    """The major version to read ``document`` with: its own header if readable, else the feed's."""
    if document.get("version") is None:
        return major
    own, _ = normalize_version(document["version"])
    if own != version:
        findings.warn("VERSION_MISMATCH", name, f"file says version {own!r}, feed {version!r}")
    parsed = version_tuple(own)
    return parsed[0] if parsed is not None else major


def _feed_meta(
    name: str, document: Mapping[str, Any], reader: Reader, urls: Mapping[str, str]
) -> FeedMeta:
    last_updated = reader.optional(
        reader.timestamp, document.get("last_updated"), "last_updated", None
    )
    ttl = reader.optional(reader.count, document.get("ttl"), "ttl", None)
    for field in ("last_updated", "ttl"):
        if document.get(field) is None:
            reader.warn("MISSING_HEADER", f"header `{field}` missing", None)
    return FeedMeta(name=name, url=urls.get(name, ""), last_updated=last_updated, ttl=ttl)


# --- system information ----------------------------------------------------------------------


def _language_picker(system_data: Mapping[str, Any], preferred: str) -> LanguagePicker:
    languages = system_data.get("languages")
    if isinstance(languages, list):
        return LanguagePicker(preferred, [tag for tag in languages if isinstance(tag, str)])
    language = system_data.get("language")
    return LanguagePicker(preferred, [language] if isinstance(language, str) else [])


def _system(data: Mapping[str, Any], reader: Reader, picker: LanguagePicker) -> SystemInfo:
    try:
        system_id = reader.ident(data.get("system_id"), "system_id", None)
        name = reader.localized(data.get("name"), "name", system_id)
    except RecordSkipped as skipped:
        raise AdapterError(
            f"system_information: {skipped.message}", feed="system_information"
        ) from None
    if system_id is None:
        raise AdapterError("system_information: no `system_id`", feed="system_information")
    apps = data.get("rental_apps")
    apps = apps if isinstance(apps, Mapping) else {}

    def store_uri(platform: str) -> str | None:
        app = apps.get(platform)
        if not isinstance(app, Mapping):
            return None
        return reader.optional(
            reader.text, app.get("store_uri"), f"rental_apps.{platform}.store_uri", system_id
        )

    return SystemInfo(
        system_id=system_id,
        name=reader.defaulted(name, system_id, "name", system_id),
        operator=reader.optional(reader.localized, data.get("operator"), "operator", system_id),
        timezone=reader.optional(reader.text, data.get("timezone"), "timezone", system_id),
        language=picker.chosen if picker.system_languages else None,
        url=reader.optional(reader.text, data.get("url"), "url", system_id),
        android_store_uri=store_uri("android"),
        ios_store_uri=store_uri("ios"),
    )


# --- cross-file checks -----------------------------------------------------------------------


def _check_zone_types(
    zones: list[GeofencingZone], global_rules: list[ZoneRule], type_ids: set[str], reader: Reader
) -> None:
    """Zone rules naming unknown types are *kept*: dropping ids could widen a rule to all types."""
    rules = [(f"feature[{zone.ordinal}]", rule) for zone in zones for rule in zone.rules]
    rules += [(f"global_rules[{i}]", rule) for i, rule in enumerate(global_rules)]
    for record_id, rule in rules:
        if any(type_id not in type_ids for type_id in rule.vehicle_type_ids or ()):
            reader.warn(
                "UNKNOWN_VEHICLE_TYPE", "rule names a type not in vehicle_types, kept", record_id
            )


def _check_store_uris(
    system: SystemInfo, vehicles: list[Vehicle], stations: list[Station], reader: Reader
) -> None:
    """Validator rule: a platform's deep links need that platform's ``rental_apps.store_uri``."""
    uris = [v.rental_uris for v in vehicles if v.rental_uris is not None]
    uris += [s.rental_uris for s in stations if s.rental_uris is not None]
    if not system.android_store_uri and any(u.android for u in uris):
        reader.warn("MISSING_STORE_URI", "android rental_uris without rental_apps.android", None)
    if not system.ios_store_uri and any(u.ios for u in uris):
        reader.warn("MISSING_STORE_URI", "ios rental_uris without rental_apps.ios", None)
