"""The provider in the API: an aggregated operator, its sync health, validation findings and
(for staff) its stored configuration. Split from types.py, which holds the map's objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import strawberry
from strawberry.scalars import JSON

from app.health import SyncRecord, data_age_seconds, health_status
from app.platform.settings import Settings
from app.provider_admin import config_view, overrides_summary
from app.records import ProviderRecord
from app.search.schemas import ProviderStats
from app.search.service import is_stale
from app.search.validation import validate_first
from graphql_schema.enums import FormFactor, HealthStatus, form_factor

if TYPE_CHECKING:
    from graphql_schema.context import Context


@strawberry.type
class BoundingBox:
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float


@strawberry.type
class ValidationFinding:
    severity: str
    code: str
    feed: str
    message: str
    record_id: str | None


@strawberry.type(description="The validation report of the provider's latest sync.")
class ValidationReport:
    sync_status: str
    started_at: datetime
    error_count: int
    warning_count: int
    findings: list[ValidationFinding]


@strawberry.type(description="Validation counts of the latest finished sync, with a sample.")
class ValidationSummary:
    errors: int
    warnings: int
    sample: list[ValidationFinding]


@strawberry.type(description="How a provider's data is kept current (rules: app/health.py).")
class ProviderHealth:
    status: HealthStatus
    last_sync_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    next_sync_at: datetime | None
    data_age_seconds: float | None = strawberry.field(
        description="Seconds since the last good data; null when there has been none."
    )
    stale_after_seconds: float
    validation: ValidationSummary | None = strawberry.field(
        description="The latest finished sync's findings; null before the first sync."
    )


_HEALTH_SAMPLE = 5


def _finding(f: dict[str, Any]) -> ValidationFinding:
    return ValidationFinding(
        severity=f["severity"],
        code=f["code"],
        feed=f["feed"],
        message=f["message"],
        record_id=f.get("record_id"),
    )


@strawberry.type(description="An operator's id and the id used in its place.")
class IdMapping:
    operator_id: str
    mapped_to: str


@strawberry.type(
    description="What the deployment adds to or corrects in the operator's feed (the adapter "
    "config's `overrides`, docs/adapters.md). The feed's own vehicle types and plans win over "
    "supplied ones of the same id; a map redirects the operator's ids explicitly."
)
class ProviderOverrides:
    vehicle_type_ids: list[str] = strawberry.field(
        description="Vehicle types supplied for what the feed lacks, by their id within the "
        "provider (public ids are `<provider>:<id>`)."
    )
    pricing_plan_ids: list[str] = strawberry.field(
        description="Pricing plans supplied for what the feed lacks, by their id within the "
        "provider."
    )
    vehicle_type_map: list[IdMapping]
    pricing_plan_map: list[IdMapping]
    excluded_feeds: list[str] = strawberry.field(
        description="GBFS files never read for this provider."
    )
    language: str | None = strawberry.field(
        description="The language localized texts resolve to, when set for this provider."
    )


@strawberry.type(description="A shared-mobility operator this service aggregates.")
class Provider:
    id: strawberry.ID
    name: str
    last_synced_at: datetime | None
    last_success_at: datetime | None
    stale: bool = strawberry.field(
        description="True when the latest sync failed or the last good one is too old: the "
        "data shown is the last good snapshot. `health.status` refines this: a failed sync "
        "with data still within the staleness limit is DEGRADED there, and only data older "
        "than the limit (or none yet) is STALE and hidden from search."
    )
    error: str | None
    gbfs_version: str | None
    timezone: str | None
    enabled: bool = strawberry.field(
        description="False: switched off by staff (not synced, its vehicles not shown)."
    )
    booking_api: str | None = strawberry.field(
        default=None,
        description="The operator's booking API (e.g. `tomp`): its vehicles can be reserved "
        "here. Null: riders book in the operator's own app (reserveVehicle answers "
        "ExternalBooking with its links).",
    )

    @classmethod
    def from_model(cls, p: ProviderRecord, settings: Settings) -> Provider:
        return cls(
            id=strawberry.ID(p.id),
            name=p.name,
            enabled=p.enabled,
            booking_api=str(p.booking["operator"]) if p.booking else None,
            last_synced_at=p.last_sync_at,
            last_success_at=p.last_success_at,
            stale=is_stale(p, settings),
            error=p.last_error,
            gbfs_version=p.gbfs_version,
            timezone=(p.system_info or {}).get("timezone"),
        )

    @strawberry.field(
        description="The kind of credentials its adapter uses to call the operator "
        "(BEARER_TOKEN, API_KEY, OAUTH2_CLIENT_CREDENTIALS), or null. Staff (ADMIN) only: "
        "null for anyone else. The credentials themselves are never returned."
    )
    async def credentials_kind(self, info: strawberry.Info[Context, None]) -> str | None:
        if not (await info.context.viewer()).is_admin:
            return None
        kind = await info.context.provider_admin.credentials_kind(str(self.id))
        return kind.upper() if kind else None

    @strawberry.field(
        description="The adapter and its config, as stored (header values masked). Staff "
        "(ADMIN) only: null for anyone else."
    )
    async def config(self, info: strawberry.Info[Context, None]) -> JSON | None:
        stored = await self._stored_config(info)
        if stored is None:
            return None
        return cast(JSON, {"adapter": stored[0], **config_view(stored[1])})

    @strawberry.field(
        description="The provider's feed overrides, or null when it has none. Staff (ADMIN) "
        "only: null for anyone else. What they did at the latest sync is in `validation` "
        "(findings of feed `overrides` come first)."
    )
    async def overrides(self, info: strawberry.Info[Context, None]) -> ProviderOverrides | None:
        stored = await self._stored_config(info)
        summary = overrides_summary(stored[1]) if stored is not None else None
        if summary is None:
            return None
        return ProviderOverrides(
            vehicle_type_ids=summary.vehicle_type_ids,
            pricing_plan_ids=summary.pricing_plan_ids,
            vehicle_type_map=[
                IdMapping(operator_id=k, mapped_to=v) for k, v in summary.vehicle_type_map.items()
            ],
            pricing_plan_map=[
                IdMapping(operator_id=k, mapped_to=v) for k, v in summary.pricing_plan_map.items()
            ],
            excluded_feeds=summary.excluded_feeds,
            language=summary.language,
        )

    async def _stored_config(
        self, info: strawberry.Info[Context, None]
    ) -> tuple[str, dict[str, Any]] | None:
        """(adapter, config) for staff; None for anyone else, or when it is gone."""
        if not (await info.context.viewer()).is_admin:
            return None
        provider = await info.context.provider_admin.get(str(self.id))
        return None if provider is None else (provider.adapter, dict(provider.config))

    async def _stats(self, info: strawberry.Info[Context, None]) -> ProviderStats | None:
        return await info.context.loaders.provider_stats.load(str(self.id))

    @strawberry.field(description="Form factors of the provider's vehicle types and vehicles.")
    async def form_factors(self, info: strawberry.Info[Context, None]) -> list[FormFactor]:
        stats = await self._stats(info)
        return [form_factor(f) for f in stats.form_factors] if stats else []

    @strawberry.field
    async def vehicle_count(self, info: strawberry.Info[Context, None]) -> int:
        stats = await self._stats(info)
        return stats.vehicle_count if stats else 0

    @strawberry.field
    async def station_count(self, info: strawberry.Info[Context, None]) -> int:
        stats = await self._stats(info)
        return stats.station_count if stats else 0

    @strawberry.field(description="Extent of the provider's current vehicles and stations.")
    async def bounding_box(self, info: strawberry.Info[Context, None]) -> BoundingBox | None:
        stats = await self._stats(info)
        if stats is None or stats.extent is None:
            return None
        e = stats.extent
        return BoundingBox(
            min_lat=e.min_lat, min_lon=e.min_lon, max_lat=e.max_lat, max_lon=e.max_lon
        )

    @strawberry.field(description="The report of the latest finished sync.")
    async def validation(
        self, info: strawberry.Info[Context, None], first: int = 20
    ) -> ValidationReport | None:
        first = validate_first(info.context.settings, first)
        # Through the request's DataLoader, as `health`: the providers of a whole vehicle list
        # are read in one session, not one session per vehicle at once (graphql-core resolves
        # a list's items concurrently, and 200 of them would drain the pool).
        found = await info.context.loaders.provider_health.load(str(self.id))
        run = found[1] if found is not None else None
        if run is None:
            return None
        return ValidationReport(
            sync_status=run.status,
            started_at=run.started_at,
            error_count=run.error_count,
            warning_count=run.warning_count,
            findings=[_finding(f) for f in run.findings[:first]],
        )

    @strawberry.field(description="Sync health, read when asked (not from a cache).")
    async def health(self, info: strawberry.Info[Context, None]) -> ProviderHealth | None:
        settings = info.context.settings
        # Batched: `providers { health }` reads every provider's record in two queries.
        found = await info.context.loaders.provider_health.load(str(self.id))
        if found is None:
            return None  # deleted since this object was built
        row, run = found
        now = datetime.now(UTC)
        record = SyncRecord(
            enabled=row.enabled,
            last_success_at=row.last_success_at,
            consecutive_failures=row.consecutive_failures,
            latest_errors=run.error_count if run is not None else 0,
        )
        return ProviderHealth(
            status=health_status(record, settings, now),
            last_sync_at=row.last_sync_at,
            last_success_at=row.last_success_at,
            last_error=row.last_error,
            consecutive_failures=row.consecutive_failures,
            next_sync_at=row.next_sync_at,
            data_age_seconds=data_age_seconds(row.last_success_at, now),
            stale_after_seconds=settings.stale_after_seconds,
            validation=None
            if run is None
            else ValidationSummary(
                errors=run.error_count,
                warnings=run.warning_count,
                sample=[_finding(f) for f in run.findings[:_HEALTH_SAMPLE]],
            ),
        )
