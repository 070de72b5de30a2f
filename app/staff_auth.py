"""Staff API tokens: who may administer providers.

A token looks like ``mob_staff_<43 url-safe characters>_<6-character checksum>``: the prefix
makes a leaked token recognisable (secret scanners, logs), the checksum lets us refuse a
mistyped one without a database read. Only the SHA-256 of the whole token is stored; the first
characters (``prefix``) are kept to tell tokens apart in lists. ``mobility staff-token create``
shows a new token once.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import StaffToken
from app.platform.errors import DomainError, InvalidInput

TOKEN_PREFIX = "mob_staff_"
# Characters of a token kept in clear (prefix plus the start of the random part).
SHOWN_CHARS = len(TOKEN_PREFIX) + 6


class Role(StrEnum):
    ADMIN = "ADMIN"


class Forbidden(DomainError):
    code = "FORBIDDEN"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is calling: anonymous, or a staff token's name and role."""

    name: str | None = None
    role: Role | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


ANONYMOUS = Viewer()


def _checksum(body: str) -> str:
    return f"{zlib.crc32(body.encode()) & 0xFFFFFFFF:08x}"[:6]


def new_token() -> str:
    body = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return f"{body}_{_checksum(body)}"


def well_formed(token: str) -> bool:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return False
    body, _, check = token.rpartition("_")
    return bool(body) and secrets.compare_digest(check, _checksum(body))


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_token(session: AsyncSession, name: str) -> tuple[StaffToken, str]:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a token name is 1-100 characters", code="INVALID_TOKEN_NAME")
    token = new_token()
    row = StaffToken(name=name, prefix=token[:SHOWN_CHARS], token_hash=token_hash(token))
    session.add(row)
    await session.flush()
    return row, token


async def revoke_token(session: AsyncSession, token_id: int) -> bool:
    result = await session.execute(
        update(StaffToken)
        .where(StaffToken.id == token_id, StaffToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def viewer_for(session: AsyncSession, authorization: str | None) -> Viewer:
    """The viewer an ``Authorization`` header names. Anything but a valid, unrevoked staff
    token is anonymous (the caller then gets FORBIDDEN where a role is required)."""
    if not authorization:
        return ANONYMOUS
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not well_formed(token):
        return ANONYMOUS
    row = (
        await session.scalars(
            select(StaffToken).where(
                StaffToken.token_hash == token_hash(token), StaffToken.revoked_at.is_(None)
            )
        )
    ).one_or_none()
    if row is None:
        return ANONYMOUS
    row.last_used_at = datetime.now(UTC)
    await session.flush()
    return Viewer(name=row.name, role=Role(row.role))
