"""Webhooks: an organisation's endpoints, the fan-out of its outbox events into deliveries, and
the signed, retried delivery of each one (docs/webhooks.md is the receiver's side).

The pipeline, every step idempotent so any number of processes may run it at once:

1. ``app/fleet/outbox.py``: a booking change writes its event in its own transaction.
2. :func:`dispatch_outbox`: undispatched events become one PENDING delivery per subscribed,
   enabled endpoint of the organisation, and are marked dispatched, in one transaction.
3. :func:`deliver_due`: due deliveries are claimed (a lease pushes ``next_attempt_at`` forward
   before the HTTP call), POSTed signed, and recorded: DELIVERED on a 2xx, otherwise retried
   with exponential backoff until 24 h after the delivery's window opened, then FAILED.

Management functions take an :class:`OrgActor` resolved for one organisation (an admin member
or a key with ``webhooks:manage``) and never touch another organisation's rows: an id of
another organisation's endpoint or delivery is :class:`OrgNotFound`.

Time is always a parameter (``now``): the periodic runner passes the wall clock, tests a clock
of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
from sqlalchemy import Text, delete, func, literal, select, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbound, secret_box
from app.background import in_background
from app.db import transaction
from app.errors import InvalidInput
from app.fleet.outbox import EventType
from app.fleet.principal import OrgActor, OrgNotFound, Scope
from app.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from app.settings import Settings
from app.staff_auth import Forbidden

__all__ = [
    "ATTEMPT_TIMEOUT_SECONDS",
    "DELIVERY_WINDOW",
    "DESTINATION_REFUSED",
    "OUTBOX_RETENTION",
    "SIGNATURE_HEADER",
    "UNUSABLE_URL",
    "USER_AGENT",
    "DeliveryOutcome",
    "DeliveryRecord",
    "DeliveryStatus",
    "RoundReport",
    "WebhookDisabled",
    "backoff_delay",
    "delete_endpoint",
    "deliver_due",
    "deliveries_of",
    "delivery_organisation",
    "destination_policy",
    "dispatch_outbox",
    "endpoint_organisation",
    "event_types",
    "forget_old_events",
    "list_endpoints",
    "register_endpoint",
    "replay_delivery",
    "run_webhook_round",
    "set_endpoint_enabled",
    "sign",
    "start_webhook_dispatcher",
    "webhook_http_client",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Mobility-Signature"
SECRET_PREFIX = "whsec_"
# Retries run this long after a delivery's window opens (its creation, or its last replay).
DELIVERY_WINDOW = timedelta(hours=24)
# Dispatched events (and with them their delivery log) are kept this long, then forgotten
# (unless a delivery of theirs is still being attempted).
OUTBOX_RETENTION = timedelta(days=30)
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
DISPATCH_BATCH = 200
DELIVERY_BATCH = 50
DELIVERY_CONCURRENCY = 10
# The in-process runner's cadence (would be a setting: webhook_interval_seconds).
TICK_SECONDS = 1.0
MAX_ENDPOINTS_PER_ORGANISATION = 20
MAX_URL_LENGTH = 2048
DELIVERIES_PAGE_DEFAULT = 50
DELIVERIES_PAGE_MAX = 200
USER_AGENT = "mobility-aggregator-webhooks/0.1"
# Outside production, loopback is a permitted destination too (and plain http to it): the local
# receivers of tests and of a developer's machine. Nothing else that is not public, anywhere.
_LOCAL_RECEIVERS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# What the log says when the guard refused the destination (app/outbound.py). One text for a
# name that does not resolve and for one that resolves to a non-public address, with no address
# or port: the log must not tell a tenant which internal names exist or which ports are open.
DESTINATION_REFUSED = (
    "destination not allowed: the endpoint's host must resolve to public addresses only"
)
# A stored URL httpx will not parse (stored before today's checks).
UNUSABLE_URL = "the endpoint's URL cannot be used: register it again"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class WebhookDisabled(InvalidInput):
    code = "WEBHOOK_DISABLED"


# --- management ------------------------------------------------------------------------------


def _require_manager(actor: OrgActor) -> None:
    if actor.api_key is not None:
        actor.api_key.require_scope(Scope.WEBHOOKS_MANAGE)
    elif not actor.is_admin:
        raise Forbidden("this needs the OWNER or ADMIN role in the organisation")


def destination_policy(settings: Settings) -> outbound.DestinationPolicy:
    """Where deliveries may connect: public addresses; outside production, loopback too."""
    if settings.environment == "production":
        return outbound.PUBLIC_ONLY
    return outbound.DestinationPolicy(also_allowed=_LOCAL_RECEIVERS)


def _checked_url(url: str, settings: Settings) -> str:
    """The URL as stored, its host in canonical form; or INVALID_WEBHOOK_URL.

    An early, friendly refusal only: a name's addresses are checked at every connection
    (:func:`webhook_http_client`), since DNS may answer differently by then."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise _invalid_url(f"the URL is longer than {MAX_URL_LENGTH}")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _invalid_url(f"not a URL: {exc}") from None
    if parsed.scheme not in ("https", "http"):
        raise _invalid_url("the URL must use https")
    if not parsed.raw_host:
        raise _invalid_url("the URL needs a host")
    if parsed.userinfo:
        # Credentials in the URL would be stored and listed in the clear: the signature is how
        # the receiver authenticates us. (Also the "https://good.example@127.0.0.1/" trick.)
        raise _invalid_url("the URL must not carry credentials")
    if parsed.fragment:
        raise _invalid_url("the URL must not have a fragment")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise _invalid_url("the URL's port must be 1-65535")
    try:
        host = outbound.destination_host(parsed.raw_host.decode("ascii"))
    except outbound.InvalidHost as exc:
        raise _invalid_url(f"the URL's host {exc}") from None
    production = settings.environment == "production"
    if isinstance(host, str):
        local = host == "localhost" or host.endswith(".localhost")
        if production and not outbound.is_public_host_name(host):
            raise _invalid_url("the URL's host must be a public, fully qualified host name")
        canonical = host
    else:
        local = any(host in network for network in _LOCAL_RECEIVERS)
        if not destination_policy(settings).permits(host):
            raise _invalid_url("the URL's host must be a public address")
        canonical = str(host)
    if parsed.scheme != "https" and not (local and not production):
        raise _invalid_url("the URL must use https")
    return str(parsed.copy_with(host=canonical))


def _invalid_url(message: str) -> InvalidInput:
    return InvalidInput(message, code="INVALID_WEBHOOK_URL")


def _checked_events(events: Collection[EventType | str]) -> list[str]:
    wanted: list[str] = []
    for event in events:
        try:
            value = EventType(event).value
        except ValueError:
            raise InvalidInput(
                f"unknown event type {event!r}", code="INVALID_WEBHOOK_EVENTS"
            ) from None
        if value not in wanted:
            wanted.append(value)
    if not wanted:
        raise InvalidInput("subscribe to at least one event type", code="INVALID_WEBHOOK_EVENTS")
    return sorted(wanted)


async def register_endpoint(
    session: AsyncSession,
    actor: OrgActor,
    url: str,
    events: Collection[EventType | str],
    *,
    settings: Settings,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (``whsec_…``): the secret is shown this once."""
    _require_manager(actor)
    checked_url = _checked_url(url, settings)
    checked_events = _checked_events(events)
    count = await session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.organisation_id == actor.organisation_id)
    )
    if (count or 0) >= MAX_ENDPOINTS_PER_ORGANISATION:
        raise InvalidInput(
            f"an organisation has at most {MAX_ENDPOINTS_PER_ORGANISATION} webhook endpoints",
            code="TOO_MANY_WEBHOOKS",
        )
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(
        organisation_id=actor.organisation_id,
        url=checked_url,
        secret=secret,
        events=checked_events,
        enabled=True,
    )
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint, ["created_at"])
    return endpoint, secret


async def list_endpoints(session: AsyncSession, actor: OrgActor) -> list[WebhookEndpoint]:
    _require_manager(actor)
    rows = await session.execute(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.organisation_id == actor.organisation_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return list(rows.scalars())


async def _own_endpoint(
    session: AsyncSession, actor: OrgActor, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    endpoint = (
        await session.execute(
            select(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.organisation_id == actor.organisation_id,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if endpoint is None:
        raise OrgNotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


async def set_endpoint_enabled(
    session: AsyncSession,
    actor: OrgActor,
    endpoint_id: uuid.UUID,
    enabled: bool,
) -> WebhookEndpoint:
    """Disabling stops new deliveries to the endpoint and fails its pending ones (an admin may
    replay them once it is enabled again)."""
    _require_manager(actor)
    endpoint = await _own_endpoint(session, actor, endpoint_id)
    endpoint.enabled = enabled
    if not enabled:
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == endpoint.id,
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
            )
            .values(
                status=DeliveryStatus.FAILED.value,
                next_attempt_at=None,
                last_error="the endpoint was disabled",
            )
        )
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, actor: OrgActor, endpoint_id: uuid.UUID) -> None:
    """The endpoint and its delivery log go (the log is the endpoint's)."""
    _require_manager(actor)
    await _own_endpoint(session, actor, endpoint_id)
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


async def endpoint_organisation(session: AsyncSession, endpoint_id: uuid.UUID) -> uuid.UUID | None:
    """The endpoint's organisation, to resolve the caller's permission in it first."""
    return await session.scalar(
        select(WebhookEndpoint.organisation_id).where(WebhookEndpoint.id == endpoint_id)
    )


async def delivery_organisation(session: AsyncSession, delivery_id: uuid.UUID) -> uuid.UUID | None:
    return await session.scalar(
        select(WebhookEndpoint.organisation_id)
        .join(WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
        .where(WebhookDelivery.id == delivery_id)
    )


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One line of the delivery log."""

    delivery: WebhookDelivery
    event_type: str
    event_created_at: datetime


async def deliveries_of(
    session: AsyncSession,
    actor: OrgActor,
    *,
    endpoint_id: uuid.UUID | None = None,
    delivery_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    first: int | None = None,
) -> list[DeliveryRecord]:
    """The organisation's delivery log, newest first."""
    _require_manager(actor)
    limit = DELIVERIES_PAGE_DEFAULT if first is None else first
    if not 1 <= limit <= DELIVERIES_PAGE_MAX:
        raise InvalidInput(f"first must be 1-{DELIVERIES_PAGE_MAX}", code="INVALID_PAGE_SIZE")
    query = (
        select(WebhookDelivery, OutboxEvent.event_type, OutboxEvent.created_at)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookEndpoint.organisation_id == actor.organisation_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if delivery_id is not None:
        query = query.where(WebhookDelivery.id == delivery_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    rows = await session.execute(query)
    return [DeliveryRecord(d, event_type, created) for d, event_type, created in rows.all()]


async def replay_delivery(
    session: AsyncSession, actor: OrgActor, delivery_id: uuid.UUID, *, now: datetime
) -> WebhookDelivery:
    """Send a DELIVERED or FAILED delivery again: PENDING now, with a new 24 h window (its
    attempt count is kept, so the log shows every attempt ever made)."""
    _require_manager(actor)
    row = (
        await session.execute(
            select(WebhookDelivery, WebhookEndpoint.enabled)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookEndpoint.organisation_id == actor.organisation_id,
            )
            .with_for_update(of=WebhookDelivery)
        )
    ).first()
    if row is None:
        raise OrgNotFound(f"no webhook delivery {delivery_id}")
    delivery, enabled = row
    if not enabled:
        raise WebhookDisabled("the endpoint is disabled: enable it first")
    if delivery.status == DeliveryStatus.PENDING.value:
        raise InvalidInput(
            "this delivery is still being attempted", code="WEBHOOK_DELIVERY_PENDING"
        )
    delivery.status = DeliveryStatus.PENDING.value
    delivery.next_attempt_at = now
    delivery.delivered_at = None
    delivery.window_opened_at = now
    await session.flush()
    return delivery


# --- fan-out ---------------------------------------------------------------------------------


async def dispatch_outbox(
    sessions: async_sessionmaker[AsyncSession], now: datetime, *, batch: int = DISPATCH_BATCH
) -> int:
    """Turn one batch of undispatched outbox events into deliveries; how many events it took.

    Events are locked with SKIP LOCKED, so concurrent runners take disjoint batches; the unique
    (endpoint_id, event_id) makes a repeat of the same event a no-op all the same."""
    async with transaction(sessions) as session:
        event_ids = list(
            (
                await session.execute(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.dispatched_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
        )
        if not event_ids:
            return 0
        subscribed = (
            select(
                WebhookEndpoint.id,
                OutboxEvent.id,
                literal(DeliveryStatus.PENDING.value, WebhookDelivery.status.type),
                literal(0, WebhookDelivery.attempts.type),
                literal(now, WebhookDelivery.next_attempt_at.type),
                literal(now, WebhookDelivery.created_at.type),
                literal(now, WebhookDelivery.window_opened_at.type),
            )
            .join(
                WebhookEndpoint,
                (WebhookEndpoint.organisation_id == OutboxEvent.organisation_id)
                & WebhookEndpoint.enabled
                & OutboxEvent.event_type.op("=")(func.any(WebhookEndpoint.events)),
            )
            .where(OutboxEvent.id.in_(event_ids))
        )
        await session.execute(
            pg_insert(WebhookDelivery)
            .from_select(
                [
                    "endpoint_id",
                    "event_id",
                    "status",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                    "window_opened_at",
                ],
                subscribed,
            )
            .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
        )
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(event_ids)).values(dispatched_at=now)
        )
    return len(event_ids)


# --- delivery --------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Mobility-Signature`` header's value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>`` of
    ``b"<t>." + body`` keyed with the whole secret (``whsec_`` included), as UTF-8."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


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
        async with gate:
            result = await _send(http, one, now)
        return await _record(sessions, one, now, result, rng)

    return list(await asyncio.gather(*(attempt(c) for c in claimed)))


# --- running it ------------------------------------------------------------------------------


def webhook_http_client(
    settings: Settings,
    *,
    policy: outbound.DestinationPolicy | None = None,
    resolver: outbound.Resolver = outbound.system_resolver,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """The client deliveries are sent with: every connection it opens is checked where it is
    made (app/outbound.py), against :func:`destination_policy` unless a test passes its own
    ``policy``, ``resolver`` and trusted certificates (``verify``). Redirects are not followed
    (a signed POST is not re-sent elsewhere; :func:`_send` says so once more per request)."""
    return outbound.guarded_client(
        policy if policy is not None else destination_policy(settings),
        timeout=httpx.Timeout(ATTEMPT_TIMEOUT_SECONDS),
        resolver=resolver,
        verify=verify,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


@dataclass(slots=True)
class RoundReport:
    dispatched_events: int = 0
    outcomes: list[DeliveryOutcome] | None = None

    @property
    def attempted(self) -> int:
        return len(self.outcomes or [])


async def run_webhook_round(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, now: datetime
) -> RoundReport:
    """Fan out the whole outbox backlog, then attempt what is due (one batch)."""
    report = RoundReport(outcomes=[])
    while True:
        taken = await dispatch_outbox(sessions, now)
        report.dispatched_events += taken
        if taken < DISPATCH_BATCH:
            break
    report.outcomes = await deliver_due(sessions, http, now)
    return report


@contextlib.asynccontextmanager
async def start_webhook_dispatcher(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: Settings,
    *,
    clock: Clock = utc_now,
    interval_seconds: float = TICK_SECONDS,
) -> AsyncIterator[None]:
    """Run :func:`run_webhook_round` every ``interval_seconds`` in the background for as long
    as the context is open (``mobility serve``); a full batch goes round again at once.

    On exit the round in flight may finish (up to one attempt's timeout and a little): cut
    short, its requests would be sent again after their lease, which receivers must tolerate
    but should not see on every deploy."""
    del settings  # the knobs are module constants until they earn settings of their own
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            report = RoundReport()
            try:
                report = await run_webhook_round(sessions, http, clock())
                failed = [o for o in report.outcomes or [] if o.status is DeliveryStatus.FAILED]
                if failed:
                    log.warning("webhooks: %d deliveries failed for good", len(failed))
            except Exception:
                log.exception("webhook round failed; trying again next round")
            if report.attempted < DELIVERY_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), interval_seconds)

    async with in_background(loop(), name="webhook-dispatcher") as task:
        try:
            yield
        finally:
            stopping.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), ATTEMPT_TIMEOUT_SECONDS + 5)


def event_types(values: Sequence[str]) -> list[EventType]:
    """Stored event type strings as the enum (unknown ones, from a future version, dropped)."""
    return [EventType(v) for v in values if v in EventType._value2member_map_]


async def forget_old_events(session: AsyncSession, now: datetime, *, batch: int = 1000) -> int:
    """Delete dispatched events older than :data:`OUTBOX_RETENTION` whose deliveries are all
    settled (their delivery log goes with them); at most ``batch`` a call. Returns how many."""
    pending = select(WebhookDelivery.id).where(
        WebhookDelivery.event_id == OutboxEvent.id,
        WebhookDelivery.status == DeliveryStatus.PENDING.value,
    )
    old = (
        select(OutboxEvent.id)
        .where(OutboxEvent.dispatched_at < now - OUTBOX_RETENTION, ~pending.exists())
        .order_by(OutboxEvent.dispatched_at)
        .limit(batch)
    )
    result = await session.execute(
        delete(OutboxEvent).where(OutboxEvent.id.in_(old)).returning(OutboxEvent.id)
    )
    return len(result.all())
