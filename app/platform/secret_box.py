"""Secrets we must be able to read back, sealed at rest with AES-256-GCM.

Some secrets cannot be hashed because we use them: an operator's API credentials (we send
them), a webhook endpoint's signing secret and a provider's push ingest secret (we compute
HMACs with them). They are stored sealed, so a database dump, a backup or a read-only SQL
injection does not hand them out: ``sb1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``.

Keys come from ``MOBILITY_SECRETS_KEYS``: comma-separated, each 32 random bytes in base64url
(``mobility secrets new-key`` prints one). The first seals; every one listed opens. A key is
rotated in phases, each rolled out to every process: add the new key second (all can open
it), move it first (all seal with it), run ``mobility secrets reseal`` (every stored secret
re-sealed with it), drop the old one. Production refuses to start
without keys; development and tests use a fixed development key, so their databases stay
readable across restarts (and are worthless to anyone who knows it, which is everyone).

Values stored before sealing existed (plain text) still read as they are; ``reseal`` seals
them. The database columns use the :class:`SealedText` and :class:`SealedJSON` types, so the
ORM and SQLAlchemy Core selects seal and open transparently; raw driver reads call
:func:`current` themselves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Callable
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text, TypeDecorator

from app.platform.settings import Settings

__all__ = [
    "CREDENTIALS_PURPOSE",
    "INGEST_SECRET_PURPOSE",
    "PREFIX",
    "WEBHOOK_SECRET_PURPOSE",
    "SealedJSON",
    "SealedText",
    "SecretBox",
    "SecretUnreadable",
    "SecretsMisconfigured",
    "configure",
    "current",
    "new_key",
    "reseal_all",
]

PREFIX = "sb1:"
# Each sealed column's purpose (table.column): a value opens only in the column it was sealed for.
INGEST_SECRET_PURPOSE = "providers.ingest_secret"
WEBHOOK_SECRET_PURPOSE = "webhook_endpoints.secret"
CREDENTIALS_PURPOSE = "provider_credentials.secret"
_NONCE_BYTES = 12
# Public on purpose: only for development and test databases (production refuses it).
_DEVELOPMENT_KEY = hashlib.sha256(b"mobility-aggregator development secrets key").digest()
# Associated data: a sealed value only opens as one of ours, of this format, in the column it
# was sealed for (a value copied into another row's or table's column does not open there).
_AAD = b"mobility-aggregator/secret-box/v1/"


class SecretsMisconfigured(RuntimeError):
    """The secrets keys setting is missing (in production) or malformed."""


class SecretUnreadable(RuntimeError):
    """A stored sealed value that no configured key opens."""


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"key-id:" + key).hexdigest()[:8]


def _decode_key(text: str, position: int) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SecretsMisconfigured(
            f"MOBILITY_SECRETS_KEYS entry {position} is not base64url"
        ) from exc
    if len(key) != 32:
        raise SecretsMisconfigured(
            f"MOBILITY_SECRETS_KEYS entry {position} is {len(key)} bytes; keys are 32 bytes "
            "(mobility secrets new-key prints one)"
        )
    return key


class SecretBox:
    def __init__(self, keys: list[bytes], *, require_sealed: bool = False) -> None:
        """``require_sealed``: refuse values stored unsealed (set it once ``reseal`` has run,
        so a plain value written into a column can never be used as a secret)."""
        self.require_sealed = require_sealed
        if not keys:
            raise SecretsMisconfigured("a secret box needs at least one key")
        ids = [_key_id(k) for k in keys]
        if len(set(ids)) != len(ids):
            raise SecretsMisconfigured("MOBILITY_SECRETS_KEYS lists the same key twice")
        self.sealing_key_id = ids[0]
        self._keys = {key_id: AESGCM(k) for key_id, k in zip(ids, keys, strict=True)}

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        entries = [e.strip() for e in (settings.secrets_keys or "").split(",") if e.strip()]
        if not entries:
            if settings.environment == "production":
                raise SecretsMisconfigured(
                    "MOBILITY_SECRETS_KEYS is required in production: operator credentials "
                    "and signing secrets are sealed with it (mobility secrets new-key)"
                )
            return cls([_DEVELOPMENT_KEY], require_sealed=settings.secrets_require_sealed)
        keys = [_decode_key(entry, i + 1) for i, entry in enumerate(entries)]
        if settings.environment == "production" and _DEVELOPMENT_KEY in keys:
            raise SecretsMisconfigured("the development secrets key cannot be used in production")
        return cls(keys, require_sealed=settings.secrets_require_sealed)

    def seal(self, plaintext: str, purpose: str) -> str:
        """``purpose``: where the value is stored (``table.column``); it opens only there."""
        nonce = os.urandom(_NONCE_BYTES)
        aad = _AAD + purpose.encode()
        sealed = self._keys[self.sealing_key_id].encrypt(nonce, plaintext.encode(), aad)
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}{self.sealing_key_id}:{body}"

    def check_unsealed_allowed(self, purpose: str) -> None:
        """A value stored before sealing may be used only until REQUIRE_SEALED is on."""
        if self.require_sealed:
            raise SecretUnreadable(
                f"a stored secret ({purpose}) is not sealed, and "
                "MOBILITY_SECRETS_REQUIRE_SEALED is on: run `mobility secrets reseal`"
            )

    def open(self, stored: str, purpose: str) -> str:
        """The plaintext of a sealed value; a value stored before sealing, as it is."""
        if not stored.startswith(PREFIX):
            self.check_unsealed_allowed(purpose)
            return stored
        key_id, _, body = stored[len(PREFIX) :].partition(":")
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise SecretUnreadable(
                f"a stored secret ({purpose}) is sealed with key {key_id}, which "
                "MOBILITY_SECRETS_KEYS does not list; add that key back (after the current one)"
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD + purpose.encode())
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise SecretUnreadable(
                f"a stored secret ({purpose}) sealed with key {key_id} is damaged, or was "
                "copied from another column"
            ) from exc
        return plain.decode()

    def is_current(self, stored: str) -> bool:
        """Sealed with the sealing key (nothing for ``reseal`` to do)."""
        return stored.startswith(f"{PREFIX}{self.sealing_key_id}:")


_box: SecretBox | None = None


def configure(settings: Settings) -> SecretBox:
    """Use ``settings``' keys from now on, in this process (start-up: runtime and CLI)."""
    global _box
    _box = SecretBox.from_settings(settings)
    return _box


def current() -> SecretBox:
    """The process's box; built from the environment's settings if nobody configured one."""
    return _box if _box is not None else configure(Settings())


class SealedText(TypeDecorator[str]):
    """A text column holding a sealed secret; the application sees the plaintext.
    ``purpose``: the column, ``table.column``."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else current().seal(value, self.purpose)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else current().open(value, self.purpose)


class SealedJSON(TypeDecorator[dict[str, Any]]):
    """A JSONB column holding a sealed JSON object as ``{"sealed": "sb1:…"}``; the
    application sees the object."""

    impl = JSONB
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(
        self, value: dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        return {"sealed": current().seal(orjson.dumps(value).decode(), self.purpose)}

    def process_result_value(
        self, value: dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        sealed = value.get("sealed") if isinstance(value, dict) else None
        if isinstance(sealed, str) and len(value) == 1:
            opened: dict[str, Any] = orjson.loads(current().open(sealed, self.purpose))
            return opened
        current().check_unsealed_allowed(self.purpose)
        return value  # stored before sealing


# (table, key column, secret column, JSON object?) of every sealed secret.
SEALED_COLUMNS: tuple[tuple[str, str, str, bool], ...] = (
    ("provider_credentials", "provider_id", "secret", True),
    ("webhook_endpoints", "id", "secret", False),
    ("providers", "id", "ingest_secret", False),
)


def _stored_text(value: Any, is_json: bool) -> str | None:
    """The sealed text of a stored value; None for a value stored before sealing."""
    if is_json:
        sealed = value.get("sealed") if isinstance(value, dict) and len(value) == 1 else None
        return sealed if isinstance(sealed, str) else None
    return value if isinstance(value, str) and value.startswith(PREFIX) else None


async def reseal_all(
    session: AsyncSession, box: SecretBox, progress: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Seal every stored secret with ``box``'s sealing key (plain ones and ones sealed with an
    older key), in the caller's transaction; how many were re-sealed, per table. A value no
    configured key opens stops it (:class:`SecretUnreadable`): nothing is half done."""
    counts: dict[str, int] = {}
    for table, key, column, is_json in SEALED_COLUMNS:
        purpose = f"{table}.{column}"
        # Locked: a secret set or rotated meanwhile is not put back to the value read here.
        rows = (
            await session.execute(
                text(
                    f"SELECT {key} AS k, {column} AS v FROM {table} "
                    f"WHERE {column} IS NOT NULL FOR UPDATE"
                )
            )
        ).all()
        done = 0
        for row in rows:
            sealed = _stored_text(row.v, is_json)
            if sealed is not None and box.is_current(sealed):
                continue
            if is_json:
                plain = orjson.loads(box.open(sealed, purpose)) if sealed is not None else row.v
                value: Any = orjson.dumps(
                    {"sealed": box.seal(orjson.dumps(plain).decode(), purpose)}
                )
                statement = f"UPDATE {table} SET {column} = CAST(:v AS jsonb) WHERE {key} = :k"
                await session.execute(text(statement), {"v": value.decode(), "k": row.k})
            else:
                plain_text = box.open(sealed, purpose) if sealed is not None else row.v
                await session.execute(
                    text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"),
                    {"v": box.seal(plain_text, purpose), "k": row.k},
                )
            done += 1
        counts[table] = done
        if progress is not None:
            progress(f"{table}.{column}: {done} of {len(rows)} re-sealed")
    return counts
