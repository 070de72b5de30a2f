"""How often passwords may be tried: token buckets in Redis (app/rate_limit.py), checked before
any password is hashed, so guessing costs the guesser time and costs us nothing.

- per client address: every log-in and sign-up attempt (one address guessing many accounts);
- per account: every log-in attempt naming it (many addresses guessing one account). An
  attacker can thereby slow down one person's own log-ins for a few minutes, the usual price
  of stopping password guessing per account; the answer says when to retry.

Over a limit: ``RATE_LIMITED`` with ``retryAfterSeconds``. Redis down: attempts are let through
(as all rate limits are), and the bounded hashing (app/accounts/passwords.py) still protects
memory and CPU.
"""

from __future__ import annotations

import hashlib

from app.platform.redis import RedisClient
from app.platform.settings import Settings
from app.rate_limit import Limit, RateLimited, Subject, take

__all__ = ["admit_log_in", "admit_sign_up"]


def _account(email: str) -> str:
    # The bucket is named by a digest: Redis keys never carry the address itself.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


async def _admit(redis: RedisClient, prefix: str, subject: Subject) -> None:
    decision = await take(redis, prefix, subject)
    if not decision.allowed:
        raise RateLimited(decision.retry_after_seconds)


def _per_address(settings: Settings, client: str | None) -> Subject:
    burst, rate = settings.password_attempts_per_address
    return Subject(f"login-address:{client or 'unknown'}", Limit(int(burst), float(rate)))


async def admit_log_in(
    redis: RedisClient, prefix: str, settings: Settings, *, email: str, client: str | None
) -> None:
    await _admit(redis, prefix, _per_address(settings, client))
    burst, rate = settings.password_attempts_per_account
    account = Subject(f"login-account:{_account(email)}", Limit(int(burst), float(rate)))
    await _admit(redis, prefix, account)


async def admit_sign_up(
    redis: RedisClient, prefix: str, settings: Settings, *, client: str | None
) -> None:
    await _admit(redis, prefix, _per_address(settings, client))
