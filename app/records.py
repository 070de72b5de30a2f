"""What the interfaces read of stored records: one read-only protocol per record they show.

The services hand the GraphQL schema (and the REST routers) the rows they loaded; the schema
types them with these protocols, not with the ORM models, so that ``graphql_schema/`` depends on
what a record says rather than on how it is stored (no SQLAlchemy there: docs/architecture.md).
The models in app/models/ satisfy them structurally, which mypy checks at every call that
passes a row on: a column renamed or retyped in the model fails the type check here.

A field the API shows is added to its model, its migration, the protocol below and the API
type. Fields the API never reads (secrets, hashes, leases) are deliberately absent.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any, Protocol

__all__ = [
    "ApiKeyRecord",
    "BookingRecord",
    "CostCentreRecord",
    "MemberRecord",
    "OrganisationRecord",
    "PolicyRecord",
    "PricingPlanRecord",
    "ProviderRecord",
    "SyncRunRecord",
    "UserRecord",
    "VehicleTypeRecord",
    "WebhookEndpointRecord",
]


class ProviderRecord(Protocol):
    id: str
    name: str
    enabled: bool
    booking: dict[str, Any] | None
    gbfs_version: str | None
    system_info: dict[str, Any]
    last_sync_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    stale: bool
    consecutive_failures: int
    next_sync_at: datetime | None


class SyncRunRecord(Protocol):
    started_at: datetime
    finished_at: datetime | None
    status: str
    error_count: int
    warning_count: int
    findings: list[dict[str, Any]]


class VehicleTypeRecord(Protocol):
    id: str
    provider_id: str
    form_factor: str
    propulsion_type: str
    name: str | None
    max_range_meters: float | None
    rider_capacity: int | None
    default_pricing_plan_id: str | None
    return_constraint: str | None
    co2_grams_per_km: float | None
    default_reserve_time_minutes: int | None


class PricingPlanRecord(Protocol):
    id: str
    provider_id: str
    name: str
    description: str | None
    currency: str
    price_minor: int
    is_taxable: bool
    per_km_pricing: list[dict[str, Any]]
    per_min_pricing: list[dict[str, Any]]
    surge_pricing: bool
    url: str | None


class BookingRecord(Protocol):
    id: uuid.UUID
    state: str
    provider_id: str
    vehicle_id: str
    form_factor: str
    currency: str | None
    estimated_price_minor: int | None
    final_price_minor: int | None
    receipt: dict[str, Any] | None
    distance_meters: float | None
    reserved_until: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    failure_code: str | None
    organisation_id: uuid.UUID | None
    cost_centre_id: uuid.UUID | None
    created_at: datetime


class UserRecord(Protocol):
    id: uuid.UUID
    email: str
    display_name: str | None


class OrganisationRecord(Protocol):
    id: uuid.UUID
    name: str
    timezone: str
    plan: str


class CostCentreRecord(Protocol):
    id: uuid.UUID
    code: str
    name: str


class MemberRecord(Protocol):
    id: uuid.UUID
    role: str
    cost_centre_id: uuid.UUID | None


class ApiKeyRecord(Protocol):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class WebhookEndpointRecord(Protocol):
    id: uuid.UUID
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime


class PolicyRecord(Protocol):
    organisation_id: uuid.UUID
    cost_centre_id: uuid.UUID | None
    allowed_form_factors: list[str] | None
    allowed_providers: list[str] | None
    max_price_minor: int | None
    currency: str | None
    allowed_weekdays: list[int] | None
    allowed_from: time | None
    allowed_until: time | None
    business_area: Any | None
    monthly_budget_minor: int | None
    updated_at: datetime
