"""Automatic persisted queries (the Apollo APQ protocol), documents kept in Redis.

A client sends ``extensions.persistedQuery.sha256Hash`` without the query; an unknown hash
answers ``PersistedQueryNotFound`` and the client repeats the request with the query, which is
checked against its hash and, once it has parsed and validated, stored. Every document is still
parsed (cached) and validated on execution: persisting saves bytes on the wire, never checks.

Storing is an anonymous write into Redis, so it is bounded three ways: only documents that
parsed and validated against the schema (never arbitrary text), at most
``MAX_DOCUMENT_BYTES`` each, and at most ``REGISTRATIONS`` new documents per client address
(a token bucket). A registration over the limit is not an error: the request is answered,
and the client keeps sending the whole document until it may register again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass

from redis.exceptions import RedisError

from app.platform import metrics
from app.platform.redis import RedisClient
from app.rate_limit import Limit, Subject, take

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 32_768
# New documents one client address may store: an app registers its few dozen documents once.
REGISTRATIONS = Limit(burst=50, per_second=0.1)
_LOCAL_ENTRIES = 1_000
_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Resolved:
    """The document a request runs, and the hash to store it under once it has validated
    (None when it came from the store)."""

    query: str
    to_register: str | None = None


@dataclass(frozen=True, slots=True)
class PersistedQueryError(Exception):
    code: str
    message: str


NOT_FOUND = PersistedQueryError("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")


class PersistedQueries:
    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._key_prefix = prefix
        self._prefix = f"{prefix}:apq:"
        self._local: OrderedDict[str, str] = OrderedDict()

    async def resolve(self, query: str | None, persisted: object) -> Resolved:
        """The document to execute for this request, or a :class:`PersistedQueryError`."""
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise PersistedQueryError(
                "PERSISTED_QUERY_NOT_SUPPORTED", "only persistedQuery version 1 is supported"
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or len(digest) != 64:
            raise PersistedQueryError(
                "PERSISTED_QUERY_INVALID", "persistedQuery.sha256Hash must be 64 hex characters"
            )
        digest = digest.lower()
        if query is None:
            found = await self._lookup(digest)
            if found is None:
                raise NOT_FOUND
            return Resolved(found)
        if len(query.encode()) > MAX_DOCUMENT_BYTES:
            raise PersistedQueryError(
                "PERSISTED_QUERY_TOO_LARGE", f"documents are limited to {MAX_DOCUMENT_BYTES} bytes"
            )
        if hashlib.sha256(query.encode()).hexdigest() != digest:
            raise PersistedQueryError(
                "PERSISTED_QUERY_HASH_MISMATCH", "sha256Hash does not match the query"
            )
        return Resolved(query, to_register=digest)

    async def register(self, resolved: Resolved, client: str | None) -> bool:
        """Store a document that has parsed and validated (the caller knows: it ran it), if
        its client may register another one now. True when stored."""
        digest = resolved.to_register
        if digest is None:
            return False
        subject = Subject(f"apq:{client or 'unknown'}", REGISTRATIONS)
        decision = await take(self._redis, self._key_prefix, subject)
        if not decision.allowed:
            log.info("persisted query not stored: client over its registration limit")
            return False
        await self._store(digest, resolved.query)
        return True

    async def _lookup(self, digest: str) -> str | None:
        local = self._local.get(digest)
        if local is not None:
            self._local.move_to_end(digest)
            return local
        try:
            raw = await self._redis.get(self._prefix + digest)
        except (RedisError, OSError) as exc:
            # Without Redis the client simply sends the full query again.
            metrics.redis_error("persisted_queries")
            log.warning("persisted query lookup failed: %s", exc)
            return None
        if raw is None:
            return None
        document = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._remember(digest, document)
        return document

    async def _store(self, digest: str, query: str) -> None:
        self._remember(digest, query)
        try:
            await self._redis.set(self._prefix + digest, query, ex=_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            metrics.redis_error("persisted_queries")
            log.warning("persisted query not stored: %s", exc)

    def _remember(self, digest: str, query: str) -> None:
        self._local[digest] = query
        self._local.move_to_end(digest)
        if len(self._local) > _LOCAL_ENTRIES:
            self._local.popitem(last=False)
