"""The shape every demo operator's GBFS documents share: the per-request context (version,
epoch, timestamps, localized text, the envelope), the discovery file, system information,
geofencing rules and zones, pricing plans and their segments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeAlias
from zoneinfo import ZoneInfo

from providers.demo.geometry import Ring
from providers.demo.operators import EPOCH_SECONDS, DemoProvider

Document: TypeAlias = dict[str, Any]

TTL_SECONDS: Final = 30
# Reference data (system information, types, prices, zones, stations) only changes when this
# package does; dating it to the hour instead of the epoch keeps its bytes stable, so pollers
# get 304s from the demo server the way they would from a real operator.
STATIC_PERIOD_SECONDS: Final = 3600
_BERLIN: Final = ZoneInfo("Europe/Berlin")

# Feeds whose content changes with the epoch; everything else is reference data.
_DYNAMIC_FEEDS: Final = frozenset({"vehicle_status", "free_bike_status", "station_status"})


def _multipolygon(ring: Ring) -> Document:
    return {"type": "MultiPolygon", "coordinates": [[[list(point) for point in ring]]]}


@dataclass(frozen=True, slots=True)
class Context:
    provider: DemoProvider
    seed: int
    epoch: int
    now: float
    base_url: str

    @property
    def v3(self) -> bool:
        return self.provider.gbfs_version.startswith("3")

    @property
    def epoch_time(self) -> int:
        return self.epoch * EPOCH_SECONDS

    def timestamp(self, seconds: int) -> int | str:
        """GBFS Timestamp: POSIX seconds up to 2.3, RFC 3339 (local offset) from 3.0."""
        if not self.v3:
            return seconds
        return datetime.fromtimestamp(seconds, _BERLIN).isoformat()

    def text(self, en: str, de: str | None = None) -> list[Document] | str:
        """A v3 localized string (every listed language present) or a plain v2 string."""
        if not self.v3:
            return en
        return [{"text": en, "language": "en"}, {"text": de or en, "language": "de"}]

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def envelope(self, feed: str, data: Document) -> Document:
        if feed in _DYNAMIC_FEEDS:
            updated = self.epoch_time
        else:
            updated = int(self.now // STATIC_PERIOD_SECONDS) * STATIC_PERIOD_SECONDS
        return {
            "last_updated": self.timestamp(updated),
            "ttl": TTL_SECONDS,
            "version": self.provider.gbfs_version,
            "data": data,
        }


def gbfs(ctx: Context) -> Document:
    feeds = [
        {"name": feed, "url": ctx.url(path)}
        for feed, path in ctx.provider.feed_paths.items()
        if feed != "gbfs"
    ]
    # v3 dropped the language level of the discovery file; v2 keys it by language.
    return {"feeds": feeds} if ctx.v3 else {"en": {"feeds": feeds}}


def system_information(ctx: Context, *, operator_domain: str, app_id: str) -> Document:
    site = f"https://{operator_domain}"
    data: Document = {
        "system_id": ctx.provider.slug,
        "name": ctx.text(ctx.provider.name),
        "operator": ctx.text("Demo Mobility Berlin GmbH"),
        "url": f"{site}/",
        "purchase_url": f"{site}/signup",
        "start_date": "2024-03-01",
        "phone_number": "+4930120045600",
        "email": f"support@{operator_domain}",
        "feed_contact_email": f"feeds@{operator_domain}",
        "timezone": "Europe/Berlin",
        "license_url": f"{site}/open-data-license",
        "terms_url": ctx.text(f"{site}/en/terms", f"{site}/de/agb"),
        "terms_last_updated": "2024-03-01",
        "privacy_url": ctx.text(f"{site}/en/privacy", f"{site}/de/datenschutz"),
        "privacy_last_updated": "2024-03-01",
        "rental_apps": {
            "android": {
                "store_uri": f"https://play.google.com/store/apps/details?id=com.example.{app_id}",
                "discovery_uri": f"{app_id}://",
            },
            "ios": {
                "store_uri": "https://apps.apple.com/app/id6400000001",
                "discovery_uri": f"{app_id}://",
            },
        },
    }
    if ctx.v3:
        data["languages"] = ["en", "de"]
        data["opening_hours"] = "24/7"  # OSM opening_hours syntax
    else:
        data["language"] = "en"
    return data


def zone_rule(
    ctx: Context,
    *,
    start: bool,
    end: bool,
    through: bool,
    max_kph: int | None = None,
    vehicle_type_ids: list[str] | None = None,
) -> Document:
    if ctx.v3:
        rule: Document = {
            "ride_start_allowed": start,
            "ride_end_allowed": end,
            "ride_through_allowed": through,
        }
        if vehicle_type_ids is not None:
            rule["vehicle_type_ids"] = vehicle_type_ids
    else:
        # v2.3 has one flag for start and end of a free-floating ride.
        rule = {"ride_allowed": start and end, "ride_through_allowed": through}
        if vehicle_type_ids is not None:
            rule["vehicle_type_id"] = vehicle_type_ids
    if max_kph is not None:
        rule["maximum_speed_kph"] = max_kph
    return rule


def zone(ctx: Context, name_en: str, name_de: str, ring: Ring, rules: list[Document]) -> Document:
    return {
        "type": "Feature",
        "geometry": _multipolygon(ring),
        "properties": {"name": ctx.text(name_en, name_de), "rules": rules},
    }


def pricing_plan(
    ctx: Context,
    plan_id: str,
    *,
    name: tuple[str, str],
    description: tuple[str, str],
    price: float,
    per_min: list[Document],
    per_km: list[Document] | None = None,
) -> Document:
    plan: Document = {
        "plan_id": plan_id,
        "name": ctx.text(*name),
        "currency": "EUR",
        "price": price,
        # German consumer prices include VAT.
        "is_taxable": False,
        "description": ctx.text(*description),
        "per_min_pricing": per_min,
    }
    if per_km:
        plan["per_km_pricing"] = per_km
    return plan


def price_segment(start: int, rate: float, interval: int, end: int | None = None) -> Document:
    segment: Document = {"start": start, "rate": rate, "interval": interval}
    if end is not None:
        segment["end"] = end
    return segment


FeedGenerator: TypeAlias = Callable[[Context], Document]


def feed_table(
    operator_domain: str, app_id: str, feeds: dict[str, FeedGenerator]
) -> dict[str, FeedGenerator]:
    """An operator's feeds by name: the discovery file and system information, which every demo
    operator publishes alike, then its own ``feeds`` in their order."""
    return {
        "gbfs": gbfs,
        "system_information": lambda ctx: system_information(
            ctx, operator_domain=operator_domain, app_id=app_id
        ),
        **feeds,
    }
