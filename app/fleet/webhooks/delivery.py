"""The signed, retried delivery of each due delivery: claimed under a lease, POSTed signed,
and recorded (DELIVERED on a 2xx, otherwise retried with exponential backoff until
:data:`DELIVERY_WINDOW` after its window opened, then FAILED)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Text, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.fleet.webhooks.destinations import DESTINATION_REFUSED, UNUSABLE_URL
from app.fleet.webhooks.signing import SIGNATURE_HEADER, sign
from app.fleet.webhooks.states import DeliveryStatus
from app.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from app.platform import metrics, outbound, secret_box
from app.platform.db import transaction
from app.platform.request_id import REQUEST_ID

# The package's one logger, named as before the split: docs/webhooks.md tells operators to
# look for refused destinations under it.
log = logging.getLogger("app.fleet.webhooks")

# Retries run this long after a delivery's window opens (its creation, or its last replay).
DELIVERY_WINDOW = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
# Up to this fraction is added to each retry delay: deliveries that failed together (a receiver
# outage) come back spread out instead of all at once.
RETRY_JITTER = 0.2
ATTEMPT_TIMEOUT_SECONDS = 10.0
# A claimed delivery is not claimable again for this long: longer than one attempt can take, so
# two workers never send the same attempt at once; short enough that a worker dying mid-attempt
# delays the retry by one minute only. (Would be a setting: webhook_lease_seconds.)
CLAIM_LEASE = timedelta(seconds=60)
RESPONSE_KEPT_BYTES = 1024
ERROR_KEPT_CHARS = 500
# One round's work: bounded so one round's transactions and open sockets stay small.
DELIVERY_BATCH = 50
DELIVERY_CONCURRENCY = 10


def backoff_delay(failing_for: timedelta, rng: random.Random | None = None) -> timedelta:
    """How long to wait after a failed attempt, for a delivery whose window opened
    ``failing_for`` ago: as long again (at least 30 s, at most 1 h), plus up to 20 % jitter,
    never less. Attempts thus come at about 0, 30 s, 1 min, 2 min, 4 min, … then hourly: the
    wait doubles with each failure, and a replay (which reopens the window) starts over,
    without a counter of its own."""
    base = min(max(FIRST_RETRY, failing_for), MAX_RETRY)
    return base * (1 + (rng or random).random() * RETRY_JITTER)


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: uuid.UUID
    attempts: int
    window_opened_at: datetime
    url: str
    sealed_secret: str
    event_type: str
    event_created_at: datetime
    payload: dict[str, Any]
    # The request whose change the event reports (None when none did): the attempt logs with it.
    request_id: str | None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivery_id: uuid.UUID
    status: DeliveryStatus
    status_code: int | None
    error: str | None


def _body(claimed: _Claimed) -> bytes:
    document = {
        # The delivery's id: the same on every retry and replay of this event to this endpoint,
        # so a receiver de-duplicates on it.
        "id": str(claimed.id),
        "type": claimed.event_type,
        "created": claimed.event_created_at.astimezone(UTC).isoformat(),
        "data": claimed.payload,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


async def _claim(
    sessions: async_sessionmaker[AsyncSession], now: datetime, batch: int
) -> list[_Claimed]:
    async with transaction(sessions) as session:
        rows = (
            await session.execute(
                select(
                    WebhookDelivery.id,
                    WebhookDelivery.attempts,
                    WebhookDelivery.window_opened_at,
                    WebhookEndpoint.url,
                    # As stored (sealed): opened per delivery, so one endpoint whose secret
                    # cannot be read fails its own deliveries, not the whole batch.
                    type_coerce(WebhookEndpoint.secret, Text()),
                    OutboxEvent.event_type,
                    OutboxEvent.created_at,
                    OutboxEvent.payload,
                    OutboxEvent.request_id,
                )
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING.value,
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookEndpoint.enabled,
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(batch)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            )
        ).all()
        claimed = [_Claimed(*row) for row in rows]
        if claimed:
            # The lease, committed before any request is sent: another runner skips these
            # until it lapses (a runner that died mid-attempt is retried after it).
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_([c.id for c in claimed]))
                .values(next_attempt_at=now + CLAIM_LEASE)
            )
    return claimed


async def _send(
    http: httpx.AsyncClient, claimed: _Claimed, now: datetime
) -> tuple[int | None, str | None, str | None]:
    """One attempt: (status code, response body kept, error)."""
    body = _body(claimed)
    try:
        secret = secret_box.current().open(claimed.sealed_secret, secret_box.WEBHOOK_SECRET_PURPOSE)
    except secret_box.SecretUnreadable as exc:
        # Never sent unsigned: a failed attempt, retried on schedule, visible in the log.
        log.error("webhook delivery %s not sent: %s", claimed.id, exc)
        return None, None, "the endpoint's signing secret cannot be read here (server setup)"
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, int(now.timestamp()), body),
        "Mobility-Event-Type": claimed.event_type,
    }
    try:
        async with http.stream(
            "POST",
            claimed.url,
            content=body,
            headers=headers,
            # A redirect would re-send a signed POST to wherever it pointed: never followed,
            # and counted as a failure the admin sees in the log.
            follow_redirects=False,
            timeout=httpx.Timeout(ATTEMPT_TIMEOUT_SECONDS),
        ) as response:
            kept = bytearray()
            async for chunk in response.aiter_raw():
                kept += chunk[: RESPONSE_KEPT_BYTES - len(kept)]
                if len(kept) >= RESPONSE_KEPT_BYTES:
                    break
            text = bytes(kept).decode("utf-8", errors="replace")
            error = None
            if response.is_redirect:
                location = response.headers.get("location", "?")
                error = f"redirect to {location} not followed"[:ERROR_KEPT_CHARS]
            elif not response.is_success:
                error = f"HTTP {response.status_code}"
            return response.status_code, text, error
    except httpx.InvalidURL:
        # Not an httpx.HTTPError: uncaught, it would abort the whole round's deliveries.
        return None, None, UNUSABLE_URL
    except outbound.DestinationRefused as exc:
        # Nothing was sent. The reason (the addresses) is ours to read, not the tenant's.
        log.warning("webhook delivery %s: destination refused: %s", claimed.id, exc.reason)
        return None, None, DESTINATION_REFUSED
    except httpx.HTTPError as exc:
        return None, None, _attempt_error(exc)


def _attempt_error(exc: httpx.HTTPError) -> str:
    """What the log says about a failed exchange with a permitted (public) destination: the
    kind of failure, useful to the endpoint's owner, never an exception's text (which may name
    addresses and ports)."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {ATTEMPT_TIMEOUT_SECONDS:g} s"
    if isinstance(exc, httpx.ConnectError):
        for cause in _causes(exc):
            if isinstance(cause, ssl.SSLCertVerificationError):
                # OpenSSL's verdict on the endpoint's own certificate ("certificate has
                # expired", "Hostname mismatch, certificate is not valid for 'x'.").
                verdict = cause.verify_message or "not trusted"
                return f"{kind}: TLS certificate not accepted: {verdict}"[:ERROR_KEPT_CHARS]
            if isinstance(cause, ssl.SSLError):
                return f"{kind}: TLS handshake failed"
        return f"{kind}: could not connect to the endpoint"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{kind}: the endpoint's answer was not valid HTTP"
    if isinstance(exc, httpx.NetworkError):
        return f"{kind}: the connection failed during the exchange"
    return f"{kind}: the request failed"


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    claimed: _Claimed,
    now: datetime,
    result: tuple[int | None, str | None, str | None],
    rng: random.Random | None,
) -> DeliveryOutcome:
    status_code, response_text, error = result
    attempts = claimed.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_status_code": status_code,
        "last_response": response_text,
        "last_error": error,
    }
    if error is None:
        status = DeliveryStatus.DELIVERED
        values.update(status=status.value, delivered_at=now, next_attempt_at=None)
    else:
        deadline = claimed.window_opened_at + DELIVERY_WINDOW
        if now >= deadline:
            status = DeliveryStatus.FAILED
            values.update(status=status.value, next_attempt_at=None)
        else:
            status = DeliveryStatus.PENDING
            # The last retry is made at the deadline itself, not skipped for being past it.
            delay = backoff_delay(now - claimed.window_opened_at, rng)
            values["next_attempt_at"] = min(now + delay, deadline)
    async with transaction(sessions) as session:
        # Guarded by the attempt count it claimed: if its lease lapsed and another runner
        # recorded this attempt already, this record changes nothing.
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == claimed.id,
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
                WebhookDelivery.attempts == claimed.attempts,
            )
            .values(**values)
        )
    return DeliveryOutcome(claimed.id, status, status_code, error)


_OUTCOME_LABELS = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.PENDING: "retrying",
    DeliveryStatus.FAILED: "failed",
}


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    now: datetime,
    *,
    batch: int = DELIVERY_BATCH,
    rng: random.Random | None = None,
) -> list[DeliveryOutcome]:
    """Attempt one batch of due deliveries, at most :data:`DELIVERY_CONCURRENCY` at a time."""
    claimed = await _claim(sessions, now, batch)
    gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def attempt(one: _Claimed) -> DeliveryOutcome:
        # Each attempt runs in a task of its own (gather), so this id is its lines' alone: the
        # id of the request that caused the event, or else the round's (its task's).
        if one.request_id is not None:
            REQUEST_ID.set(one.request_id)
        async with gate:
            result = await _send(http, one, now)
        outcome = await _record(sessions, one, now, result, rng)
        log.info(
            "webhook delivery %s (%s) attempt %d: %s",
            one.id,
            one.event_type,
            one.attempts + 1,
            outcome.error or outcome.status.value,
            extra={
                "delivery_id": str(one.id),
                "event_type": one.event_type,
                "attempt": one.attempts + 1,
                "status": outcome.status.value,
                "status_code": outcome.status_code,
            },
        )
        metrics.WEBHOOK_DELIVERIES.labels(_OUTCOME_LABELS[outcome.status]).inc()
        return outcome

    return list(await asyncio.gather(*(attempt(c) for c in claimed)))
