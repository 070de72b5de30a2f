"""The declarative base and the column helpers the models share."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _provider_fk(*, index: bool = True) -> Mapped[str]:
    return mapped_column(
        Text, ForeignKey("providers.id", ondelete="CASCADE"), index=index, nullable=False
    )


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


def _now_by_default() -> Mapped[datetime]:
    """A time the database stamps when the row is inserted (``created_at``, and an
    ``updated_at`` the code moves on from there)."""
    return mapped_column(DateTime(timezone=True), server_default=func.now())
