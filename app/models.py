"""ORM models: the system of record. The schema itself changes only through ``migrations/``."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.secret_box import (
    CREDENTIALS_PURPOSE,
    INGEST_SECRET_PURPOSE,
    WEBHOOK_SECRET_PURPOSE,
    SealedJSON,
    SealedText,
)


class Base(DeclarativeBase):
    pass


def _provider_fk(*, index: bool = True) -> Mapped[str]:
    return mapped_column(
        Text, ForeignKey("providers.id", ondelete="CASCADE"), index=index, nullable=False
    )


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(Text, primary_key=True)  # slug, e.g. "getaround-stavanger"
    name: Mapped[str] = mapped_column(Text, nullable=False)
    adapter: Mapped[str] = mapped_column(Text, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
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
    private_to: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organisations.id", ondelete="RESTRICT")
    )


class VehicleType(Base):
    __tablename__ = "vehicle_types"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider_id: Mapped[str] = _provider_fk()
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
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


class PricingPlan(Base):
    __tablename__ = "pricing_plans"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider_id: Mapped[str] = _provider_fk()
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(CHAR(3), nullable=False)
    price_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    is_taxable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    per_km_pricing: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    per_min_pricing: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    surge_pricing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    url: Mapped[str | None] = mapped_column(Text)


class Station(Base):
    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider_id: Mapped[str] = _provider_fk()
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
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
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Vehicle(Base):
    """Current snapshot of one vehicle; ``pricing_plan_id`` is the effective plan."""

    __tablename__ = "vehicles"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider_id: Mapped[str] = _provider_fk()
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
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
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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


class SystemRegion(Base):
    __tablename__ = "system_regions"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider_id: Mapped[str] = _provider_fk()
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
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


class StaffToken(Base):
    """A staff API token (migration 0005): only its SHA-256 hash is stored."""

    __tablename__ = "staff_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    prefix: Mapped[str] = mapped_column(Text, nullable=False)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    role: Mapped[str] = mapped_column(Text, nullable=False, default="ADMIN")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProviderCredentials(Base):
    """Credentials for a provider's operator API (migration 0005). Never exposed."""

    __tablename__ = "provider_credentials"

    provider_id: Mapped[str] = mapped_column(
        Text, ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    secret: Mapped[dict[str, Any]] = mapped_column(SealedJSON(CREDENTIALS_PURPOSE), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def __repr__(self) -> str:
        return f"ProviderCredentials({self.provider_id!r}, {self.kind!r})"


class User(Base):
    """A rider's account (migration 0007). ``password_hash`` is NULL for accounts that only
    sign in through the external identity provider (``external_subject`` is then set)."""

    __tablename__ = "users"
    __table_args__ = (Index("ux_users_email", text("lower(email)"), unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    # Stored as given; unique case-insensitively (index on lower(email), migration 0007).
    email: Mapped[str] = mapped_column(Text, nullable=False)
    password_hash: Mapped[str | None] = mapped_column(Text)
    # "<issuer>|<sub>" of an external identity provider's token.
    external_subject: Mapped[str | None] = mapped_column(Text, unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    birth_date: Mapped[date | None] = mapped_column(Date)
    licence_status: Mapped[str] = mapped_column(Text, nullable=False, default="UNVERIFIED")
    licence_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RefreshToken(Base):
    """One refresh token (only its SHA-256 hash). Rotation: using one marks it used and issues
    its successor in the same family; presenting a used one again revokes the whole family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


#: The booking states that hold a vehicle, as the database knows them: migration 0008's unique
#: partial index ``ux_bookings_active_vehicle`` is built over them. The booking domain's state
#: machine (app/booking/states.ACTIVE) is checked against this at import; the sync and push
#: paths read it here, so they need nothing of the booking domain.
ACTIVE_BOOKING_STATES: tuple[str, ...] = ("PENDING", "CONFIRMED", "STARTED", "PAUSED")


class Booking(Base):
    """One booking of one vehicle by one rider (migration 0008). PostgreSQL is the arbiter of
    "one active booking per vehicle": a unique partial index over ``vehicle_id`` for the active
    states (app/booking/states.ACTIVE). ``provider_id`` has no foreign key on purpose: deleting
    a provider must not delete (or be blocked by) riders' booking history."""

    __tablename__ = "bookings"
    __table_args__ = (
        Index(
            "ux_bookings_active_vehicle",
            "vehicle_id",
            unique=True,
            postgresql_where=text(
                "state IN (" + ", ".join(f"'{s}'" for s in ACTIVE_BOOKING_STATES) + ")"
            ),
        ),
        Index("ix_bookings_user_created", "user_id", text("created_at DESC")),
        Index(
            "ix_bookings_open",
            "state",
            "updated_at",
            postgresql_where=text("state IN ('PENDING', 'CONFIRMED')"),
        ),
        Index(
            "ix_bookings_reconcile",
            "reconcile_after",
            postgresql_where=text("reconcile_after IS NOT NULL"),
        ),
        Index(
            "ix_bookings_organisation_created",
            "organisation_id",
            "created_at",
            postgresql_where=text("organisation_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT"), nullable=False
    )
    provider_id: Mapped[str] = mapped_column(Text, nullable=False)
    vehicle_id: Mapped[str] = mapped_column(Text, nullable=False)  # public "<provider>:<ext>"
    vehicle_external_id: Mapped[str] = mapped_column(Text, nullable=False)
    vehicle_type_id: Mapped[str | None] = mapped_column(Text)
    form_factor: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(Text, nullable=False)
    # The operator's side: its booking and leg ids, as soon as they are known (before the
    # call that makes them binding, so a crash can be reconciled by asking the operator).
    operator_booking_id: Mapped[str | None] = mapped_column(Text)
    operator_leg_id: Mapped[str | None] = mapped_column(Text)
    # The pricing plan as it was at reservation (GBFS shape, minor units): the final price
    # uses it even if the operator changes its plans meanwhile.
    pricing_plan: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The vehicle type's CO2 per km at reservation, for usage reports (migration 0013).
    co2_grams_per_km: Mapped[float | None] = mapped_column(Float)
    currency: Mapped[str | None] = mapped_column(CHAR(3))
    estimated_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    final_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    start_lat: Mapped[float | None] = mapped_column(Float)
    start_lon: Mapped[float | None] = mapped_column(Float)
    end_lat: Mapped[float | None] = mapped_column(Float)
    end_lon: Mapped[float | None] = mapped_column(Float)
    distance_meters: Mapped[float | None] = mapped_column(Float)
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_code: Mapped[str | None] = mapped_column(Text)
    # The reserveVehicle request that created it, so the reconciliation task can record the
    # answer under that request's idempotency key when it settles a booking after a crash.
    idempotency_owner: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    # Booked for an organisation (migration 0010): the rider is the member it is for; who
    # booked it is the member (booker) or API key that asked.
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    cost_centre_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("cost_centres.id", ondelete="SET NULL")
    )
    booked_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    booked_by_api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    # The one change in flight (migration 0011): whoever holds an unexpired lease is the only
    # one who may call the operator for this booking or change its state.
    action_token: Mapped[str | None] = mapped_column(Text)
    action_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when what the operator holds may differ from ours (an action's answer was lost, a
    # compensating cancel is still due): maintenance asks the operator after this time.
    reconcile_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BookingEventRow(Base):
    """Every transition of a booking, with its time and cause (migration 0008)."""

    __tablename__ = "booking_events"
    __table_args__ = (Index("ix_booking_events_booking", "booking_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    event: Mapped[str] = mapped_column(Text, nullable=False)
    from_state: Mapped[str | None] = mapped_column(Text)
    to_state: Mapped[str] = mapped_column(Text, nullable=False)
    # Who or what caused it: "rider", "operator", "expiry", "reconciliation", "compensation"…
    cause: Mapped[str] = mapped_column(Text, nullable=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)


class IdempotencyKey(Base):
    """A mutation's idempotency key (migration 0008): the first request's payload hash and, once
    done, its answer, so the same key and payload replays it. Scoped to the caller."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)

    owner: Mapped[str] = mapped_column(Text, primary_key=True)  # e.g. "user:<uuid>"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    operation: Mapped[str] = mapped_column(Text, nullable=False)
    request_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False)  # IN_PROGRESS | DONE
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # An IN_PROGRESS key whose request died (process killed) is free again after this.
    locked_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


def _org_fk(*, index: bool = False) -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True),
        ForeignKey("organisations.id", ondelete="CASCADE"),
        nullable=False,
        index=index,
    )


class Organisation(Base):
    """A fleet client (migration 0010)."""

    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    timezone: Mapped[str] = mapped_column(Text, nullable=False, default="UTC")
    plan: Mapped[str] = mapped_column(Text, nullable=False, default="STANDARD")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CostCentre(Base):
    __tablename__ = "cost_centres"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    code: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OrganisationMember(Base):
    __tablename__ = "organisation_members"
    __table_args__ = (
        UniqueConstraint("organisation_id", "user_id"),
        Index("ix_organisation_members_user", "user_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    role: Mapped[str] = mapped_column(Text, nullable=False)  # OWNER, ADMIN, BOOKER, RIDER
    cost_centre_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("cost_centres.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Invitation(Base):
    """An invitation by email token: only the token's SHA-256 hash is stored."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_organisation", "organisation_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    email: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    cost_centre_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("cost_centres.id", ondelete="SET NULL")
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A server-to-server key of one organisation: only its SHA-256 hash is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_organisation", "organisation_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    prefix: Mapped[str] = mapped_column(Text, nullable=False)  # shown: "mob_live_ab12…"
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_keys.id", ondelete="SET NULL")
    )


class Policy(Base):
    """An organisation's travel policy; with ``cost_centre_id`` the cost centre's override.
    A NULL rule is no restriction."""

    __tablename__ = "policies"
    __table_args__ = (
        Index(
            "ux_policies_organisation",
            "organisation_id",
            unique=True,
            postgresql_where=text("cost_centre_id IS NULL"),
        ),
        Index(
            "ux_policies_cost_centre",
            "cost_centre_id",
            unique=True,
            postgresql_where=text("cost_centre_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    cost_centre_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("cost_centres.id", ondelete="CASCADE")
    )
    allowed_form_factors: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    allowed_providers: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    max_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(CHAR(3))
    allowed_weekdays: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))  # ISO 1..7
    allowed_from: Mapped[time | None] = mapped_column(Time)
    allowed_until: Mapped[time | None] = mapped_column(Time)
    business_area: Mapped[Any | None] = mapped_column(
        Geometry("MULTIPOLYGON", 4326, spatial_index=False), nullable=True
    )
    monthly_budget_minor: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_organisation", "organisation_id"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    url: Mapped[str] = mapped_column(Text, nullable=False)
    # The signing secret (shown once at creation; needed to sign, so not hashed).
    # Deferred: only a delivery opens it (reading it sealed, per delivery); listing endpoints
    # must work even when this process cannot open it (a key missing from its settings).
    secret: Mapped[str] = mapped_column(
        SealedText(WEBHOOK_SECRET_PURPOSE), nullable=False, deferred=True, deferred_raiseload=True
    )
    events: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def __repr__(self) -> str:
        return f"WebhookEndpoint({self.id}, {self.url!r})"


class OutboxEvent(Base):
    """An organisation event, written in the transaction of the change it reports."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index(
            "ix_outbox_events_undispatched",
            "id",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        Index(
            "ix_outbox_events_dispatched",
            "dispatched_at",
            postgresql_where=text("dispatched_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'PENDING'"),
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("outbox_events.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(Text, nullable=False)  # PENDING, DELIVERED, FAILED
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_response: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Retries run for 24 h from here (migration 0012): creation, or the last replay.
    window_opened_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
