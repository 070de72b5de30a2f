"""Password hashing with argon2id. CPU-bound, deliberately slow and memory-hungry (64 MiB a
hash by default): the service calls the ``*_async`` forms, which run in a thread so a login
never stalls the event loop, and at most ``MOBILITY_PASSWORD_HASH_CONCURRENCY`` at a time per
process, so a burst of logins waits its turn instead of exhausting memory and starving search
of CPU. Callers hold no database connection while they wait."""

from __future__ import annotations

import asyncio
import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from app.admission import PASSWORD_HASHING, slots
from app.platform.settings import Settings

# argon2-cffi's default lanes; fewer when the memory setting is too small for four (each lane
# needs at least 8 KiB).
_MAX_PARALLELISM = 4


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=max(1, min(_MAX_PARALLELISM, memory_kib // 8)),
        type=Type.ID,
    )


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib)


def _normalized(password: str) -> bytes:
    # NFKC (as NIST SP 800-63B suggests): the same password typed on two keyboards that
    # compose characters differently must verify.
    return unicodedata.normalize("NFKC", password).encode()


def hash_password(password: str, settings: Settings) -> str:
    return hasher(settings).hash(_normalized(password))


def verify_password(password: str, stored_hash: str, settings: Settings) -> bool:
    try:
        return hasher(settings).verify(stored_hash, _normalized(password))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str, settings: Settings) -> bool:
    """True when the hash was made with other parameters than today's settings (a cost raised
    since): the next successful login stores a new one."""
    try:
        return hasher(settings).check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


@lru_cache(maxsize=8)
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    return _hasher(time_cost, memory_kib).hash(b"no such account: a dummy to verify against")


def _slot(settings: Settings) -> asyncio.Semaphore:
    return slots(PASSWORD_HASHING, settings.password_hash_concurrency)


async def hash_password_async(password: str, settings: Settings) -> str:
    async with _slot(settings):
        return await asyncio.to_thread(hash_password, password, settings)


async def verify_password_async(password: str, stored_hash: str, settings: Settings) -> bool:
    async with _slot(settings):
        return await asyncio.to_thread(verify_password, password, stored_hash, settings)


async def verify_dummy_async(password: str, settings: Settings) -> None:
    async with _slot(settings):
        await asyncio.to_thread(verify_dummy, password, settings)


def verify_dummy(password: str, settings: Settings) -> None:
    """Spend the time a real verification takes, for a login whose email is unknown: the
    answer's timing must not tell which emails have accounts."""
    dummy = _dummy_hash(settings.argon2_time_cost, settings.argon2_memory_kib)
    verify_password(password, dummy, settings)
