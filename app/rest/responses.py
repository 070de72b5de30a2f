"""What every REST router answers with: refusals as JSON ``{"error": {"code", "message"}}`` with
stable codes and the HTTP status of the domain error, and conditional GET (strong ETags over the
body, ``If-None-Match`` → 304)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import asyncpg
import orjson
from fastapi import Response
from sqlalchemy.exc import InterfaceError, OperationalError

from app.accounts import Unauthenticated
from app.fleet.api_keys import InvalidApiKey
from app.fleet.principal import MissingScope, OrgNotFound
from app.platform.errors import DomainError, NotFound
from app.staff_auth import Forbidden

__all__ = ["DATABASE_DOWN", "entity_tag", "not_modified", "refusal", "status_of"]

# What a read raises when PostgreSQL cannot be reached, through the ORM or a plain asyncpg pool:
# answered 503 DATABASE_UNAVAILABLE (try again), never a 500 with the driver's words.
DATABASE_DOWN = (
    OperationalError,
    InterfaceError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


def status_of(error: DomainError) -> int:
    if isinstance(error, Unauthenticated | InvalidApiKey):
        return 401
    if isinstance(error, Forbidden | MissingScope):
        return 403
    if isinstance(error, OrgNotFound | NotFound):
        return 404
    # InvalidInput and anything else the caller sent wrong.
    return 400


def refusal(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A refusal; a 401 names the scheme to authenticate with."""
    all_headers = dict(headers or {})
    if status == 401:
        all_headers["WWW-Authenticate"] = "Bearer"
    return Response(
        orjson.dumps({"error": {"code": code, "message": message}}),
        status_code=status,
        media_type="application/json",
        headers=all_headers or None,
    )


def entity_tag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether a conditional GET's ``If-None-Match`` names the current ``etag``."""
    if if_none_match is None:
        return False
    # RFC 9110 §13.1.2: If-None-Match compares weakly, so a W/ tag a cache derived from ours
    # still matches.
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates
