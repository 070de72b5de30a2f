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

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar
from zoneinfo import available_timezones

from adapters.base import AdapterError
from adapters.dto import (
    FeedMeta,
    GeofencingZone,
    PricingPlan,
    Snapshot,
    Station,
    SystemInfo,
    Vehicle,
    VehicleType,
    ZoneRule,
)
from adapters.gbfs.catalog import (
    DEFAULT_VEHICLE_TYPE_ID,
    default_type,
    parse_pricing_plans,
    parse_regions,
    parse_vehicle_types,
)
from adapters.gbfs.documents import (
    ALL_GBFS_FEEDS,
    DISCOVERY_FEEDS,
    SUPPORTED_MAJORS,
    USED_FEEDS,
    discovery_feeds,
    document_data,
    normalize_version,
    version_tuple,
)
from adapters.gbfs.findings import FindingCollector
from adapters.gbfs.fleet import TypeCatalog, parse_stations, parse_vehicles
from adapters.gbfs.overrides import OVERRIDES_FEED, FeedOverrides
from adapters.gbfs.values import LanguagePicker, Reader, RecordSkipped
from adapters.gbfs.zones import parse_geofencing

Described = TypeVar("Described", VehicleType, PricingPlan)

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
    overrides: FeedOverrides | None = None,
    duplicate_keys: Mapping[str, Sequence[str]] | None = None,
) -> Snapshot:
    """Parse one provider's GBFS documents (file name → parsed JSON) into a Snapshot.

    ``documents`` may hold any of ``gbfs``, ``manifest``, ``system_information`` (its absence
    is reported), ``vehicle_types``, ``system_pricing_plans``, ``system_regions``,
    ``station_information``, ``station_status``, ``vehicle_status`` / ``free_bike_status``
    and ``geofencing_zones``; other names are ignored. ``feed_urls`` only fills
    :attr:`FeedMeta.url`. ``version_hint`` (e.g. the version a manifest announced) overrides the
    ``version`` headers. ``overrides`` are the provider's (:mod:`adapters.gbfs.overrides`);
    ``duplicate_keys`` lists, per document, the JSON paths of keys an object repeated (the
    parsed documents can no longer tell).
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

    supplied = overrides or FeedOverrides()
    plans = (
        parse_pricing_plans(data["system_pricing_plans"], readers["system_pricing_plans"])
        if "system_pricing_plans" in data
        else []
    )
    plans += _not_shadowed(supplied.pricing_plans, {p.external_id for p in plans}, findings)
    plan_ids = {plan.external_id for plan in plans}
    plan_map = _usable_map(supplied.pricing_plan_map, plan_ids, "pricing_plan_map", findings)
    types = (
        parse_vehicle_types(data["vehicle_types"], readers["vehicle_types"], plan_ids, plan_map)
        if "vehicle_types" in data
        else []
    )
    types += [
        _with_known_plans(t, plan_ids, findings)
        for t in _not_shadowed(supplied.vehicle_types, {t.external_id for t in types}, findings)
    ]
    feed_has_types = "vehicle_types" in data
    default_type_id = None
    synthesized_default = False
    vehicle_feed = _vehicle_feed(data, major)
    if not feed_has_types and (vehicle_feed or "station_status" in data):
        if len(supplied.vehicle_types) == 1:
            # The deployment described the fleet the feed does not: its one type is the fleet's.
            default_type_id = supplied.vehicle_types[0].external_id
        else:
            # Spec: without vehicle_types, every vehicle is a non-motorised bicycle. Its id is
            # DEFAULT_VEHICLE_TYPE_ID ("default-bicycle"); it is only kept if something uses it.
            types.append(default_type())
            default_type_id = DEFAULT_VEHICLE_TYPE_ID
            synthesized_default = True
    regions = (
        parse_regions(data["system_regions"], readers["system_regions"])
        if "system_regions" in data
        else []
    )
    type_map = _usable_map(
        supplied.vehicle_type_map, {t.external_id for t in types}, "vehicle_type_map", findings
    )
    catalog = TypeCatalog(
        {t.external_id: t for t in types},
        plan_ids,
        {region.external_id: region for region in regions},
        feed_has_types=feed_has_types,
        default_type_id=default_type_id,
        type_map=type_map,
        plan_map=plan_map,
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
    zones: list[GeofencingZone] = []
    global_rules: list[ZoneRule] = []
    if "geofencing_zones" in data:
        zones, global_rules = parse_geofencing(
            data["geofencing_zones"], readers["geofencing_zones"], catalog.map_type_id
        )
    catalog.report(findings)
    types = [
        t
        for t in catalog.types.values()
        # Nothing uses the synthesized bicycle: do not publish a type nobody has.
        if not (synthesized_default and t.external_id == default_type_id) or vehicles or stations
    ]
    regions = list(catalog.regions.values())
    if "geofencing_zones" in data:
        _check_zone_types(
            zones, global_rules, {t.external_id for t in types}, readers["geofencing_zones"]
        )
    _check_store_uris(system, vehicles, stations, readers["system_information"])
    _check_empty_feeds(data, readers)
    _check_stale_files(feeds, readers)
    if "gbfs" in data:
        _check_discovery_names(documents["gbfs"], preferred_language, readers["gbfs"])
    for name, paths in (duplicate_keys or {}).items():
        for path in paths:
            findings.warn(
                "DUPLICATE_JSON_KEY",
                name,
                f"`{path}` appears more than once in one object: the last value is used",
            )
    if overrides:
        _report_overrides(supplied, catalog, type_map, plan_map, findings)

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
        # The deployment's own doing first: it is what staff can fix at once.
        findings=sorted(findings.findings(), key=lambda f: f.feed != OVERRIDES_FEED),
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
    last_updated = reader.optional_field(reader.timestamp, document, "last_updated", None)
    ttl = reader.optional_field(reader.count, document, "ttl", None)
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
            reader.link, app.get("store_uri"), f"rental_apps.{platform}.store_uri", system_id
        )

    return SystemInfo(
        system_id=system_id,
        name=reader.defaulted(name, system_id, "name", system_id),
        operator=reader.optional_field(reader.localized, data, "operator", system_id),
        timezone=_timezone(data.get("timezone"), reader, system_id),
        language=picker.chosen if picker.system_languages else None,
        url=reader.optional_field(reader.link, data, "url", system_id),
        android_store_uri=store_uri("android"),
        ios_store_uri=store_uri("ios"),
    )


# --- overrides -------------------------------------------------------------------------------


def _not_shadowed(
    supplied: Sequence[Described], published: Collection[str], findings: FindingCollector
) -> list[Described]:
    """Supplied records the feed does not publish itself: the feed's own record wins."""
    kept: list[Described] = []
    for record in supplied:
        if record.external_id in published:
            kind = "vehicle type" if isinstance(record, VehicleType) else "pricing plan"
            findings.summary(
                "OVERRIDE_SHADOWED",
                OVERRIDES_FEED,
                f"supplied {kind} {record.external_id!r} is also published by the feed: the "
                "feed's is used (map the operator's id to another id to replace it)",
                record.external_id,
            )
        else:
            kept.append(record)
    return kept


def _with_known_plans(
    vehicle_type: VehicleType, plan_ids: Collection[str], findings: FindingCollector
) -> VehicleType:
    """A supplied type's plan references, resolved now that the feed's plans are known."""
    default = vehicle_type.default_pricing_plan_id
    named = [default] if default is not None else []
    named += list(vehicle_type.pricing_plan_ids)
    unknown = sorted({plan for plan in named if plan not in plan_ids})
    if not unknown:
        return vehicle_type
    findings.summary(
        "UNKNOWN_PRICING_PLAN",
        OVERRIDES_FEED,
        f"supplied vehicle type {vehicle_type.external_id!r} names plan(s) "
        f"{', '.join(map(repr, unknown))} that neither the feed nor the overrides have: dropped",
        vehicle_type.external_id,
    )
    return replace(
        vehicle_type,
        default_pricing_plan_id=default if default in plan_ids else None,
        pricing_plan_ids=tuple(p for p in vehicle_type.pricing_plan_ids if p in plan_ids),
    )


def _usable_map(
    mapping: Mapping[str, str], targets: Collection[str], name: str, findings: FindingCollector
) -> dict[str, str]:
    """Entries whose target exists; the others are reported and left out, so the operator's
    own id still resolves as it would without them."""
    usable: dict[str, str] = {}
    for source, target in mapping.items():
        if target in targets:
            usable[source] = target
            continue
        findings.summary(
            "OVERRIDE_TARGET_UNKNOWN",
            OVERRIDES_FEED,
            f"{name}: {source!r} maps to {target!r}, which neither the feed nor the overrides "
            "describe: entry ignored",
            source,
        )
    return usable


def _report_overrides(
    supplied: FeedOverrides,
    catalog: TypeCatalog,
    type_map: Mapping[str, str],
    plan_map: Mapping[str, str],
    findings: FindingCollector,
) -> None:
    """What the deployment configured that this snapshot never needed: a typo, or an operator
    that changed its ids."""
    for name, mapping, hits in (
        ("vehicle_type_map", type_map, catalog.mapped_type_ids),
        ("pricing_plan_map", plan_map, catalog.mapped_plan_ids),
    ):
        for source in mapping:
            if source not in hits:
                findings.summary(
                    "OVERRIDE_UNUSED",
                    OVERRIDES_FEED,
                    f"{name}: no record of the feed names {source!r}",
                    source,
                )
    referenced_plans = set(catalog.used_plan_ids)
    for vehicle_type in catalog.types.values():
        if vehicle_type.default_pricing_plan_id is not None:
            referenced_plans.add(vehicle_type.default_pricing_plan_id)
        referenced_plans.update(vehicle_type.pricing_plan_ids)
    for plan in supplied.pricing_plans:
        if plan.external_id not in referenced_plans and plan.external_id in catalog.plan_ids:
            findings.summary(
                "OVERRIDE_UNUSED",
                OVERRIDES_FEED,
                f"supplied pricing plan {plan.external_id!r}: no vehicle or type uses it",
                plan.external_id,
            )
    for vehicle_type in supplied.vehicle_types:
        type_id = vehicle_type.external_id
        if type_id not in catalog.used_type_ids and type_id in catalog.described:
            findings.summary(
                "OVERRIDE_UNUSED",
                OVERRIDES_FEED,
                f"supplied vehicle type {type_id!r}: no vehicle or station of the feed is of it",
                type_id,
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


# --- file-level checks -----------------------------------------------------------------------

# The main array of each file that describes infrastructure. Vehicle files are left out: an
# empty vehicle_status is a normal night (every vehicle rented or charging).
_MAIN_ARRAYS = {
    "station_information": "stations",
    "station_status": "stations",
    "vehicle_types": "vehicle_types",
    "system_pricing_plans": "plans",
    "system_regions": "regions",
}
_LIVE_FEEDS = frozenset({"vehicle_status", "free_bike_status", "station_status"})
# How far behind the live data a file's `last_updated + ttl` may lie before it is reported:
# static files change rarely, but months usually mean nobody maintains the file any more.
STALE_AFTER_SECONDS = 30 * 86400


def _check_empty_feeds(data: Mapping[str, Any], readers: Mapping[str, Reader]) -> None:
    for name, key in _MAIN_ARRAYS.items():
        if name in data and data[name].get(key) == []:
            readers[name].warn("EMPTY_FEED", f"published, but lists no {key}", None)


def _check_stale_files(feeds: Sequence[FeedMeta], readers: Mapping[str, Reader]) -> None:
    """Files whose own ``last_updated + ttl`` lies long before the live data they accompany
    (Cooltra's discovery, system and type files are five months older than its vehicles)."""
    live = [f.last_updated for f in feeds if f.name in _LIVE_FEEDS and f.last_updated]
    if not live:
        return
    newest = max(live).timestamp()
    for meta in feeds:
        if meta.name in _LIVE_FEEDS or meta.last_updated is None:
            continue
        behind = newest - (meta.last_updated.timestamp() + (meta.ttl or 0))
        if behind > STALE_AFTER_SECONDS:
            readers[meta.name].warn(
                "STALE_FILE",
                f"last_updated is {behind / 86400:.0f} days older than the live data although "
                f"its ttl is {meta.ttl or 0} s: the publisher may no longer maintain it",
                None,
            )


def _check_discovery_names(document: object, language: str, reader: Reader) -> None:
    """Names a discovery file lists that no GBFS version defines (PBSC's `nearby_stations`)."""
    try:
        listed = discovery_feeds(document, preferred_language=language)
    except AdapterError:
        return  # the adapter already read it; a parse of it alone has nothing to add
    for name in listed:
        if name not in ALL_GBFS_FEEDS:
            reader.warn("NON_STANDARD_FEED", f"lists `{name}`, not a GBFS file: ignored", name)


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(raw: object, reader: Reader, system_id: str | None) -> str | None:
    timezone = reader.optional(reader.text, raw, "timezone", system_id)
    if timezone is None:
        return None
    if timezone not in _time_zones():
        reader.warn("INVALID_TIMEZONE", "timezone is not an IANA time zone: kept as sent", None)
    elif "/" not in timezone and timezone != "UTC":
        # e.g. Cooltra's "CET": valid in the tz database, but a legacy rule name, not the
        # system's location, which the spec's tz list asks for.
        reader.warn(
            "TIMEZONE_NOT_A_LOCATION", f"timezone {timezone!r} is not an Area/Location name", None
        )
    return timezone
