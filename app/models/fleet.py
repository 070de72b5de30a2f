"""B2B fleet clients: organisations, cost centres, members, invitations, API keys, policies,
webhook endpoints, the outbox and webhook deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, _now_by_default, _org_fk, _uuid_pk, _uuid_ref
from app.platform.secret_box import (
    WEBHOOK_SECRET_PURPOSE,
    SealedText,
)


class OrganisationOwned:
    """A row that belongs to one organisation and goes with it (the key cascades)."""

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()


class Organisation(Base):
    """A fleet client (migration 0010)."""

    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    timezone: Mapped[str] = mapped_column(Text, nullable=False, default="UTC")
    plan: Mapped[str] = mapped_column(Text, nullable=False, default="STANDARD")
    created_at: Mapped[datetime] = _now_by_default()


class CostCentre(OrganisationOwned, Base):
    __tablename__ = "cost_centres"
    __table_args__ = (UniqueConstraint("organisation_id", "code"),)

    code: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _now_by_default()


class OrganisationMember(OrganisationOwned, Base):
    __tablename__ = "organisation_members"
    __table_args__ = (
        UniqueConstraint("organisation_id", "user_id"),
        Index("ix_organisation_members_user", "user_id"),
    )

    user_id: Mapped[uuid.UUID] = _uuid_ref("users.id", ondelete="CASCADE")
    role: Mapped[str] = mapped_column(Text, nullable=False)  # OWNER, ADMIN, BOOKER, RIDER
    cost_centre_id: Mapped[uuid.UUID | None] = _uuid_ref("cost_centres.id", ondelete="SET NULL")
    created_at: Mapped[datetime] = _now_by_default()


class Invitation(OrganisationOwned, Base):
    """An invitation by email token: only the token's SHA-256 hash is stored."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_organisation", "organisation_id"),)

    email: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    cost_centre_id: Mapped[uuid.UUID | None] = _uuid_ref("cost_centres.id", ondelete="SET NULL")
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    invited_by: Mapped[uuid.UUID | None] = _uuid_ref("users.id", ondelete="SET NULL")
    created_at: Mapped[datetime] = _now_by_default()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by: Mapped[uuid.UUID | None] = _uuid_ref("users.id", ondelete="SET NULL")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(OrganisationOwned, Base):
    """A server-to-server key of one organisation: only its SHA-256 hash is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_organisation", "organisation_id"),)

    name: Mapped[str] = mapped_column(Text, nullable=False)
    prefix: Mapped[str] = mapped_column(Text, nullable=False)  # shown: "mob_live_ab12…"
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    created_by: Mapped[uuid.UUID | None] = _uuid_ref("users.id", ondelete="SET NULL")
    created_at: Mapped[datetime] = _now_by_default()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by: Mapped[uuid.UUID | None] = _uuid_ref("api_keys.id", ondelete="SET NULL")


class Policy(OrganisationOwned, Base):
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

    cost_centre_id: Mapped[uuid.UUID | None] = _uuid_ref("cost_centres.id", ondelete="CASCADE")
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
    updated_at: Mapped[datetime] = _now_by_default()


class WebhookEndpoint(OrganisationOwned, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_organisation", "organisation_id"),)

    url: Mapped[str] = mapped_column(Text, nullable=False)
    # The signing secret (shown once at creation; needed to sign, so not hashed).
    # Deferred: only a delivery opens it (reading it sealed, per delivery); listing endpoints
    # must work even when this process cannot open it (a key missing from its settings).
    secret: Mapped[str] = mapped_column(
        SealedText(WEBHOOK_SECRET_PURPOSE), nullable=False, deferred=True, deferred_raiseload=True
    )
    events: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = _now_by_default()

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
    created_at: Mapped[datetime] = _now_by_default()
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The API request whose change this reports (app/platform/request_id.py), if one did: its
    # webhook deliveries log with it (migration 0015).
    request_id: Mapped[str | None] = mapped_column(Text)


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
    endpoint_id: Mapped[uuid.UUID] = _uuid_ref("webhook_endpoints.id", ondelete="CASCADE")
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
    created_at: Mapped[datetime] = _now_by_default()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Retries run for 24 h from here (migration 0012): creation, or the last replay.
    window_opened_at: Mapped[datetime] = _now_by_default()
