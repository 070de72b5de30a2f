"""A circuit breaker per provider whose state lives in Redis, so every worker shares it.

Closed: calls go to the operator. After ``breaker_failure_threshold`` consecutive failures it
opens for a cool-down (``breaker_cooldown_seconds``); once that has passed it is half-open and
lets exactly one trial call through (whichever worker asks first); the trial's success closes
it, its failure opens it again for twice the previous cool-down, capped at
``breaker_max_cooldown_seconds``. Every transition is one Lua script, so two workers can never
both take the trial or both double the cool-down.

Redis time (``TIME``) is the clock, not each worker's: workers on several machines agree.
With Redis unreachable the breaker fails open (the call is allowed): the backoff stored in
PostgreSQL (``next_sync_at``) still spaces out a failing provider's syncs, and losing the
breaker must not stop every sync.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from redis.exceptions import RedisError

from app.platform import metrics
from app.platform.redis import RedisClient, RedisKeys
from app.platform.settings import Settings

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True)
class BreakerDecision:
    allowed: bool
    state: BreakerState
    # Seconds until a call may be tried again (0 when allowed).
    retry_in_seconds: float = 0.0
    consecutive_failures: int = 0


# KEYS[1] breaker hash. ARGV[1] trial lease seconds. Fields: failures, open_until, cooldown,
# trial_until (epoch seconds, floats as strings).
_ALLOW = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1e6
local h = redis.call('HMGET', KEYS[1], 'failures', 'open_until', 'trial_until')
local failures = tonumber(h[1] or '0') or 0
local open_until = tonumber(h[2] or '0') or 0
local trial_until = tonumber(h[3] or '0') or 0
if open_until == 0 then
  return {1, 'CLOSED', '0', failures}
end
if now < open_until then
  return {0, 'OPEN', tostring(open_until - now), failures}
end
if now < trial_until then
  return {0, 'HALF_OPEN', tostring(trial_until - now), failures}
end
redis.call('HSET', KEYS[1], 'trial_until', tostring(now + tonumber(ARGV[1])))
return {1, 'HALF_OPEN', '0', failures}
"""

# KEYS[1] breaker hash. ARGV: threshold, base cool-down, max cool-down, key ttl seconds.
_FAILURE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1e6
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = 'CLOSED'
local retry_in = 0
if failures >= tonumber(ARGV[1]) then
  local previous = tonumber(redis.call('HGET', KEYS[1], 'cooldown') or '0') or 0
  local cooldown = tonumber(ARGV[2])
  if previous > 0 then
    cooldown = math.min(previous * 2, tonumber(ARGV[3]))
  end
  redis.call('HSET', KEYS[1], 'cooldown', tostring(cooldown),
             'open_until', tostring(now + cooldown), 'trial_until', '0')
  state = 'OPEN'
  retry_in = cooldown
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {failures, state, tostring(retry_in)}
"""


class CircuitBreaker:
    def __init__(self, redis: RedisClient, keys: RedisKeys, settings: Settings) -> None:
        self._redis = redis
        self._keys = keys
        self._threshold = settings.breaker_failure_threshold
        self._cooldown = settings.breaker_cooldown_seconds
        self._max_cooldown = settings.breaker_max_cooldown_seconds
        # A trial that never reports back (its worker died) frees the half-open slot after
        # the longest a sync may take.
        self._trial_lease = settings.sync_deadline_seconds + 30.0
        # The state outlives any cool-down, then closes by itself.
        self._ttl = int(self._max_cooldown * 2 + 86_400)
        self._allow = redis.register_script(_ALLOW)
        self._failure = redis.register_script(_FAILURE)

    async def allow(self, provider_id: str) -> BreakerDecision:
        try:
            allowed, state, retry_in, failures = await self._allow(
                keys=[self._keys.provider_breaker(provider_id)], args=[self._trial_lease]
            )
        except RedisError as exc:
            metrics.redis_error("breaker")
            log.warning("circuit breaker unavailable, allowing %s: %s", provider_id, exc)
            return BreakerDecision(True, BreakerState.CLOSED)
        return BreakerDecision(
            bool(allowed), BreakerState(_text(state)), float(_text(retry_in)), int(failures)
        )

    async def record_success(self, provider_id: str) -> None:
        try:
            await self._redis.delete(self._keys.provider_breaker(provider_id))
        except RedisError as exc:
            metrics.redis_error("breaker")
            log.warning("could not close the circuit breaker of %s: %s", provider_id, exc)

    async def record_failure(self, provider_id: str) -> BreakerDecision:
        """Count a failed call; the decision says whether the breaker is now open."""
        try:
            failures, state, retry_in = await self._failure(
                keys=[self._keys.provider_breaker(provider_id)],
                args=[self._threshold, self._cooldown, self._max_cooldown, self._ttl],
            )
        except RedisError as exc:
            metrics.redis_error("breaker")
            log.warning("could not record a failure of %s: %s", provider_id, exc)
            return BreakerDecision(True, BreakerState.CLOSED)
        breaker_state = BreakerState(_text(state))
        return BreakerDecision(
            breaker_state is BreakerState.CLOSED,
            breaker_state,
            float(_text(retry_in)),
            int(failures),
        )

    async def state(self, provider_id: str) -> BreakerDecision:
        """The breaker as it stands, without taking the trial slot (health, CLI)."""
        try:
            values = await self._redis.hmget(
                self._keys.provider_breaker(provider_id), ["failures", "open_until"]
            )
            now_seconds, now_micros = await self._redis.time()
        except RedisError:
            return BreakerDecision(True, BreakerState.CLOSED)
        failures = int(values[0] or 0)
        open_until = float(values[1] or 0)
        now = now_seconds + now_micros / 1e6
        if open_until == 0:
            return BreakerDecision(True, BreakerState.CLOSED, 0.0, failures)
        if now < open_until:
            return BreakerDecision(False, BreakerState.OPEN, open_until - now, failures)
        return BreakerDecision(True, BreakerState.HALF_OPEN, 0.0, failures)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
