"""Idempotency keys for booking mutations, stored in PostgreSQL (the system of record).

A key is scoped to its caller (``owner``). The first request with a key claims it
(``IN_PROGRESS``, with a lock that lapses if the process dies); when it is done its answer is
stored (``DONE``) in the same transaction as the booking change it made, so an answer is never
recorded for a change that was rolled back, nor a change made without its answer. Then:

- the same key with the same payload replays the stored answer;
- the same key with another payload (or another operation) is ``IDEMPOTENCY_KEY_REUSED``;
- the same key while the first request still runs is ``IDEMPOTENCY_KEY_IN_PROGRESS``;
- a key whose first request failed transiently (operator unreachable) is released, so the
  client's retry with the same key runs again; that is the point of retrying.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import IdempotencyKey
from app.platform.db import transaction
from app.platform.errors import DomainError, InvalidInput

__all__ = [
    "Claimed",
    "IdempotencyKeyInProgress",
    "IdempotencyKeyReused",
    "Replay",
    "claim",
    "complete",
    "forget_expired",
    "release",
    "request_hash",
    "settle_orphan",
]

_KEY = re.compile(r"^[A-Za-z0-9._:\-]{8,200}$")


class IdempotencyKeyReused(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInProgress(DomainError):
    code = "IDEMPOTENCY_KEY_IN_PROGRESS"


@dataclass(frozen=True, slots=True)
class Claimed:
    owner: str
    key: str


@dataclass(frozen=True, slots=True)
class Replay:
    response: dict[str, Any]


def request_hash(operation: str, payload: Mapping[str, Any]) -> bytes:
    """Canonical hash of what was asked: same operation and arguments, same hash."""
    body = orjson.dumps({"op": operation, "args": payload}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).digest()


def check_key(key: str) -> None:
    if not _KEY.match(key):
        raise InvalidInput(
            "idempotencyKey must be 8 to 200 characters of letters, digits and . _ : - "
            "(a UUID is a good choice)",
            code="INVALID_IDEMPOTENCY_KEY",
        )


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    *,
    owner: str,
    key: str,
    operation: str,
    payload: Mapping[str, Any],
    now: datetime,
    lock_seconds: float,
    ttl_seconds: float,
) -> Claimed | Replay:
    """Claim ``key`` for this request, or say what the earlier request with it answered."""
    check_key(key)
    digest = request_hash(operation, payload)
    values = {
        "owner": owner,
        "key": key,
        "operation": operation,
        "request_hash": digest,
        "status": "IN_PROGRESS",
        "response": None,
        "created_at": now,
        "locked_until": now + timedelta(seconds=lock_seconds),
        "expires_at": now + timedelta(seconds=ttl_seconds),
    }
    async with transaction(sessions) as session:
        inserted = await session.execute(
            insert(IdempotencyKey)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(IdempotencyKey.key)
        )
        if inserted.first() is not None:
            return Claimed(owner, key)
        row = (
            await session.execute(
                select(IdempotencyKey)
                .where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
                .with_for_update()
            )
        ).scalar_one()
        if row.expires_at <= now:
            # Forgotten: the key starts a new life (the sweep had not deleted it yet).
            await _take(session, owner, key, values)
            return Claimed(owner, key)
        if row.request_hash != digest or row.operation != operation:
            raise IdempotencyKeyReused(
                f"idempotency key {key!r} was used for a different request "
                f"({row.operation}); use a new key for a new request"
            )
        if row.status == "DONE" and row.response is not None:
            return Replay(row.response)
        if row.locked_until > now:
            raise IdempotencyKeyInProgress(
                f"a request with idempotency key {key!r} is still being processed; "
                "retry in a few seconds"
            )
        # The first request died (process killed) without finishing: this one takes over.
        await _take(session, owner, key, values)
        return Claimed(owner, key)


async def _take(session: AsyncSession, owner: str, key: str, values: dict[str, Any]) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
        .values(**{k: v for k, v in values.items() if k not in ("owner", "key")})
    )


async def complete(session: AsyncSession, claimed: Claimed, response: dict[str, Any]) -> None:
    """Record the answer, inside the caller's transaction (the one making the change)."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.owner == claimed.owner, IdempotencyKey.key == claimed.key)
        .values(status="DONE", response=response)
    )


async def release(sessions: async_sessionmaker[AsyncSession], claimed: Claimed) -> None:
    """Forget the key: its request changed nothing lasting, and may be retried with it."""
    async with transaction(sessions) as session:
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.owner == claimed.owner,
                IdempotencyKey.key == claimed.key,
                IdempotencyKey.status == "IN_PROGRESS",
            )
        )


async def settle_orphan(
    session: AsyncSession,
    claimed: Claimed,
    *,
    claimed_at: datetime,
    response: dict[str, Any] | None,
) -> bool:
    """Answer (``response``) or forget (None) the key of a request that died mid-way, inside the
    caller's transaction, unless a retry has taken the key over since ``claimed_at`` (when the
    dead request claimed it): a take-over restarts ``created_at``, and that retry, still running
    or already answered, owns the key now. True when the key was settled here."""
    mine = (
        IdempotencyKey.owner == claimed.owner,
        IdempotencyKey.key == claimed.key,
        IdempotencyKey.status == "IN_PROGRESS",
        # The very claim that made the booking (claimed and booked at the same instant).
        IdempotencyKey.created_at == claimed_at,
    )
    if response is None:
        result = await session.execute(
            delete(IdempotencyKey).where(*mine).returning(IdempotencyKey.key)
        )
    else:
        result = await session.execute(
            update(IdempotencyKey)
            .where(*mine)
            .values(status="DONE", response=response)
            .returning(IdempotencyKey.key)
        )
    return result.first() is not None


async def forget_expired(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now).returning(IdempotencyKey.key)
    )
    return len(result.all())
