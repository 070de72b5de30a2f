"""A complete third-party adapter for a made-up operator API, "ScooterCo" (docs/adapters.md).

ScooterCo publishes one JSON document, ``GET <url>``::

    {"updated_at": "2025-06-01T12:00:00Z", "ttl": 30,
     "operator": {"id": "scooterco-berlin", "name": "ScooterCo Berlin"},
     "models": [{"id": "s1", "name": "S1", "range_km": 45}],
     "tariff": {"currency": "EUR", "unlock_cents": 100, "per_minute_cents": 25},
     "scooters": [{"id": "a1", "lat": 52.52, "lon": 13.40, "model": "s1",
                   "battery": 0.8, "reserved": false, "broken": false}]}

The tests register it through a real ``mobility.adapters`` entry point and run the contract kit
on it; it is also the example the docs walk through.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from adapters.base import AdapterConfigError, AdapterError, FetchContext
from adapters.dto import (
    UNSPECIFIED_VEHICLE_TYPE_ID,
    FeedMeta,
    Finding,
    FormFactor,
    PricingPlan,
    PricingSegment,
    PropulsionType,
    Snapshot,
    SystemInfo,
    Vehicle,
    VehicleType,
    placeholder_vehicle_type,
)
from adapters.http import FeedFetchError, fetch_json

PLAN_ID = "standard"


class ScooterCoAdapter:
    name: ClassVar[str] = "fake-scooters"

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = url
        self.api_key = api_key

    def __repr__(self) -> str:  # never show the key
        return f"ScooterCoAdapter({self.url!r})"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ScooterCoAdapter:
        if not isinstance(config, Mapping):
            raise AdapterConfigError("scooterco: config must be an object")
        unknown = sorted(set(config) - {"url", "api_key"})
        if unknown:
            raise AdapterConfigError(f"scooterco: unknown option(s) {', '.join(unknown)}")
        url, api_key = config.get("url"), config.get("api_key")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise AdapterConfigError("scooterco: `url` must be an http(s) URL")
        if api_key is not None and not isinstance(api_key, str):
            raise AdapterConfigError("scooterco: `api_key` must be a string")
        return cls(url, api_key)

    async def fetch_snapshot(self, ctx: FetchContext) -> Snapshot:
        headers = {"X-Api-Key": self.api_key} if self.api_key else None
        try:
            fetched = await fetch_json(
                ctx.http, self.url, ctx.cache, headers=headers, max_bytes=ctx.max_feed_bytes
            )
        except FeedFetchError as exc:  # HTTP status, timeout, size cap, bad JSON, …
            raise AdapterError(
                str(exc),
                feed="vehicle_status",
                url=self.url,
                retry_after_seconds=exc.retry_after_seconds,
            ) from exc
        try:
            return self._parse(fetched.document)
        except (KeyError, TypeError, ValueError) as exc:  # the document's shape is wrong
            raise AdapterError(f"scooterco: unusable document: {exc!r}", url=self.url) from exc

    def _parse(self, doc: Any) -> Snapshot:
        findings: list[Finding] = []
        tariff = doc["tariff"]
        plan = PricingPlan(
            external_id=PLAN_ID,
            name="Standard",
            currency=str(tariff["currency"]).upper(),
            price_minor=int(tariff["unlock_cents"]),
            is_taxable=True,
            per_min_pricing=(
                PricingSegment(start=0, rate_minor=int(tariff["per_minute_cents"]), interval=1),
            ),
        )
        types = [
            VehicleType(
                external_id=str(m["id"]),
                form_factor=FormFactor.SCOOTER_STANDING,
                propulsion_type=PropulsionType.ELECTRIC,
                name=m.get("name"),
                max_range_meters=float(m["range_km"]) * 1000,
                default_pricing_plan_id=PLAN_ID,
            )
            for m in doc["models"]
        ]
        type_ids = {t.external_id for t in types}
        vehicles: list[Vehicle] = []
        seen: set[str] = set()
        for s in doc["scooters"]:
            vid, lat, lon = str(s.get("id") or ""), s.get("lat"), s.get("lon")
            problem = None
            if not vid or vid in seen:
                problem = "missing or duplicate id"
            elif not (isinstance(lat, int | float) and isinstance(lon, int | float)):
                problem = "no position"
            elif not (-90 <= lat <= 90 and -180 <= lon <= 180):
                problem = "position out of range"
            if problem is not None:  # a broken record is reported and skipped
                findings.append(
                    Finding("error", "RECORD_SKIPPED", "vehicle_status", problem, vid or None)
                )
                continue
            model = str(s.get("model") or UNSPECIFIED_VEHICLE_TYPE_ID)
            if model not in type_ids:
                # An unknown model is no reason to lose a scooter: it is kept under the
                # placeholder type every ingest path uses, and reported.
                types.append(placeholder_vehicle_type(model, types_described=True))
                type_ids.add(model)
                findings.append(
                    Finding(
                        "warning",
                        "UNKNOWN_VEHICLE_TYPE",
                        "vehicle_status",
                        f"model {model!r} is not in `models`: kept as a placeholder type",
                        model,
                    )
                )
            seen.add(vid)
            battery = s.get("battery")
            vehicles.append(
                Vehicle(
                    external_id=vid,
                    lat=float(lat),
                    lon=float(lon),
                    is_reserved=bool(s.get("reserved", False)),
                    is_disabled=bool(s.get("broken", False)),
                    vehicle_type_id=model,
                    current_fuel_percent=float(battery) if battery is not None else None,
                )
            )
        updated = datetime.fromisoformat(doc["updated_at"])
        if updated.tzinfo is None:
            raise ValueError("updated_at has no time zone")
        updated = updated.astimezone(UTC)
        ttl = int(doc.get("ttl", 0))
        operator = doc["operator"]
        return Snapshot(
            version="scooterco-1",
            system=SystemInfo(system_id=str(operator["id"]), name=str(operator["name"])),
            vehicle_types=types,
            pricing_plans=[plan],
            vehicles=vehicles,
            # One document carries what GBFS splits into three files. The sync knows feeds by
            # their GBFS names: "vehicle_status" tells it this snapshot carries the vehicles.
            feeds=[
                FeedMeta(name, self.url, updated, ttl)
                for name in ("vehicle_status", "vehicle_types", "system_pricing_plans")
            ],
            findings=findings,
        )
