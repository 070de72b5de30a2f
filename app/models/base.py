"""The declarative base and the column helpers the models share."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column


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


def _uuid_ref(target: str, *, ondelete: str, index: bool | None = None) -> MappedColumn[Any]:
    """A reference to a UUID-keyed row (``target``, e.g. ``"users.id"``), of its key's type;
    whether it may be NULL is what its ``Mapped[...]`` annotation says."""
    return mapped_column(UUID(as_uuid=True), ForeignKey(target, ondelete=ondelete), index=index)


def _org_fk() -> MappedColumn[Any]:
    """The organisation a row belongs to: it goes with it."""
    return _uuid_ref("organisations.id", ondelete="CASCADE", index=False)


def _now_by_default() -> Mapped[datetime]:
    """A time the database stamps when the row is inserted (``created_at``, and an
    ``updated_at`` the code moves on from there)."""
    return mapped_column(DateTime(timezone=True), server_default=func.now())
