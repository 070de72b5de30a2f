"""Rate limits of authenticated callers: a token bucket per API key and per rider, in Redis.

One Lua script refills and takes from the bucket atomically, on Redis's own clock (``TIME``), so
any number of API processes share one bucket per caller and their clocks do not matter. A bucket
holds ``burst`` tokens and refills ``per_second``; an operation takes one. A bucket left alone
until it is full again is the same as no bucket: its key expires then, so idle callers cost
nothing in Redis.

Redis unavailable: the request is served (fail open) and a warning is logged at most once a
minute. Rate limits protect capacity; they are not a correctness guard (bookings are kept correct
by PostgreSQL), so an outage of Redis must not become an outage of the API. docs/rate-limits.md.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from fastapi import HTTPException, Request
from redis.exceptions import NoScriptError, RedisError

from app.accounts import rider_for_token
from app.fleet.api_keys import is_api_key, verify_api_key
from app.fleet.principal import ApiKeyPrincipal
from app.platform import metrics
from app.platform.errors import DomainError
from app.platform.redis import RedisClient
from app.staff_auth import TOKEN_PREFIX

if TYPE_CHECKING:
    from app.platform.settings import Settings
    from app.runtime import Runtime

__all__ = [
    "PLAN_LIMITS",
    "RIDER_LIMIT",
    "Decision",
    "Limit",
    "RateLimited",
    "Subject",
    "api_key_subject",
    "bucket_key",
    "plan_limits",
    "rate_limited",
    "rider_subject",
    "subject_for_authorization",
    "take",
]

log = logging.getLogger(__name__)


class Limit(NamedTuple):
    burst: int  # the bucket's capacity: requests allowed back to back
    per_second: float  # its refill: the sustained rate


# Per organisation plan (``organisations.plan``), for its API keys. To move into settings as
# ``rate_limit_plans`` / ``rate_limit_rider`` (docs/rate-limits.md).
PLAN_LIMITS: dict[str, Limit] = {
    "STANDARD": Limit(burst=60, per_second=10.0),
    "ENTERPRISE": Limit(burst=600, per_second=100.0),
}
DEFAULT_PLAN = "STANDARD"
# A signed-in rider: a map client pans and searches in bursts, then idles.
RIDER_LIMIT = Limit(burst=40, per_second=4.0)

_WARN_EVERY_SECONDS = 60.0

# KEYS[1]: the bucket. ARGV: burst, refill per second, cost.
# Returns {allowed 0/1, tokens left (floored), milliseconds until `cost` tokens are there}.
_TOKEN_BUCKET = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait_ms = math.ceil((cost - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, math.floor(tokens), wait_ms}
"""
_TOKEN_BUCKET_SHA = hashlib.sha1(_TOKEN_BUCKET.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose bucket an operation takes from, and its size."""

    bucket: str  # "key:<api key id>" or "rider:<user id>"
    limit: Limit


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    # Whole seconds until the next operation would pass (0 when this one did).
    retry_after_seconds: int
    # True when Redis did not answer and the operation was let through unchecked.
    unchecked: bool = False


class RateLimited(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            f"rate limit reached: retry in {retry_after_seconds} s",
        )
        self.retry_after_seconds = retry_after_seconds


def plan_limits(settings: Settings | None = None) -> dict[str, Limit]:
    """The limits per organisation plan: ``MOBILITY_RATE_LIMIT_PLANS`` when set, else the
    built-in table."""
    configured = settings.rate_limit_plans if settings is not None else None
    if configured is None:
        return PLAN_LIMITS
    return {plan: Limit(int(b), float(r)) for plan, (b, r) in configured.items()}


def api_key_subject(principal: ApiKeyPrincipal, settings: Settings | None = None) -> Subject:
    limits = plan_limits(settings)
    limit = limits.get(principal.plan) or limits.get(DEFAULT_PLAN) or PLAN_LIMITS[DEFAULT_PLAN]
    return Subject(f"key:{principal.key_id}", limit)


def rider_subject(user_id: uuid.UUID, settings: Settings | None = None) -> Subject:
    configured = settings.rate_limit_rider if settings is not None else None
    limit = RIDER_LIMIT if configured is None else Limit(int(configured[0]), float(configured[1]))
    return Subject(f"rider:{user_id}", limit)


def bucket_key(prefix: str, subject: Subject) -> str:
    return f"{prefix}:ratelimit:{subject.bucket}"


_last_warning = -math.inf


def _warn_unchecked(exc: BaseException) -> None:
    # Once a minute: during an outage every request lands here.
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_EVERY_SECONDS:
        _last_warning = now
        log.warning("rate limits not enforced: Redis unavailable (%s)", exc)


async def take(redis: RedisClient, prefix: str, subject: Subject, *, cost: int = 1) -> Decision:
    """Take ``cost`` tokens from the subject's bucket if it has them."""
    burst, per_second = subject.limit
    args = (burst, per_second, cost)
    key = bucket_key(prefix, subject)
    try:
        try:
            raw = await redis.evalsha(_TOKEN_BUCKET_SHA, 1, key, *args)
        except NoScriptError:  # a Redis restarted (or flushed) since: load it again
            raw = await redis.eval(_TOKEN_BUCKET, 1, key, *args)
    except (RedisError, OSError, TimeoutError) as exc:
        metrics.redis_error("rate_limit")
        _warn_unchecked(exc)
        return Decision(allowed=True, remaining=0, retry_after_seconds=0, unchecked=True)
    allowed, remaining, wait_ms = (int(v) for v in raw)
    return Decision(
        allowed=bool(allowed),
        remaining=remaining,
        retry_after_seconds=0 if allowed else max(1, math.ceil(wait_ms / 1000)),
    )


async def subject_for_authorization(runtime: Runtime, authorization: str | None) -> Subject | None:
    """The bucket of the caller an ``Authorization`` header names, for endpoints outside
    GraphQL; None for anonymous and staff callers and for credentials that do not check out
    (the endpoint's own authentication refuses those)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or token.startswith(TOKEN_PREFIX):
        return None
    try:
        async with runtime.sessions() as session:
            if is_api_key(token):
                principal = await verify_api_key(session, token, datetime.now(UTC))
                subject = api_key_subject(principal, runtime.settings)
            else:
                rider = await rider_for_token(session, runtime.settings, token)
                subject = rider_subject(rider.id, runtime.settings)
            await session.commit()  # last_used_at, or an external identity's first use
    except DomainError:
        return None
    return subject


def rate_limited(*, cost: int = 1) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency for REST routes: ``HTTP 429`` with ``Retry-After`` when the caller
    is over its limit; anonymous callers pass (the route decides whether they may)::

        @router.get("/reports/usage.csv", dependencies=[Depends(rate_limited())])
    """

    async def dependency(request: Request) -> None:
        runtime: Runtime = request.app.state.runtime
        if not runtime.settings.rate_limits_enabled:
            return
        subject = await subject_for_authorization(runtime, request.headers.get("authorization"))
        if subject is None:
            return
        decision = await take(runtime.redis, runtime.keys.prefix, subject, cost=cost)
        if not decision.allowed:
            raise HTTPException(
                status_code=429,
                detail=RateLimited(decision.retry_after_seconds).message,
                headers={"Retry-After": str(decision.retry_after_seconds)},
            )

    return dependency
