"""``POST /ingest/{provider}/vehicles``: the HTTP side of push ingest (``providers/push/``).

Every refusal is JSON ``{"error": {"code", "message"}}`` with a stable code and the status that
fits it; nothing is written unless the signature, the timestamp and the envelope are good.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from app.platform import secret_box
from app.runtime import Runtime
from providers.push import (
    MAX_BODY_BYTES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PushRejected,
    parse_batch,
    provider_catalog,
    verify,
)

log = logging.getLogger(__name__)

_UNREADABLE_LOG_EVERY_SECONDS = 60.0
_unreadable_logged: dict[str, float] = {}


def _log_unreadable(provider_id: str, exc: Exception) -> None:
    # Once a minute per provider: these requests are not authenticated yet (the secret is what
    # would check them), so anyone could otherwise fill the log with this line.
    now = time.monotonic()
    if now - _unreadable_logged.get(provider_id, -_UNREADABLE_LOG_EVERY_SECONDS) >= (
        _UNREADABLE_LOG_EVERY_SECONDS
    ):
        _unreadable_logged[provider_id] = now
        log.error("push for %s refused: %s", provider_id, exc)


router = APIRouter()


def _json(payload: Any, status: int) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _refusal(exc: PushRejected) -> Response:
    return _json({"error": {"code": exc.code, "message": exc.message}}, exc.status)


async def _body(request: Request) -> bytes:
    """The body, refused as soon as it passes the cap (never read whole into memory first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PushRejected(413, "BODY_TOO_LARGE", f"the body is over {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PushRejected(413, "BODY_TOO_LARGE", f"the body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# The reference cache reads through SQLAlchemy; the batch through asyncpg.
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, SQLAlchemyError, OSError)


@router.post("/ingest/{provider_id}/vehicles")
async def ingest_vehicles(provider_id: str, request: Request) -> Response:
    try:
        return await _ingest(provider_id, request)
    except _DATABASE_ERRORS as exc:
        # Before the transaction or inside it: either way nothing was committed.
        log.warning("push batch for %s not stored: %s", provider_id, exc.__class__.__name__)
        return _refusal(
            PushRejected(
                503,
                "DATABASE_UNAVAILABLE",
                "the batch could not be stored; nothing was written: send it again",
            )
        )


async def _ingest(provider_id: str, request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise PushRejected(
                415, "UNSUPPORTED_MEDIA_TYPE", "send the batch as Content-Type: application/json"
            )
        body = await _body(request)
        # Read per request, not from the reference cache: a rotated or removed secret and a
        # disabled provider take effect at once, and a flood of bad signatures costs one
        # indexed lookup each instead of reloading shared caches.
        try:
            credentials = await runtime.push.credentials(provider_id)
        except secret_box.SecretUnreadable as exc:
            # Our configuration, not the sender's fault: nothing can be verified until the key
            # is back (the message names it; no secret is in it).
            _log_unreadable(provider_id, exc)
            raise PushRejected(
                503,
                "SECRET_UNREADABLE",
                "this provider's ingest secret cannot be read here; the operators of this "
                "service have been told, send the batch again later",
            ) from exc
        if credentials is None:
            raise PushRejected(404, "UNKNOWN_PROVIDER", f"no provider {provider_id!r}")
        secret, enabled = credentials
        if secret is None:
            raise PushRejected(
                403,
                "PUSH_NOT_ENABLED",
                f"provider {provider_id!r} has no ingest secret: "
                f"`mobility providers push-secret {provider_id}` creates one",
            )
        verify(
            secret,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            body,
            now=time.time(),
        )
        if not enabled:
            raise PushRejected(
                403, "PROVIDER_DISABLED", f"provider {provider_id!r} is disabled; enable it first"
            )
        batch = parse_batch(body, now=datetime.now(UTC))
    except PushRejected as exc:
        return _refusal(exc)
    named_types = {
        f"{provider_id}:{v.vehicle_type_id}" for v in batch.vehicles if v.vehicle_type_id
    }
    reference = await runtime.reference.covering(providers=[provider_id], types=named_types)
    types, plans = provider_catalog(reference, provider_id)
    outcome = await runtime.push.apply(provider_id, batch, types, plans)
    if not outcome.index_updated:
        status = 503  # stored, but search does not show it yet: the sender should retry
    elif outcome.rejected and not outcome.applied and not outcome.ignored:
        status = 422  # every record was invalid: nothing to apply
    else:
        status = 200
    return _json(outcome.to_json(), status)
