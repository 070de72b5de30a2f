"""Organisation API keys: the format and the check of a presented key.

A key looks like ``mob_live_<43 url-safe characters>_<6-character checksum>`` (``mob_test_`` outside
production): the prefix makes a leaked key recognisable to secret scanners and in logs, the
checksum lets a mistyped key be refused without a database read. Only the SHA-256 of the whole
key is stored, plus its first characters (``prefix``) to tell keys apart in lists. A key is
shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.fleet.principal import ApiKeyPrincipal, Scope
from app.models import ApiKey, Organisation
from app.platform.errors import DomainError

__all__ = [
    "KEY_PREFIXES",
    "LIVE_PREFIX",
    "SHOWN_CHARS",
    "TEST_PREFIX",
    "InvalidApiKey",
    "is_api_key",
    "key_hash",
    "new_key",
    "verify_api_key",
    "well_formed",
]

LIVE_PREFIX = "mob_live_"
TEST_PREFIX = "mob_test_"
KEY_PREFIXES = (LIVE_PREFIX, TEST_PREFIX)
SHOWN_CHARS = len(LIVE_PREFIX) + 6
# last_used_at is written at most this often per key: a busy integration must not turn every
# request into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class InvalidApiKey(DomainError):
    """Unknown, malformed, revoked or expired: one code, so a caller learns nothing about which
    keys exist; the message says which when the key was ours."""

    code = "INVALID_API_KEY"


def _checksum(body: str) -> str:
    return f"{zlib.crc32(body.encode()) & 0xFFFFFFFF:08x}"[:6]


def new_key(*, live: bool) -> str:
    body = (LIVE_PREFIX if live else TEST_PREFIX) + secrets.token_urlsafe(32)
    return f"{body}_{_checksum(body)}"


def is_api_key(token: str) -> bool:
    """Looks like one of our API keys (whether or not it is valid)."""
    return token.startswith(KEY_PREFIXES)


def well_formed(token: str) -> bool:
    if not is_api_key(token) or len(token) > 200:
        return False
    body, _, check = token.rpartition("_")
    return bool(body) and secrets.compare_digest(check, _checksum(body))


def key_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def verify_api_key(session: AsyncSession, token: str, now: datetime) -> ApiKeyPrincipal:
    """The principal a presented key stands for; :class:`InvalidApiKey` otherwise. Revocation
    and expiry take effect at once: every request reads the key's row."""
    if not well_formed(token):
        raise InvalidApiKey("not a valid API key (check it was copied whole)")
    row = (
        await session.execute(
            select(ApiKey, Organisation.plan)
            .join(Organisation, Organisation.id == ApiKey.organisation_id)
            .where(ApiKey.key_hash == key_hash(token))
        )
    ).first()
    if row is None:
        raise InvalidApiKey("unknown API key")
    key, plan = row
    if key.revoked_at is not None and key.revoked_at <= now:
        raise InvalidApiKey("this API key was revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise InvalidApiKey("this API key has expired")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    return ApiKeyPrincipal(
        key_id=key.id,
        organisation_id=key.organisation_id,
        scopes=frozenset(Scope(s) for s in key.scopes if s in Scope._value2member_map_),
        plan=plan,
    )
