"""Operators and what their feeds say: providers, vehicle types, pricing plans, stations,
vehicles, geofencing zones, system regions, sync runs and operator credentials."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, _now_by_default, _provider_fk, _uuid_ref
from app.platform.secret_box import (
    CREDENTIALS_PURPOSE,
    INGEST_SECRET_PURPOSE,
    SealedJSON,
    SealedText,
)


class FeedRecord:
    """The key of what a provider's feed reports (a vehicle type, plan, station, vehicle,
    region): the feed's own id, and the public ``id`` that scopes it by the provider
    ("<provider>:<external id>", providers/rows.py) so two operators' ids never collide."""

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider_id: Mapped[str] = _provider_fk()
    external_id: Mapped[str] = mapped_column(Text, nullable=False)


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(Text, primary_key=True)  # slug, e.g. "getaround-stavanger"
    name: Mapped[str] = mapped_column(Text, nullable=False)
    adapter: Mapped[str] = mapped_column(Text, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = _now_by_default()
    updated_at: Mapped[datetime] = _now_by_default()
    # What the last good snapshot said about the system.
    gbfs_version: Mapped[str | None] = mapped_column(Text)
    system_info: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    global_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    ttl_seconds: Mapped[int | None] = mapped_column(Integer)
    # Feeds the last good snapshot came from (see migration 0002).
    feed_names: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list)
    # Push ingest's HMAC key (migration 0003); NULL: the provider cannot push. Never exposed.
    # Deferred: loaded only where it is used (push ingest reads it itself), so listing providers
    # never opens it, and an unreadable one cannot break loading them.
    ingest_secret: Mapped[str | None] = mapped_column(
        SealedText(INGEST_SECRET_PURPOSE), deferred=True, deferred_raiseload=True
    )
    # Sync health.
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    stale: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The outstanding dispatch of this provider's sync (migration 0004, providers/dispatch.py).
    sync_token: Mapped[str | None] = mapped_column(Text)
    sync_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Staff asked for a sync while one was running (migration 0006): due again when it ends.
    sync_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The operator's booking API (migration 0008): {"operator": "<entry point>", "config": {…}}.
    # NULL: no booking API (plain GBFS), riders are sent to the operator's own app.
    booking: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # A private fleet (migration 0010): only this organisation's members see and book it.
    private_to: Mapped[uuid.UUID | None] = _uuid_ref("organisations.id", ondelete="RESTRICT")


class VehicleType(FeedRecord, Base):
    __tablename__ = "vehicle_types"

    form_factor: Mapped[str] = mapped_column(Text, nullable=False)
    propulsion_type: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    max_range_meters: Mapped[float | None] = mapped_column(Float)
    rider_capacity: Mapped[int | None] = mapped_column(Integer)
    default_pricing_plan_id: Mapped[str | None] = mapped_column(Text)
    return_constraint: Mapped[str | None] = mapped_column(Text)
    co2_grams_per_km: Mapped[float | None] = mapped_column(Float)
    default_reserve_time_minutes: Mapped[int | None] = mapped_column(Integer)
    raw_form_factor: Mapped[str | None] = mapped_column(Text)


class PricingPlan(FeedRecord, Base):
    __tablename__ = "pricing_plans"

    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(CHAR(3), nullable=False)
    price_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    is_taxable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    per_km_pricing: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    per_min_pricing: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    surge_pricing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    url: Mapped[str | None] = mapped_column(Text)


class Station(FeedRecord, Base):
    __tablename__ = "stations"

    name: Mapped[str] = mapped_column(Text, nullable=False)
    short_name: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", 4326, spatial_index=False), nullable=False)
    capacity: Mapped[int | None] = mapped_column(Integer)
    region_id: Mapped[str | None] = mapped_column(Text)
    is_virtual: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    rental_uris: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    num_vehicles_available: Mapped[int | None] = mapped_column(Integer)
    num_vehicles_disabled: Mapped[int | None] = mapped_column(Integer)
    num_docks_available: Mapped[int | None] = mapped_column(Integer)
    is_installed: Mapped[bool | None] = mapped_column(Boolean)
    is_renting: Mapped[bool | None] = mapped_column(Boolean)
    is_returning: Mapped[bool | None] = mapped_column(Boolean)
    vehicle_types_available: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    last_reported: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now_by_default()


class Vehicle(FeedRecord, Base):
    """Current snapshot of one vehicle; ``pricing_plan_id`` is the effective plan."""

    __tablename__ = "vehicles"

    vehicle_type_id: Mapped[str | None] = mapped_column(Text)
    pricing_plan_id: Mapped[str | None] = mapped_column(Text)
    station_id: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", 4326, spatial_index=False), nullable=False)
    form_factor: Mapped[str] = mapped_column(Text, nullable=False)
    propulsion_type: Mapped[str] = mapped_column(Text, nullable=False)
    is_reserved: Mapped[bool] = mapped_column(Boolean, nullable=False)
    is_disabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    current_range_meters: Mapped[float | None] = mapped_column(Float)
    current_fuel_percent: Mapped[float | None] = mapped_column(Float)
    rental_uris: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_reported: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # GBFS vehicle_equipment values; None: not reported, []: none (app/vehicle.py).
    vehicle_equipment: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    updated_at: Mapped[datetime] = _now_by_default()


class GeofencingZone(Base):
    __tablename__ = "geofencing_zones"

    id: Mapped[str] = mapped_column(Text, primary_key=True)  # "<provider>:zone-<ordinal>"
    provider_id: Mapped[str] = _provider_fk()
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", 4326, spatial_index=False), nullable=False
    )
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SystemRegion(FeedRecord, Base):
    __tablename__ = "system_regions"

    name: Mapped[str] = mapped_column(Text, nullable=False)


class SyncRun(Base):
    """One sync attempt and its validation report."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index("ix_sync_runs_provider_started", "provider_id", text("started_at DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = _provider_fk(index=False)  # led by the composite index
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, nullable=False)  # succeeded | failed
    error: Mapped[str | None] = mapped_column(Text)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    error_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    warning_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)


class ProviderCredentials(Base):
    """Credentials for a provider's operator API (migration 0005). Never exposed."""

    __tablename__ = "provider_credentials"

    provider_id: Mapped[str] = mapped_column(
        Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    secret: Mapped[dict[str, Any]] = mapped_column(SealedJSON(CREDENTIALS_PURPOSE), nullable=False)
    updated_at: Mapped[datetime] = _now_by_default()

    def __repr__(self) -> str:
        return f"ProviderCredentials({self.provider_id!r}, {self.kind!r})"
