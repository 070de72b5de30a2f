"""Trusting an external identity provider's JWTs (RS256 / ES256), its keys from a JWKS URL.

The key set is cached for ``ttl`` seconds. A token naming a key id we do not know may mean the
provider rotated its keys: the set is fetched again then, but at most once a minute, so tokens
with made-up key ids cannot make us hammer the provider.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import httpx
import jwt

from app.accounts.errors import IdentityProviderUnavailable, InvalidToken, TokenExpired
from app.platform.settings import Settings

log = logging.getLogger(__name__)

# Asymmetric only: an HS256 token would be verified with the public key as the HMAC secret.
ALGORITHMS = ("RS256", "ES256")
# The provider's clock and ours may differ by this much.
LEEWAY_SECONDS = 30


@dataclass(eq=False)
class JwksCache:
    """One JWKS URL's keys, by key id."""

    url: str
    _: KW_ONLY
    ttl_seconds: float = 600.0
    unknown_kid_refetch_seconds: float = 60.0
    failure_retry_seconds: float = 5.0
    timeout_seconds: float = 5.0
    clock: Callable[[], float] = time.monotonic
    fetches: int = field(default=0, init=False)
    _keys: dict[str, jwt.PyJWK] | None = field(default=None, init=False, repr=False)
    _fetched_at: float = field(default=-math.inf, init=False, repr=False)
    _failed_at: float = field(default=-math.inf, init=False, repr=False)
    # One fetch at a time: concurrent requests with a stale cache wait for the same fetch.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def key(self, kid: str) -> jwt.PyJWK:
        now = self.clock()
        if self._keys is None or now - self._fetched_at >= self.ttl_seconds:
            await self._refresh(now)
        key = (self._keys or {}).get(kid)
        if key is None and now - self._fetched_at >= self.unknown_kid_refetch_seconds:
            await self._refresh(now)
            key = (self._keys or {}).get(kid)
        if key is None:
            raise InvalidToken("the token is signed with a key the identity provider does not list")
        return key

    async def _refresh(self, now: float) -> None:
        async with self._lock:
            if self._fetched_at >= now:
                return  # another request fetched while this one waited
            if now - self._failed_at < self.failure_retry_seconds:
                self._keys_or_fail()
                return
            try:
                self._keys = await self._fetch()
                self._fetched_at = self.clock()
            except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
                self._failed_at = self.clock()
                # Keys fetched earlier stay in use: a provider's outage must not sign everyone
                # out while its old keys are still the ones it signs with.
                log.warning("could not fetch the identity provider's JWKS: %s", exc)
                self._keys_or_fail()

    def _keys_or_fail(self) -> None:
        if self._keys is None:
            raise IdentityProviderUnavailable(
                "the identity provider's signing keys are unavailable; try again shortly"
            )

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        self.fetches += 1
        async with httpx.AsyncClient(
            timeout=self.timeout_seconds, follow_redirects=False
        ) as client:
            response = await client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        if not isinstance(document, dict):
            raise ValueError("a JWKS is a JSON object")
        # Keys of kinds PyJWT cannot use are skipped by PyJWKSet; keys without an id cannot be
        # chosen by a token's header, so they are of no use here.
        key_set = jwt.PyJWKSet.from_dict(document)
        return {k.key_id: k for k in key_set.keys if k.key_id and k.public_key_use != "enc"}


_caches: dict[str, JwksCache] = {}


def jwks_cache_for(url: str) -> JwksCache:
    """The process's cache for one JWKS URL (shared by every request)."""
    cache = _caches.get(url)
    if cache is None:
        cache = _caches[url] = JwksCache(url)
    return cache


def trusts_external(settings: Settings, issuer: object) -> bool:
    return bool(
        settings.external_idp_issuer
        and settings.external_idp_jwks_url
        and settings.external_idp_audience
        and issuer == settings.external_idp_issuer
    )


async def verify_external_token(
    settings: Settings, token: str, cache: JwksCache | None = None
) -> dict[str, Any]:
    """The claims of a token the external identity provider signed for our audience."""
    assert settings.external_idp_jwks_url and settings.external_idp_issuer
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("the token is not valid") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or header.get("alg") not in ALGORITHMS:
        raise InvalidToken("the token's header names no usable signing key")
    key = await (cache or jwks_cache_for(settings.external_idp_jwks_url)).key(kid)
    try:
        return jwt.decode(
            token,
            key,
            algorithms=list(ALGORITHMS),
            issuer=settings.external_idp_issuer,
            audience=settings.external_idp_audience,
            leeway=LEEWAY_SECONDS,
            options={"require": ["sub", "iss", "aud", "exp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("the identity provider's token has expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("the identity provider's token is not valid for this API") from exc
