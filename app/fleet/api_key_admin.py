"""Managing an organisation's API keys: create, list, rotate, revoke.

Only the organisation's OWNER and ADMIN members manage keys; an API key never does (a leaked
key must not be able to mint more keys, or revoke the organisation's others). A key's secret
exists only in the answer to ``create_api_key`` / ``rotate_api_key``: the row keeps its SHA-256
and a short visible prefix (app/fleet/api_keys.py).

Revocation and expiry are read on every request (``verify_api_key``), so they take effect at the
next request. Rotation gives the old key an overlap window (its expiry moved to at most
now + overlap) so that an integration can deploy the new key before the old one stops working.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.fleet.api_keys import LIVE_PREFIX, SHOWN_CHARS, key_hash, new_key
from app.fleet.principal import OrgActor, OrgNotFound, Scope
from app.models import ApiKey
from app.platform.db import in_session, in_transaction
from app.platform.errors import InvalidInput

__all__ = [
    "DEFAULT_OVERLAP_SECONDS",
    "MAX_NAME_LENGTH",
    "MAX_OVERLAP_SECONDS",
    "ApiKeyAdmin",
    "create_api_key",
    "get_api_key",
    "list_api_keys",
    "organisation_of_key",
    "revoke_api_key",
    "rotate_api_key",
]

MAX_NAME_LENGTH = 100
DEFAULT_OVERLAP_SECONDS = 24 * 3600
MAX_OVERLAP_SECONDS = 7 * 24 * 3600


def _require_key_admin(actor: OrgActor) -> None:
    actor.require_admin(
        api_keys="API keys cannot manage API keys; sign in as an OWNER or ADMIN",
        members="managing API keys needs the OWNER or ADMIN role in the organisation",
    )


def _name(value: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidInput(
            f"an API key's name must be 1-{MAX_NAME_LENGTH} characters", code="INVALID_NAME"
        )
    return value


def _scopes(values: Iterable[Scope | str]) -> list[str]:
    wanted: set[Scope] = set()
    for value in values:
        try:
            wanted.add(Scope(value))
        except ValueError:
            raise InvalidInput(f"unknown scope {value!r}", code="INVALID_SCOPES") from None
    if not wanted:
        raise InvalidInput("give an API key at least one scope", code="INVALID_SCOPES")
    # Stored in the enum's order: lists and comparisons do not depend on how they were given.
    return [s.value for s in Scope if s in wanted]


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


async def create_api_key(
    session: AsyncSession,
    actor: OrgActor,
    *,
    name: str,
    scopes: Iterable[Scope | str],
    expires_at: datetime | None,
    live: bool,
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key of the actor's organisation: (its row, the key itself: shown this once)."""
    _require_key_admin(actor)
    now = _now(now)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InvalidInput("expiresAt needs a time zone", code="INVALID_EXPIRY")
        if expires_at <= now:
            raise InvalidInput("expiresAt must be in the future", code="INVALID_EXPIRY")
    return await _insert(
        session,
        actor,
        name=_name(name),
        scopes=_scopes(scopes),
        expires_at=expires_at,
        live=live,
        now=now,
    )


async def _insert(
    session: AsyncSession,
    actor: OrgActor,
    *,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    live: bool,
    now: datetime,
) -> tuple[ApiKey, str]:
    secret = new_key(live=live)
    row = ApiKey(
        organisation_id=actor.organisation_id,
        name=name,
        prefix=secret[:SHOWN_CHARS],
        key_hash=key_hash(secret),
        scopes=scopes,
        created_by=actor.user_id,
        # Set here, not by the server default: the caller reads it back without a refresh.
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row, secret


async def list_api_keys(session: AsyncSession, actor: OrgActor) -> list[ApiKey]:
    """Every key of the organisation, newest first, revoked and expired ones included (an
    admin wants to see what was retired and when)."""
    _require_key_admin(actor)
    rows = await session.execute(
        select(ApiKey)
        .where(ApiKey.organisation_id == actor.organisation_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return list(rows.scalars())


async def organisation_of_key(session: AsyncSession, key_id: uuid.UUID) -> uuid.UUID | None:
    """The organisation a key belongs to, to resolve who may act on it; None when unknown.
    Callers answer "not found" for both an unknown key and one they may not see."""
    found = await session.execute(select(ApiKey.organisation_id).where(ApiKey.id == key_id))
    return found.scalar_one_or_none()


async def get_api_key(
    session: AsyncSession, actor: OrgActor, key_id: uuid.UUID, *, for_update: bool = False
) -> ApiKey:
    _require_key_admin(actor)
    query = select(ApiKey).where(
        ApiKey.id == key_id, ApiKey.organisation_id == actor.organisation_id
    )
    if for_update:
        # Two concurrent rotations of one key must not both mint a replacement.
        query = query.with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise OrgNotFound(f"no API key {key_id}")
    return row


async def revoke_api_key(
    session: AsyncSession, actor: OrgActor, key_id: uuid.UUID, *, now: datetime | None = None
) -> ApiKey:
    """Stops the key at once. Revoking a revoked key keeps the first revocation time."""
    row = await get_api_key(session, actor, key_id, for_update=True)
    if row.revoked_at is None:
        row.revoked_at = _now(now)
        await session.flush()
    return row


async def rotate_api_key(
    session: AsyncSession,
    actor: OrgActor,
    key_id: uuid.UUID,
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS,
    *,
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A replacement with the same name and scopes: (its row, its secret, shown once). The old
    key works until ``now + overlap`` (or its own earlier expiry) and records its replacement.
    The replacement gets the lifetime the old key was created with, counted from now, so a
    rotation policy ("keys live 90 days") carries over; it is live or test as the old one was.
    """
    if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise InvalidInput(
            f"overlapSeconds must be between 0 and {MAX_OVERLAP_SECONDS}",
            code="INVALID_OVERLAP",
        )
    now = _now(now)
    old = await get_api_key(session, actor, key_id, for_update=True)
    if old.revoked_at is not None:
        raise InvalidInput("this API key was revoked; create a new one", code="API_KEY_REVOKED")
    if old.expires_at is not None and old.expires_at <= now:
        raise InvalidInput("this API key has expired; create a new one", code="API_KEY_EXPIRED")
    if old.replaced_by is not None:
        raise InvalidInput(
            "this API key was rotated already; rotate its replacement", code="API_KEY_REPLACED"
        )
    lifetime = old.expires_at - old.created_at if old.expires_at is not None else None
    row, secret = await _insert(
        session,
        actor,
        name=old.name,
        scopes=list(old.scopes),
        expires_at=now + lifetime if lifetime is not None else None,
        live=old.prefix.startswith(LIVE_PREFIX),
        now=now,
    )
    overlap_end = now + timedelta(seconds=overlap_seconds)
    old.expires_at = overlap_end if old.expires_at is None else min(old.expires_at, overlap_end)
    old.replaced_by = row.id
    await session.flush()
    return row, secret


class ApiKeyAdmin:
    """The functions above as the API calls them (their arguments after the session): each
    change one transaction of its own, each read one short session."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.organisation_of = in_session(sessions, organisation_of_key)
        self.of_organisation = in_session(sessions, list_api_keys)
        self.create = in_transaction(sessions, create_api_key)
        self.rotate = in_transaction(sessions, rotate_api_key)
        self.revoke = in_transaction(sessions, revoke_api_key)
