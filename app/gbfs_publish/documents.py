"""Pure GBFS 3.0 document building: envelopes, localized strings, and the small files.

Everything here works on values already read from PostgreSQL and returns bytes (orjson), so
the rules of the format (what is required, what is left out when unknown, how ids, money,
languages and times are written) can be read in one place and tested without a database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any
from urllib.parse import quote
from zoneinfo import available_timezones

import orjson

from adapters.money import currency_exponent
from app.gbfs_publish.repository import PublishedProvider
from app.gbfs_publish.settings import GbfsPublishSettings

VERSION = "3.0"

# File names in the order gbfs.json lists them.
SYSTEM_INFORMATION = "system_information"
VEHICLE_TYPES = "vehicle_types"
STATION_INFORMATION = "station_information"
STATION_STATUS = "station_status"
VEHICLE_STATUS = "vehicle_status"
SYSTEM_REGIONS = "system_regions"
SYSTEM_PRICING_PLANS = "system_pricing_plans"
GEOFENCING_ZONES = "geofencing_zones"
FILE_ORDER = (
    SYSTEM_INFORMATION,
    VEHICLE_TYPES,
    STATION_INFORMATION,
    STATION_STATUS,
    VEHICLE_STATUS,
    SYSTEM_REGIONS,
    SYSTEM_PRICING_PLANS,
    GEOFENCING_ZONES,
)

# A URI the schemas' ``format: uri`` accepts (RFC 3986), written conservatively: only
# unreserved, reserved and percent-encoded characters, an authority that is userinfo, host and
# a numeric port, no IP literal. Operators' deep links go through unchanged; a URI outside it
# is left out rather than published broken. One pattern for Python and for PostgreSQL's regex
# engine (bound as a parameter), so the two checks cannot drift apart.
_PCT = "%[0-9A-Fa-f]{2}"
_UNRESERVED_SUB = "-A-Za-z0-9._~!$&'()*+,;="  # '-' first: a literal in both engines
_PATH = f"([{_UNRESERVED_SUB}:@/]|{_PCT})*"
_QUERY = f"([{_UNRESERVED_SUB}:@/?]|{_PCT})*"
URI_PATTERN = (
    "^[A-Za-z][A-Za-z0-9+.-]*:"
    f"(//(([{_UNRESERVED_SUB}:]|{_PCT})*@)?([{_UNRESERVED_SUB}]|{_PCT})*(:[0-9]*)?(/{_PATH})?"
    f"|(?!//){_PATH})"
    f"([?]{_QUERY})?(#{_QUERY})?$"
)
_URI = re.compile(URI_PATTERN)
_RETURN_CONSTRAINTS = frozenset({"free_floating", "roundtrip_station", "any_station", "hybrid"})
# The schemas' Language pattern: ^[a-z]{2,3}(-[A-Z]{2})?$
_LANGUAGE = re.compile(r"^([A-Za-z]{2,3})(?:-([A-Za-z]{2}))?(?:-|$)")


def is_publishable_uri(value: object) -> bool:
    return isinstance(value, str) and _URI.match(value) is not None


def rfc3339(moment: datetime) -> str:
    """Whole seconds in UTC with ``Z``: what strict RFC 3339 checkers accept."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gbfs_language(tag: object) -> str | None:
    """A BCP 47 tag in the form the schemas accept (``nb-no`` → ``nb-NO``, ``zh-Hant`` →
    ``zh``), or None when it has no usable primary subtag."""
    if not isinstance(tag, str):
        return None
    match = _LANGUAGE.match(tag.strip())
    if match is None:
        return None
    primary, region = match.group(1).lower(), match.group(2)
    return f"{primary}-{region.upper()}" if region else primary


@dataclass(frozen=True, slots=True)
class Publication:
    """The facts every file of one provider shares."""

    provider: PublishedProvider
    last_updated: datetime
    ttl: int
    language: str  # the one language every text of ours is in (the sync resolved it)
    base_url: str  # ends with "/"

    @property
    def last_updated_text(self) -> str:
        return rfc3339(self.last_updated)

    def localized(self, text: str) -> list[dict[str, str]]:
        return [{"text": text, "language": self.language}]

    def file_url(self, name: str) -> str:
        return f"{self.base_url}gbfs/v3/{quote(self.provider.id, safe='')}/{name}.json"


def publication(
    provider: PublishedProvider, settings: GbfsPublishSettings, base_url: str, fallback: str
) -> Publication:
    """``fallback``: the deployment's preferred language, for a provider whose feeds named none."""
    if provider.last_success_at is None:
        raise ValueError(f"provider {provider.id!r} has no data to publish")
    language = (
        gbfs_language(provider.system_info.get("language")) or gbfs_language(fallback) or "en"
    )
    ttl = provider.ttl_seconds
    return Publication(
        provider=provider,
        last_updated=provider.last_success_at,
        ttl=settings.default_ttl_seconds if ttl is None or ttl < 0 else ttl,
        language=language,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
    )


def published_files(provider: PublishedProvider) -> tuple[str, ...]:
    """The data files this provider's gbfs.json lists, in order: each only when we hold that
    kind of data (or the provider's feeds carried the file, so an empty list is its truth)."""
    feeds = set(provider.feed_names)
    has_stations = provider.has_stations
    has_vehicles = provider.has_vehicles or VEHICLE_STATUS in feeds
    if not has_stations and not has_vehicles:
        # gbfs.json must list station_status or vehicle_status (schema). A provider with
        # neither (zones only, say) publishes an empty vehicle list, which is the truth.
        has_vehicles = True
    present = {
        SYSTEM_INFORMATION: True,
        VEHICLE_TYPES: provider.has_vehicle_types,
        STATION_INFORMATION: has_stations,
        STATION_STATUS: has_stations,
        VEHICLE_STATUS: has_vehicles,
        SYSTEM_REGIONS: provider.has_regions,
        SYSTEM_PRICING_PLANS: provider.has_pricing_plans,
        GEOFENCING_ZONES: provider.has_zones or GEOFENCING_ZONES in feeds,
    }
    return tuple(name for name in FILE_ORDER if present[name])


# --- envelopes -------------------------------------------------------------------------------


def envelope(last_updated: datetime, ttl: int, data: Mapping[str, Any]) -> bytes:
    return orjson.dumps(
        {"last_updated": rfc3339(last_updated), "ttl": ttl, "version": VERSION, "data": data}
    )


def records_document(pub: Publication, key: str, chunks: Iterable[bytes]) -> bytes:
    """A document whose ``data.<key>`` array is made of records already rendered as JSON
    (by PostgreSQL); each chunk is comma-joined records, as read in one batch."""
    head = orjson.dumps({"last_updated": pub.last_updated_text, "ttl": pub.ttl, "version": VERSION})
    opening = head[:-1] + b',"data":{"' + key.encode() + b'":['
    return opening + b",".join(chunk for chunk in chunks if chunk) + b"]}}"


# --- discovery -------------------------------------------------------------------------------


def manifest(
    base_url: str, datasets: Sequence[tuple[str, datetime]], ttl: int, now: datetime
) -> bytes:
    """One dataset per published provider, ``system_id`` = the provider's id (see
    :func:`system_information`). ``last_updated``: the newest data among them."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    last_updated = max((at for _, at in datasets), default=now)
    return envelope(
        last_updated,
        ttl,
        {
            "datasets": [
                {
                    "system_id": provider_id,
                    "versions": [
                        {
                            "version": VERSION,
                            "url": f"{base}gbfs/v3/{quote(provider_id, safe='')}/gbfs.json",
                        }
                    ],
                }
                for provider_id, _ in datasets
            ]
        },
    )


def gbfs_discovery(pub: Publication, files: Sequence[str]) -> bytes:
    return envelope(
        pub.last_updated,
        pub.ttl,
        {"feeds": [{"name": name, "url": pub.file_url(name)} for name in files]},
    )


# --- small files -----------------------------------------------------------------------------


def system_information(pub: Publication, settings: GbfsPublishSettings) -> bytes:
    """The operator's system as the sync last saw it, under the provider's id.

    ``system_id`` is our provider id, not the operator's: two providers may aggregate the same
    operator system, and a consumer merging our datasets must never see one id twice.
    """
    info = pub.provider.system_info
    timezone = info.get("timezone")
    data: dict[str, Any] = {
        "system_id": pub.provider.id,
        "languages": [pub.language],
        "name": pub.localized(str(info.get("name") or pub.provider.name)),
        "opening_hours": settings.opening_hours,
        "feed_contact_email": settings.feed_contact_email,
        "timezone": timezone if timezone in _timezones() else settings.fallback_timezone,
        "manifest_url": f"{pub.base_url}gbfs/v3/manifest.json",
    }
    if info.get("operator"):
        data["operator"] = pub.localized(str(info["operator"]))
    if is_publishable_uri(info.get("url")):
        data["url"] = info["url"]
    # rental_apps is left out: 3.0 requires a discovery_uri with each store_uri, and the sync
    # keeps only the store URIs.
    return envelope(pub.last_updated, pub.ttl, data)


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def vehicle_types(pub: Publication, rows: Iterable[Any]) -> bytes:
    types = []
    for row in rows:
        co2 = row.co2_grams_per_km
        types.append(
            _present(
                {
                    "vehicle_type_id": row.id,
                    "form_factor": row.form_factor,
                    "propulsion_type": row.propulsion_type,
                    "name": pub.localized(row.name) if row.name else None,
                    "max_range_meters": row.max_range_meters,
                    "rider_capacity": _count(row.rider_capacity),
                    # Integer in the 3.0 schema; we store what the operator sent.
                    "g_CO2_km": round(co2) if co2 is not None and co2 >= 0 else None,
                    "default_reserve_time": _count(row.default_reserve_time_minutes),
                    "return_constraint": row.return_constraint
                    if row.return_constraint in _RETURN_CONSTRAINTS
                    else None,
                    "default_pricing_plan_id": row.default_pricing_plan_id,
                }
            )
        )
    return envelope(pub.last_updated, pub.ttl, {"vehicle_types": types})


def _count(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None


def major_units(minor: int, currency: str) -> float | int:
    """Minor units back to the decimal amount GBFS publishes (``12650 NOK`` → ``126.5``)."""
    amount = Decimal(minor).scaleb(-currency_exponent(currency))
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def pricing_plans(pub: Publication, rows: Iterable[Any]) -> bytes:
    plans = []
    for row in rows:
        currency = row.currency
        plan: dict[str, Any] = {
            "plan_id": row.id,
            "name": pub.localized(row.name),
            "currency": currency,
            "price": major_units(row.price_minor, currency),
            "is_taxable": row.is_taxable,
            # Required in 3.0; a plan the operator did not describe is described by its name.
            "description": pub.localized(row.description or row.name),
        }
        if is_publishable_uri(row.url):
            plan["url"] = row.url
        for key, segments in (
            ("per_km_pricing", row.per_km_pricing),
            ("per_min_pricing", row.per_min_pricing),
        ):
            if segments:
                plan[key] = [_segment(segment, currency) for segment in segments]
        if row.surge_pricing:
            plan["surge_pricing"] = True
        plans.append(plan)
    return envelope(pub.last_updated, pub.ttl, {"plans": plans})


def _segment(segment: Mapping[str, Any], currency: str) -> dict[str, Any]:
    return _present(
        {
            "start": segment["start"],
            "rate": major_units(segment["rate_minor"], currency),
            "interval": segment["interval"],
            "end": segment.get("end"),
        }
    )


def system_regions(pub: Publication, rows: Iterable[Any]) -> bytes:
    regions = [{"region_id": row.id, "name": pub.localized(row.name)} for row in rows]
    return envelope(pub.last_updated, pub.ttl, {"regions": regions})


def _rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A stored rule (type ids already provider-scoped) as a 3.0 rule; absent type ids mean
    every type, as in the source."""
    speed = rule.get("maximum_speed_kph")
    return _present(
        {
            "vehicle_type_ids": rule.get("vehicle_type_ids"),
            "ride_start_allowed": bool(rule["ride_start_allowed"]),
            "ride_end_allowed": bool(rule["ride_end_allowed"]),
            "ride_through_allowed": bool(rule["ride_through_allowed"]),
            "maximum_speed_kph": speed if isinstance(speed, int) and speed >= 0 else None,
            "station_parking": rule.get("station_parking"),
        }
    )


def geofencing_zones(pub: Publication, rows: Iterable[Any]) -> bytes:
    features = []
    for row in rows:
        properties: dict[str, Any] = {"rules": [_rule(rule) for rule in row.rules]}
        if row.name:
            properties["name"] = pub.localized(row.name)
        if row.starts_at is not None:
            properties["start"] = rfc3339(row.starts_at)
        if row.ends_at is not None:
            properties["end"] = rfc3339(row.ends_at)
        features.append(
            {
                "type": "Feature",
                # PostGIS's GeoJSON goes in as it is: no parse and re-serialise per zone.
                "geometry": orjson.Fragment(row.geometry),
                "properties": properties,
            }
        )
    return envelope(
        pub.last_updated,
        pub.ttl,
        {
            "geofencing_zones": {"type": "FeatureCollection", "features": features},
            "global_rules": [_rule(rule) for rule in pub.provider.global_rules],
        },
    )


# --- HTTP caching ----------------------------------------------------------------------------


def max_age(last_updated: datetime, ttl: int, now: datetime) -> int:
    """Seconds until the data is due to change (``last_updated + ttl``), never below 0."""
    return max(0, math.floor(last_updated.timestamp() + ttl - now.timestamp()))
