"""Who signs in: staff tokens, riders (users) and their refresh tokens."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Index, LargeBinary, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, _now_by_default, _uuid_pk, _uuid_ref


class StaffToken(Base):
    """A staff API token (migration 0005): only its SHA-256 hash is stored."""

    __tablename__ = "staff_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    prefix: Mapped[str] = mapped_column(Text, nullable=False)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    role: Mapped[str] = mapped_column(Text, nullable=False, default="ADMIN")
    created_at: Mapped[datetime] = _now_by_default()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class User(Base):
    """A rider's account (migration 0007). ``password_hash`` is NULL for accounts that only
    sign in through the external identity provider (``external_subject`` is then set)."""

    __tablename__ = "users"
    __table_args__ = (Index("ux_users_email", text("lower(email)"), unique=True),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    # Stored as given; unique case-insensitively (index on lower(email), migration 0007).
    email: Mapped[str] = mapped_column(Text, nullable=False)
    password_hash: Mapped[str | None] = mapped_column(Text)
    # "<issuer>|<sub>" of an external identity provider's token.
    external_subject: Mapped[str | None] = mapped_column(Text, unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    birth_date: Mapped[date | None] = mapped_column(Date)
    licence_status: Mapped[str] = mapped_column(Text, nullable=False, default="UNVERIFIED")
    licence_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now_by_default()


class RefreshToken(Base):
    """One refresh token (only its SHA-256 hash). Rotation: using one marks it used and issues
    its successor in the same family; presenting a used one again revokes the whole family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = _uuid_ref("users.id", ondelete="CASCADE", index=True)
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    created_at: Mapped[datetime] = _now_by_default()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
