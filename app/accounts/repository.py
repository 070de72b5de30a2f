"""The accounts service's SQL: users and refresh tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import Exists

from app.models import RefreshToken, User


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    # lower() on both sides, in PostgreSQL: the same function the unique index is built on.
    return (
        await session.scalars(select(User).where(func.lower(User.email) == func.lower(email)))
    ).one_or_none()


async def user_by_external_subject(session: AsyncSession, subject: str) -> User | None:
    return (
        await session.scalars(select(User).where(User.external_subject == subject))
    ).one_or_none()


async def insert_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str,
    display_name: str | None,
    birth_date: date | None,
) -> User:
    """Raises IntegrityError (unique index ``ux_users_email``) when the email is taken."""
    user = User(
        email=email,
        password_hash=password_hash,
        display_name=display_name,
        birth_date=birth_date,
    )
    # A savepoint: the duplicate's error leaves the caller's transaction usable.
    async with session.begin_nested():
        session.add(user)
        await session.flush()
    return user


async def insert_external_user(
    session: AsyncSession, *, external_subject: str, email: str, display_name: str | None
) -> User | None:
    """The new user, or None when a concurrent request created the same subject first or the
    email belongs to another account (either unique index)."""
    row = (
        await session.execute(
            insert(User)
            .values(email=email, external_subject=external_subject, display_name=display_name)
            .on_conflict_do_nothing()
            .returning(User.id)
        )
    ).scalar_one_or_none()
    return None if row is None else await session.get(User, row)


async def set_password_hash(session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.execute(
        update(User).where(User.id == user_id).values(password_hash=password_hash)
    )


async def set_licence_status(
    session: AsyncSession, user_id: uuid.UUID, status: str, now: datetime
) -> User | None:
    user_id_row = (
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(licence_status=status, licence_updated_at=now)
            .returning(User.id)
        )
    ).scalar_one_or_none()
    if user_id_row is None:
        return None
    return await session.get(User, user_id, populate_existing=True)


async def insert_refresh_token(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    token_hash: bytes,
    expires_at: datetime,
) -> None:
    session.add(
        RefreshToken(
            user_id=user_id, family_id=family_id, token_hash=token_hash, expires_at=expires_at
        )
    )
    await session.flush()


@dataclass(frozen=True, slots=True)
class ClaimedToken:
    user_id: uuid.UUID
    family_id: uuid.UUID


def _family_revoked(token: type[RefreshToken]) -> Exists:
    sibling = aliased(RefreshToken)
    return exists().where(sibling.family_id == token.family_id, sibling.revoked_at.is_not(None))


async def claim_refresh_token(
    session: AsyncSession, token_hash: bytes, now: datetime
) -> ClaimedToken | None:
    """Mark an unused, unexpired token of a live family used, in one statement.

    Two concurrent claims of one token: the second UPDATE waits for the first's row lock and,
    once the first commits, re-reads ``used_at`` and matches nothing — only one can win.
    A family counts as revoked when any of its tokens is, so a successor inserted while the
    family was being revoked is dead all the same.
    """
    row = (
        await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
                ~_family_revoked(RefreshToken),
            )
            .values(used_at=now)
            .returning(RefreshToken.user_id, RefreshToken.family_id)
        )
    ).one_or_none()
    return None if row is None else ClaimedToken(user_id=row.user_id, family_id=row.family_id)


@dataclass(frozen=True, slots=True)
class TokenState:
    family_id: uuid.UUID
    used: bool
    expired: bool
    family_revoked: bool


async def refresh_token_state(
    session: AsyncSession, token_hash: bytes, now: datetime
) -> TokenState | None:
    row = (
        await session.execute(
            select(
                RefreshToken.family_id,
                RefreshToken.used_at.is_not(None).label("used"),
                (RefreshToken.expires_at <= now).label("expired"),
                _family_revoked(RefreshToken).label("family_revoked"),
            ).where(RefreshToken.token_hash == token_hash)
        )
    ).one_or_none()
    if row is None:
        return None
    return TokenState(
        family_id=row.family_id,
        used=bool(row.used),
        expired=bool(row.expired),
        family_revoked=bool(row.family_revoked),
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> int:
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def family_of(session: AsyncSession, token_hash: bytes) -> uuid.UUID | None:
    return (
        await session.execute(
            select(RefreshToken.family_id).where(RefreshToken.token_hash == token_hash)
        )
    ).scalar_one_or_none()
