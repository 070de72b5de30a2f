"""Webhooks end to end below the API: outbox → deliveries → signed POSTs to a real local
receiver, with the clock injected so 24 hours of retries take no waiting."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from taskiq import InMemoryBroker

from app.fleet import webhooks
from app.fleet.outbox import EventType, emit
from app.fleet.principal import ApiKeyPrincipal, MissingScope, OrgActor, OrgNotFound, Role, Scope
from app.fleet.tasks import WEBHOOK_TASK, register_webhook_tasks, webhook_kicker
from app.fleet.webhooks.delivery import _claim
from app.models import OutboxEvent, WebhookDelivery
from app.platform.db import transaction
from app.platform.errors import InvalidInput
from app.runtime import Runtime
from app.staff_auth import Forbidden
from tests.conftest import make_settings
from tests.webhook_support import (
    Receiver,
    closed_port_url,
    organisation,
    running,
    verify_signature,
)

T0 = datetime(2031, 3, 14, 9, 0, tzinfo=UTC)
PAYLOAD = {"booking_id": "b-1", "member_id": "m-1", "vehicle_id": "scooterco:42"}


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    # The client the dispatcher and the worker deliver with, guarded (app/platform/outbound.py); the
    # test settings let it reach the local receivers.
    async with webhooks.webhook_http_client(runtime.settings) as client:
        yield client


def admin_of(org_id: uuid.UUID) -> OrgActor:
    return OrgActor(org_id, user_id=uuid.uuid4(), role=Role.ADMIN)


async def register(
    runtime: Runtime, org_id: uuid.UUID, url: str, events: list[EventType] | None = None
) -> tuple[uuid.UUID, str]:
    async with transaction(runtime.sessions) as session:
        row, secret = await webhooks.register_endpoint(
            session,
            admin_of(org_id),
            url,
            events or [EventType.BOOKING_CONFIRMED],
            settings=runtime.settings,
        )
        return row.id, secret


async def emit_committed(
    runtime: Runtime,
    org_id: uuid.UUID,
    event_type: EventType = EventType.BOOKING_CONFIRMED,
    payload: dict[str, str] | None = None,
) -> None:
    async with transaction(runtime.sessions) as session:
        await emit(
            session, organisation_id=org_id, event_type=event_type, payload=payload or PAYLOAD
        )


async def deliveries(runtime: Runtime) -> list[WebhookDelivery]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(WebhookDelivery).order_by(WebhookDelivery.created_at))
        return list(rows.scalars())


async def only_delivery(runtime: Runtime) -> WebhookDelivery:
    rows = await deliveries(runtime)
    assert len(rows) == 1, rows
    return rows[0]


def expected_wait(window_opened: datetime, failed_at: datetime) -> tuple[timedelta, timedelta]:
    """docs/webhooks.md: wait as long as the delivery has been failing, at least 30 s, at most
    1 h, plus up to 20 % jitter."""
    base = min(max(timedelta(seconds=30), failed_at - window_opened), timedelta(hours=1))
    return base, base * 1.2


async def test_failing_receiver_is_retried_on_schedule_then_delivered_once(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    receiver = Receiver(fail_first=3)
    async with running(receiver) as base:
        org = await organisation(runtime)
        _, secret = await register(runtime, org, f"{base}/hook")
        assert secret.startswith("whsec_")
        await emit_committed(runtime, org)
        assert await webhooks.dispatch_outbox(runtime.sessions, T0) == 1

        now = T0
        attempt_times = []
        for attempt in range(1, 4):
            outcomes = await webhooks.deliver_due(runtime.sessions, http, now)
            assert [o.status for o in outcomes] == [webhooks.DeliveryStatus.PENDING]
            attempt_times.append(now)
            row = await only_delivery(runtime)
            assert row.attempts == attempt
            assert row.last_status_code == 500
            assert row.last_response == '{"error":"not today"}'
            assert row.last_error == "HTTP 500"
            assert row.next_attempt_at is not None
            low, high = expected_wait(T0, now)
            assert now + low <= row.next_attempt_at <= now + high
            # Not a moment early: just before the retry is due nothing is sent.
            just_before = row.next_attempt_at - timedelta(seconds=1)
            assert await webhooks.deliver_due(runtime.sessions, http, just_before) == []
            assert len(receiver.received) == attempt
            now = row.next_attempt_at

        outcomes = await webhooks.deliver_due(runtime.sessions, http, now)
        assert [(o.status, o.status_code) for o in outcomes] == [
            (webhooks.DeliveryStatus.DELIVERED, 200)
        ]
        attempt_times.append(now)
        row = await only_delivery(runtime)
        assert (row.status, row.attempts, row.delivered_at) == ("DELIVERED", 4, now)
        assert row.next_attempt_at is None and row.last_error is None

        # Delivered once: nothing more is ever sent for it.
        assert await webhooks.deliver_due(runtime.sessions, http, now + timedelta(days=2)) == []
        assert len(receiver.received) == 4

    bodies = {r.body for r in receiver.received}
    # Every attempt carried the same document (the receiver de-duplicates on its id) ...
    assert len(bodies) == 1
    document = json.loads(bodies.pop())
    assert document == {
        "id": str(row.id),
        "type": "booking.confirmed",
        "created": document["created"],
        "data": PAYLOAD,
    }
    datetime.fromisoformat(document["created"])
    # ... signed at the time of its attempt, verifiable with the documented algorithm.
    for request, at in zip(receiver.received, attempt_times, strict=True):
        header = request.headers["mobility-signature"]
        assert header.startswith(f"t={int(at.timestamp())},v1=")
        assert verify_signature(secret, header, request.body, now=at)
        assert not verify_signature("whsec_someone-else", header, request.body, now=at)
        assert not verify_signature(secret, header, request.body + b" ", now=at)
        assert request.headers["content-type"] == "application/json"


async def test_receiver_down_for_good_fails_after_24_hours(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    org = await organisation(runtime)
    await register(runtime, org, closed_port_url())
    await emit_committed(runtime, org)
    await webhooks.dispatch_outbox(runtime.sessions, T0)

    now = T0
    attempts: list[datetime] = []
    while True:
        outcomes = await webhooks.deliver_due(runtime.sessions, http, now)
        assert len(outcomes) == 1
        attempts.append(now)
        row = await only_delivery(runtime)
        if row.status != "PENDING":
            break
        assert row.next_attempt_at is not None
        low, high = expected_wait(T0, now)
        deadline = T0 + timedelta(hours=24)
        assert min(now + low, deadline) <= row.next_attempt_at <= min(now + high, deadline)
        now = row.next_attempt_at
        assert len(attempts) < 100, "never gave up"

    assert row.status == "FAILED"
    # The last attempt was made at the end of the window, not skipped.
    assert attempts[-1] == T0 + timedelta(hours=24)
    assert row.attempts == len(attempts)
    assert row.next_attempt_at is None and row.delivered_at is None
    assert row.last_status_code is None
    # What failed, without the address or port (an exception's text would have both).
    assert row.last_error == "ConnectError: could not connect to the endpoint"
    # 30 s, 30 s, 1 min, … an hour at most (docs/webhooks.md: about 28-32 in the day).
    assert 27 <= len(attempts) <= 33
    assert await webhooks.deliver_due(runtime.sessions, http, now + timedelta(days=1)) == []


async def test_replay_sends_a_failed_delivery_again_with_a_new_window(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    receiver = Receiver(fail_first=10**6)
    async with running(receiver) as base:
        org = await organisation(runtime)
        await register(runtime, org, f"{base}/hook")
        await emit_committed(runtime, org)
        await webhooks.dispatch_outbox(runtime.sessions, T0)
        now = T0
        while (row := await only_delivery(runtime)).status == "PENDING":
            await webhooks.deliver_due(runtime.sessions, http, now)
            now = (await only_delivery(runtime)).next_attempt_at or now
        assert row.status == "FAILED"
        failed_attempts = row.attempts

        # The admin fixed their receiver, and replays.
        receiver.fail_first = 0
        later = T0 + timedelta(days=3)
        async with transaction(runtime.sessions) as session:
            await webhooks.replay_delivery(session, admin_of(org), row.id, now=later)
        row = await only_delivery(runtime)
        assert (row.status, row.next_attempt_at, row.window_opened_at) == ("PENDING", later, later)
        assert row.created_at < later  # the delivery's creation is not rewritten
        assert row.attempts == failed_attempts

        outcomes = await webhooks.deliver_due(runtime.sessions, http, later)
        assert [o.status for o in outcomes] == [webhooks.DeliveryStatus.DELIVERED]
        row = await only_delivery(runtime)
        assert (row.status, row.attempts) == ("DELIVERED", failed_attempts + 1)

        # A delivered one may be replayed too (the receiver lost it); a pending one may not.
        async with transaction(runtime.sessions) as session:
            await webhooks.replay_delivery(session, admin_of(org), row.id, now=later)
        with pytest.raises(InvalidInput) as pending:
            async with transaction(runtime.sessions) as session:
                await webhooks.replay_delivery(session, admin_of(org), row.id, now=later)
        assert pending.value.code == "WEBHOOK_DELIVERY_PENDING"
        # Another organisation's admin does not find it; a booker may not.
        other = await organisation(runtime, "Other")
        with pytest.raises(OrgNotFound):
            async with transaction(runtime.sessions) as session:
                await webhooks.replay_delivery(session, admin_of(other), row.id, now=later)
        with pytest.raises(Forbidden):
            async with transaction(runtime.sessions) as session:
                booker = OrgActor(org, user_id=uuid.uuid4(), role=Role.BOOKER)
                await webhooks.replay_delivery(session, booker, row.id, now=later)


async def test_event_of_a_rolled_back_transaction_is_never_delivered(runtime: Runtime) -> None:
    org = await organisation(runtime)
    await register(runtime, org, "https://hooks.example.org/x")

    class BookingChangeFailed(Exception):
        pass

    with pytest.raises(BookingChangeFailed):
        async with transaction(runtime.sessions) as session:
            await emit(
                session,
                organisation_id=org,
                event_type=EventType.BOOKING_CONFIRMED,
                payload=PAYLOAD,
            )
            raise BookingChangeFailed

    assert await webhooks.dispatch_outbox(runtime.sessions, T0) == 0
    assert await deliveries(runtime) == []
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxEvent)) == 0


async def test_fan_out_follows_subscriptions_and_is_idempotent(runtime: Runtime) -> None:
    org = await organisation(runtime)
    other = await organisation(runtime, "Other")
    confirmed, _ = await register(runtime, org, "https://a.example.org/h")
    both, _ = await register(
        runtime,
        org,
        "https://b.example.org/h",
        [EventType.BOOKING_CONFIRMED, EventType.POLICY_VIOLATION],
    )
    disabled, _ = await register(runtime, org, "https://c.example.org/h")
    async with transaction(runtime.sessions) as session:
        await webhooks.set_endpoint_enabled(session, admin_of(org), disabled, False)
    theirs, _ = await register(runtime, other, "https://d.example.org/h")

    await emit_committed(runtime, org, EventType.BOOKING_CONFIRMED)
    await emit_committed(runtime, org, EventType.POLICY_VIOLATION)
    await emit_committed(runtime, org, EventType.BOOKING_FINISHED)  # nobody subscribed

    assert await webhooks.dispatch_outbox(runtime.sessions, T0) == 3
    assert await webhooks.dispatch_outbox(runtime.sessions, T0) == 0
    rows = await deliveries(runtime)
    per_endpoint = sorted((r.endpoint_id, r.status, r.next_attempt_at) for r in rows)
    assert per_endpoint == sorted(
        [
            (confirmed, "PENDING", T0),
            (both, "PENDING", T0),
            (both, "PENDING", T0),
        ]
    )
    assert theirs not in {r.endpoint_id for r in rows}

    # Even an event handed out twice (here: marked undispatched by hand) gives one delivery
    # per endpoint.
    async with transaction(runtime.sessions) as session:
        await session.execute(update(OutboxEvent).values(dispatched_at=None))
    assert await webhooks.dispatch_outbox(runtime.sessions, T0) == 3
    assert len(await deliveries(runtime)) == 3


async def test_two_runners_never_send_the_same_attempt(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    receiver = Receiver(delay_seconds=0.3)
    async with running(receiver) as base:
        org = await organisation(runtime)
        await register(runtime, org, f"{base}/hook")
        await emit_committed(runtime, org)
        await webhooks.dispatch_outbox(runtime.sessions, T0)
        first, second = await asyncio.gather(
            webhooks.deliver_due(runtime.sessions, http, T0),
            webhooks.deliver_due(runtime.sessions, http, T0),
        )
    assert len(first) + len(second) == 1
    assert len(receiver.received) == 1
    assert (await only_delivery(runtime)).status == "DELIVERED"


async def test_a_runner_that_died_mid_attempt_is_retried_after_its_lease(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    receiver = Receiver()
    async with running(receiver) as base:
        org = await organisation(runtime)
        await register(runtime, org, f"{base}/hook")
        await emit_committed(runtime, org)
        await webhooks.dispatch_outbox(runtime.sessions, T0)
        # A claim whose runner never came back (the lease committed, no result recorded).
        claimed = await _claim(runtime.sessions, T0, 10)
        assert len(claimed) == 1
        assert await webhooks.deliver_due(runtime.sessions, http, T0 + timedelta(seconds=59)) == []
        outcomes = await webhooks.deliver_due(runtime.sessions, http, T0 + timedelta(seconds=60))
    assert [o.status for o in outcomes] == [webhooks.DeliveryStatus.DELIVERED]
    assert len(receiver.received) == 1


async def test_redirects_are_not_followed_and_long_answers_are_cut(runtime: Runtime) -> None:
    receiver = Receiver()
    # A client that follows redirects unless told not to: the delivery must tell it.
    following = httpx.AsyncClient(follow_redirects=True)
    async with running(receiver) as base, following as http:
        receiver.redirect_to = f"{base}/elsewhere"
        org = await organisation(runtime)
        await register(runtime, org, f"{base}/hook")
        await emit_committed(runtime, org)
        await webhooks.dispatch_outbox(runtime.sessions, T0)
        await webhooks.deliver_due(runtime.sessions, http, T0)
        row = await only_delivery(runtime)
        assert (row.status, row.last_status_code) == ("PENDING", 302)
        assert row.last_error == f"redirect to {base}/elsewhere not followed"
        assert [r.path for r in receiver.received] == ["/hook"]

        receiver.redirect_to = None
        receiver.fail_first = 10**6
        receiver.failure_body = "é".encode() * 3000
        assert row.next_attempt_at is not None
        await webhooks.deliver_due(runtime.sessions, http, row.next_attempt_at)
        row = await only_delivery(runtime)
        assert row.last_status_code == 500
        assert row.last_response is not None
        assert len(row.last_response.encode()) <= 1024
        assert row.last_response.startswith("é" * 500)


@pytest.mark.parametrize(
    ("url", "environment"),
    [
        ("http://hooks.example.org/x", "test"),
        ("ftp://hooks.example.org/x", "test"),
        ("http://127.0.0.1:9000/x", "production"),
        ("https://10.1.2.3/x", "production"),
        ("https://user:pass@hooks.example.org/x", "test"),
        ("https:///x", "test"),
        ("not a url", "test"),
    ],
)
async def test_endpoint_url_must_be_https(runtime: Runtime, url: str, environment: str) -> None:
    org = await organisation(runtime)
    settings = make_settings(environment=environment)
    with pytest.raises(InvalidInput) as refused:
        async with transaction(runtime.sessions) as session:
            await webhooks.register_endpoint(
                session, admin_of(org), url, [EventType.BOOKING_STARTED], settings=settings
            )
    assert refused.value.code == "INVALID_WEBHOOK_URL"


async def test_local_http_is_allowed_outside_production(runtime: Runtime) -> None:
    org = await organisation(runtime)
    for url in ("http://127.0.0.1:9000/x", "http://localhost/x", "https://hooks.example.org/"):
        endpoint, _ = await register(runtime, org, url)
        assert endpoint is not None


async def test_events_must_be_known_and_not_empty(runtime: Runtime) -> None:
    org = await organisation(runtime)
    for events in ([], ["booking.exploded"]):
        with pytest.raises(InvalidInput) as refused:
            async with transaction(runtime.sessions) as session:
                await webhooks.register_endpoint(
                    session,
                    admin_of(org),
                    "https://hooks.example.org/x",
                    events,
                    settings=runtime.settings,
                )
        assert refused.value.code == "INVALID_WEBHOOK_EVENTS"


async def test_management_is_for_admins_and_keys_with_the_scope(runtime: Runtime) -> None:
    org = await organisation(runtime)
    endpoint, _ = await register(runtime, org, "https://hooks.example.org/x")
    key = ApiKeyPrincipal(uuid.uuid4(), org, frozenset({Scope.WEBHOOKS_MANAGE}))
    unscoped = ApiKeyPrincipal(uuid.uuid4(), org, frozenset({Scope.BOOKINGS_WRITE}))
    async with runtime.sessions() as session:
        listed = await webhooks.list_endpoints(session, OrgActor(org, api_key=key))
        assert [e.id for e in listed] == [endpoint]
        with pytest.raises(MissingScope):
            await webhooks.list_endpoints(session, OrgActor(org, api_key=unscoped))
        with pytest.raises(Forbidden):
            await webhooks.list_endpoints(session, OrgActor(org, uuid.uuid4(), Role.RIDER))
    other = await organisation(runtime, "Other")
    with pytest.raises(OrgNotFound):
        async with transaction(runtime.sessions) as session:
            await webhooks.delete_endpoint(session, admin_of(other), endpoint)
    async with transaction(runtime.sessions) as session:
        await webhooks.delete_endpoint(session, admin_of(org), endpoint)
    async with runtime.sessions() as session:
        assert await webhooks.list_endpoints(session, admin_of(org)) == []


async def test_background_dispatcher_delivers_and_finishes_its_round_on_exit(
    runtime: Runtime,
) -> None:
    receiver = Receiver(fail_first=0)
    async with running(receiver) as base, webhooks.webhook_http_client(runtime.settings) as http:
        org = await organisation(runtime)
        _, secret = await register(runtime, org, f"{base}/hook")
        async with webhooks.start_webhook_dispatcher(
            runtime.sessions, http, runtime.settings, interval_seconds=0.05
        ):
            await emit_committed(runtime, org)
            await asyncio.wait_for(receiver.arrived.wait(), timeout=10)
        header = receiver.received[0].headers["mobility-signature"]
        assert verify_signature(secret, header, receiver.received[0].body, datetime.now(UTC))
    # Leaving the context right after the request arrived let that round record its outcome
    # (cut short, the delivery would be sent again after its lease).
    assert (await only_delivery(runtime)).status == "DELIVERED"


async def test_worker_task_runs_a_round(runtime: Runtime) -> None:
    receiver = Receiver()
    async with running(receiver) as base:
        org = await organisation(runtime)
        await register(runtime, org, f"{base}/hook")
        await emit_committed(runtime, org)
        broker = InMemoryBroker()
        register_webhook_tasks(broker, runtime.settings)
        assert broker.find_task(WEBHOOK_TASK) is not None
        await broker.startup()
        try:
            sent = await webhook_kicker(broker)()
            result = await sent.wait_result(timeout=10)  # type: ignore[attr-defined]
        finally:
            await broker.shutdown()
    assert not result.is_err, result.error
    assert result.return_value == "1 events dispatched, 1 attempts"
    assert len(receiver.received) == 1
    assert (await only_delivery(runtime)).status == "DELIVERED"


async def test_old_settled_events_are_forgotten_and_nothing_still_being_sent(
    runtime: Runtime,
) -> None:
    from tests.webhook_support import organisation

    org_id = await organisation(runtime)
    now = datetime(2031, 6, 1, tzinfo=UTC)
    retention = webhooks.OUTBOX_RETENTION
    ages = {
        "old_settled": retention + timedelta(hours=1),
        "old_pending": retention * 2,
        "young": retention - timedelta(hours=1),
        "undispatched": None,
    }
    async with transaction(runtime.sessions) as session:
        endpoint, _ = await webhooks.register_endpoint(
            session,
            OrgActor(org_id, user_id=uuid.uuid4(), role=Role.OWNER),
            "http://127.0.0.1:9/hook",
            [EventType.BOOKING_CONFIRMED],
            settings=make_settings(),
        )
        ids: dict[str, int] = {}
        for name, age in ages.items():
            event = OutboxEvent(
                organisation_id=org_id,
                event_type=EventType.BOOKING_CONFIRMED.value,
                payload={"name": name},
                dispatched_at=None if age is None else now - age,
            )
            session.add(event)
            await session.flush()
            ids[name] = event.id
            if age is not None:
                session.add(
                    WebhookDelivery(
                        endpoint_id=endpoint.id,
                        event_id=event.id,
                        status="PENDING" if name == "old_pending" else "DELIVERED",
                    )
                )
    async with transaction(runtime.sessions) as session:
        assert await webhooks.forget_old_events(session, now) == 1
    async with runtime.sessions() as session:
        left = set((await session.execute(select(OutboxEvent.id))).scalars())
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert left == {ids["old_pending"], ids["young"], ids["undispatched"]}
    assert deliveries == 2  # the forgotten event's delivery log went with it


async def test_an_endpoint_whose_secret_cannot_be_read_fails_alone_and_sends_nothing_unsigned(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    """A secret sealed with a key this deployment lost (app/platform/secret_box.py): that endpoint's
    delivery is a failed attempt with a clear error; the other endpoint's goes out signed."""
    from sqlalchemy import text

    from app.platform.secret_box import SecretBox

    receiver = Receiver()
    async with running(receiver) as base:
        org = await organisation(runtime)
        broken_id, _ = await register(runtime, org, f"{base}/elsewhere")
        _, good_secret = await register(runtime, org, f"{base}/hook")
        lost_key = SecretBox.from_settings(
            make_settings(secrets_keys="x" * 43)  # 32 bytes, not this deployment's key
        )
        async with transaction(runtime.sessions) as session:
            await session.execute(
                text("UPDATE webhook_endpoints SET secret = :s WHERE id = :i"),
                {"s": lost_key.seal("whsec_lost", "webhook_endpoints.secret"), "i": broken_id},
            )
        await emit_committed(runtime, org)
        assert await webhooks.dispatch_outbox(runtime.sessions, T0) == 1  # one event, two sends
        outcomes = await webhooks.deliver_due(runtime.sessions, http, T0)
        assert sorted(o.status for o in outcomes) == sorted(
            [webhooks.DeliveryStatus.DELIVERED, webhooks.DeliveryStatus.PENDING]
        )
        [pending] = [o for o in outcomes if o.status is webhooks.DeliveryStatus.PENDING]
        assert pending.error is not None and "signing secret cannot be read" in pending.error
        # Only the good endpoint received anything, signed with its own secret.
        assert [r.path for r in receiver.received] == ["/hook"]
        [request] = receiver.received
        header = request.headers[webhooks.SIGNATURE_HEADER.lower()]
        assert verify_signature(good_secret, header, request.body, now=T0)
