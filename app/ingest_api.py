"""``POST /ingest/{provider}/vehicles``: the HTTP side of push ingest (``providers/push.py``).

Every refusal is JSON ``{"error": {"code", "message"}}`` with a stable code and the status that
fits it; nothing is written unless the signature, the timestamp and the envelope are good.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

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


@router.post("/ingest/{provider_id}/vehicles")
async def ingest_vehicles(provider_id: str, request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise PushRejected(
                415, "UNSUPPORTED_MEDIA_TYPE", "send the batch as Content-Type: application/json"
            )
        body = await _body(request)
        reference = await runtime.reference.covering(providers=[provider_id])
        provider = reference.providers.get(provider_id)
        if provider is None:
            raise PushRejected(404, "UNKNOWN_PROVIDER", f"no provider {provider_id!r}")
        if provider.ingest_secret is None:
            raise PushRejected(
                403,
                "PUSH_NOT_ENABLED",
                f"provider {provider_id!r} has no ingest secret: "
                f"`mobility providers push-secret {provider_id}` creates one",
            )
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        try:
            verify(provider.ingest_secret, timestamp, signature, body, now=time.time())
        except PushRejected as exc:
            if exc.code != "BAD_SIGNATURE":
                raise
            # The secret may have been rotated since this process cached it: look once more.
            runtime.reference.invalidate()
            fresh = (await runtime.reference.current()).providers.get(provider_id)
            if fresh is None or fresh.ingest_secret in (None, provider.ingest_secret):
                raise
            verify(fresh.ingest_secret, timestamp, signature, body, now=time.time())
            reference, provider = await runtime.reference.current(), fresh
        if not provider.enabled:
            raise PushRejected(
                403, "PROVIDER_DISABLED", f"provider {provider_id!r} is disabled; enable it first"
            )
        batch = parse_batch(body, now=datetime.now(UTC))
    except PushRejected as exc:
        return _refusal(exc)
    types, plans = provider_catalog(reference, provider_id)
    outcome = await runtime.push.apply(provider_id, batch, types, plans)
    if not outcome.index_updated:
        status = 503  # stored, but search does not show it yet: the sender should retry
    elif outcome.rejected and not outcome.applied and not outcome.ignored:
        status = 422  # every record was invalid: nothing to apply
    else:
        status = 200
    return _json(outcome.to_json(), status)
