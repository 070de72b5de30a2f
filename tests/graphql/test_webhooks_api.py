"""Webhooks through the API: registration, the delivery log, replay, and who may do what
(admins and keys with webhooks:manage of the organisation; everyone else learns nothing)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.fleet import webhooks
from app.fleet.outbox import EventType, emit
from app.fleet.principal import OrgActor, Role, Scope
from app.models import WebhookDelivery
from app.platform.db import transaction
from app.runtime import Runtime
from tests.booking_support import codes, gql, sign_up
from tests.webhook_support import (
    Receiver,
    add_member,
    api_key,
    closed_port_url,
    organisation,
    running,
    verify_signature,
)

REGISTER = """
mutation R($org: ID, $url: String!, $events: [WebhookEventType!]!) {
  registerWebhook(organisationId: $org, url: $url, events: $events) {
    secret endpoint { id url events enabled createdAt }
  }
}"""
ENDPOINTS = "query E($org: ID) { webhookEndpoints(organisationId: $org) { id url events } }"
DELIVERIES = """
query D($org: ID, $endpoint: ID, $status: WebhookDeliveryStatus, $first: Int) {
  webhookDeliveries(organisationId: $org, endpointId: $endpoint, status: $status, first: $first) {
    id endpointId eventType status attempts lastStatusCode lastResponse lastError
    nextAttemptAt lastAttemptAt deliveredAt createdAt eventCreatedAt
  }
}"""
REPLAY = "mutation P($id: ID!) { replayWebhookDelivery(id: $id) { id status attempts } }"
DELETE = "mutation X($id: ID!) { deleteWebhook(id: $id) }"
ENABLE = (
    "mutation N($id: ID!, $on: Boolean!) { setWebhookEnabled(id: $id, enabled: $on) { enabled } }"
)


async def admin(
    api: httpx.AsyncClient, runtime: Runtime, org: uuid.UUID, role: str = "ADMIN"
) -> str:
    token, user_id = await sign_up(api)
    await add_member(runtime, org, user_id, role)
    return token


async def emit_committed(runtime: Runtime, org: uuid.UUID) -> None:
    async with transaction(runtime.sessions) as session:
        await emit(
            session,
            organisation_id=org,
            event_type=EventType.BOOKING_CANCELLED,
            payload={"booking_id": "b-7"},
        )


async def register(
    api: httpx.AsyncClient, token: str, org: uuid.UUID | None, url: str
) -> dict[str, Any]:
    body = await gql(
        api,
        REGISTER,
        {"org": str(org) if org else None, "url": url, "events": ["BOOKING_CANCELLED"]},
        token=token,
    )
    assert "errors" not in body, body
    return body["data"]["registerWebhook"]  # type: ignore[no-any-return]


async def fail_for_good(
    runtime: Runtime, http: httpx.AsyncClient, org: uuid.UUID, start: datetime
) -> None:
    """Run the pipeline on an injected clock until the organisation's deliveries have all left
    PENDING (the receiver never accepts)."""
    actor = OrgActor(org, user_id=uuid.uuid4(), role=Role.ADMIN)
    await webhooks.dispatch_outbox(runtime.sessions, start)
    now = start
    for _ in range(100):
        if not await webhooks.deliver_due(runtime.sessions, http, now):
            return
        async with runtime.sessions() as session:
            pending = await webhooks.deliveries_of(
                session,
                actor,
                status=webhooks.DeliveryStatus.PENDING,
            )
        if not pending:
            return
        assert pending[0].delivery.next_attempt_at is not None
        now = pending[0].delivery.next_attempt_at
    pytest.fail("deliveries never settled")


async def test_admin_registers_and_sees_a_failed_delivery_in_the_log_then_replays_it(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    org = await organisation(runtime)
    token = await admin(api, runtime, org, "OWNER")
    down = closed_port_url()
    registered = await register(api, token, org, down)
    assert registered["secret"].startswith("whsec_")
    endpoint = registered["endpoint"]
    assert (endpoint["url"], endpoint["events"], endpoint["enabled"]) == (
        down,
        ["BOOKING_CANCELLED"],
        True,
    )
    listed = await gql(api, ENDPOINTS, {"org": str(org)}, token=token)
    # The secret is never shown again (the type has no such field).
    assert listed["data"]["webhookEndpoints"] == [
        {"id": endpoint["id"], "url": down, "events": ["BOOKING_CANCELLED"]}
    ]

    await emit_committed(runtime, org)
    # The injected clock ran out its window a while ago: the replay (on the wall clock) opens
    # a later one.
    start = datetime.now(UTC) - timedelta(hours=25)
    async with webhooks.webhook_http_client(runtime.settings) as http:
        await fail_for_good(runtime, http, org, start)

    log = await gql(api, DELIVERIES, {"org": str(org), "status": "FAILED"}, token=token)
    assert "errors" not in log, log
    [failed] = log["data"]["webhookDeliveries"]
    assert failed["endpointId"] == endpoint["id"]
    assert failed["eventType"] == "BOOKING_CANCELLED"
    assert failed["status"] == "FAILED"
    assert failed["attempts"] > 20
    assert failed["lastStatusCode"] is None and failed["deliveredAt"] is None
    assert failed["lastError"] == "ConnectError: could not connect to the endpoint"
    assert failed["nextAttemptAt"] is None
    assert datetime.fromisoformat(failed["lastAttemptAt"]) == start + timedelta(hours=24)
    pending = await gql(api, DELIVERIES, {"org": str(org), "status": "PENDING"}, token=token)
    assert pending["data"]["webhookDeliveries"] == []

    # An admin replays it (test_replayed_delivery_reaches_the_fixed_receiver sends it).
    replayed = await gql(api, REPLAY, {"id": failed["id"]}, token=token)
    assert replayed["data"]["replayWebhookDelivery"] == {
        "id": failed["id"],
        "status": "PENDING",
        "attempts": failed["attempts"],
    }
    again = await gql(api, REPLAY, {"id": failed["id"]}, token=token)
    assert codes(again) == ["WEBHOOK_DELIVERY_PENDING"]


async def test_replayed_delivery_reaches_the_fixed_receiver(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    receiver = Receiver(fail_first=10**6)
    async with running(receiver) as base, webhooks.webhook_http_client(runtime.settings) as http:
        org = await organisation(runtime)
        token = await admin(api, runtime, org)
        secret = (await register(api, token, None, f"{base}/hook"))["secret"]
        await emit_committed(runtime, org)
        await fail_for_good(runtime, http, org, datetime.now(UTC) - timedelta(hours=25))
        [failed] = (await gql(api, DELIVERIES, {}, token=token))["data"]["webhookDeliveries"]
        assert (failed["status"], failed["lastStatusCode"]) == ("FAILED", 500)
        tried = len(receiver.received)

        receiver.fail_first = 0
        replayed = await gql(api, REPLAY, {"id": failed["id"]}, token=token)
        assert replayed["data"]["replayWebhookDelivery"]["status"] == "PENDING"
        now = datetime.now(UTC)
        outcomes = await webhooks.deliver_due(runtime.sessions, http, now)
        assert [o.status for o in outcomes] == [webhooks.DeliveryStatus.DELIVERED]

    assert len(receiver.received) == tried + 1
    last = receiver.received[-1]
    assert verify_signature(secret, last.headers["mobility-signature"], last.body, now)
    [row] = (await gql(api, DELIVERIES, {}, token=token))["data"]["webhookDeliveries"]
    assert (row["status"], row["attempts"]) == ("DELIVERED", failed["attempts"] + 1)
    assert row["deliveredAt"] is not None


async def test_another_organisation_finds_nothing_of_ours(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    ours = await organisation(runtime)
    theirs = await organisation(runtime, "Rival")
    our_admin = await admin(api, runtime, ours)
    their_admin = await admin(api, runtime, theirs, "OWNER")
    their_key = await api_key(runtime, theirs, [Scope.WEBHOOKS_MANAGE])
    endpoint = (await register(api, our_admin, ours, "https://hooks.example.org/a"))["endpoint"]
    await emit_committed(runtime, ours)
    await webhooks.dispatch_outbox(runtime.sessions, datetime.now(UTC))
    [delivery] = (await gql(api, DELIVERIES, {}, token=our_admin))["data"]["webhookDeliveries"]
    # Settled, so that a replay would be allowed to anyone who may.
    async with transaction(runtime.sessions) as session:
        await session.execute(update(WebhookDelivery).values(status="FAILED"))

    for token in (their_admin, their_key):
        attempts = [
            await gql(api, ENDPOINTS, {"org": str(ours)}, token=token),
            await gql(api, DELIVERIES, {"org": str(ours)}, token=token),
            await gql(api, DELIVERIES, {"endpoint": endpoint["id"]}, token=token),
            await gql(api, REPLAY, {"id": delivery["id"]}, token=token),
            await gql(api, DELETE, {"id": endpoint["id"]}, token=token),
            await gql(api, ENABLE, {"id": endpoint["id"], "on": False}, token=token),
            await gql(api, REPLAY, {"id": str(uuid.uuid4())}, token=token),
            await gql(api, DELETE, {"id": "not-a-uuid"}, token=token),
        ]
        found = [codes(a) for a in attempts]
        # Filtering our endpoint in their own log is an empty list, not an error.
        assert found == [["NOT_FOUND"]] * 2 + [[]] + [["NOT_FOUND"]] * 5, found
        assert attempts[2]["data"]["webhookDeliveries"] == []
        own = await gql(api, ENDPOINTS, {}, token=token)
        assert own["data"]["webhookEndpoints"] == []

    # Nothing of ours changed.
    [still] = (await gql(api, DELIVERIES, {}, token=our_admin))["data"]["webhookDeliveries"]
    assert (still["status"], still["attempts"]) == ("FAILED", 0)
    listed = (await gql(api, ENDPOINTS, {}, token=our_admin))["data"]["webhookEndpoints"]
    assert [e["id"] for e in listed] == [endpoint["id"]]


async def test_a_booker_is_forbidden_and_anonymous_callers_must_sign_in(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    org = await organisation(runtime)
    owner = await admin(api, runtime, org, "OWNER")
    booker = await admin(api, runtime, org, "BOOKER")
    endpoint = (await register(api, owner, org, "https://hooks.example.org/a"))["endpoint"]
    refused = await gql(
        api,
        REGISTER,
        {"org": str(org), "url": "https://hooks.example.org/b", "events": ["BOOKING_STARTED"]},
        token=booker,
    )
    assert codes(refused) == ["FORBIDDEN"]
    assert codes(await gql(api, ENDPOINTS, {"org": str(org)}, token=booker)) == ["FORBIDDEN"]
    assert codes(await gql(api, DELETE, {"id": endpoint["id"]}, token=booker)) == ["FORBIDDEN"]
    # Anonymous: the same answer for an endpoint that exists and one that does not.
    assert codes(await gql(api, DELETE, {"id": endpoint["id"]})) == ["UNAUTHENTICATED"]
    assert codes(await gql(api, DELETE, {"id": str(uuid.uuid4())})) == ["UNAUTHENTICATED"]
    assert codes(await gql(api, ENDPOINTS, {"org": str(org)})) == ["UNAUTHENTICATED"]


async def test_an_api_key_needs_the_webhooks_scope(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    org = await organisation(runtime)
    key = await api_key(runtime, org, [Scope.WEBHOOKS_MANAGE])
    unscoped = await api_key(runtime, org, [Scope.BOOKINGS_WRITE, Scope.REPORTS_READ])

    registered = await register(api, key, None, "https://hooks.example.org/k")
    endpoint_id = registered["endpoint"]["id"]
    listed = await gql(api, ENDPOINTS, {}, token=key)
    assert [e["id"] for e in listed["data"]["webhookEndpoints"]] == [endpoint_id]

    for query, variables in [
        (ENDPOINTS, {}),
        (DELIVERIES, {}),
        (REGISTER, {"url": "https://hooks.example.org/z", "events": ["BOOKING_EXPIRED"]}),
        (DELETE, {"id": endpoint_id}),
    ]:
        assert codes(await gql(api, query, variables, token=unscoped)) == ["MISSING_SCOPE"]

    disabled = await gql(api, ENABLE, {"id": endpoint_id, "on": False}, token=key)
    assert disabled["data"]["setWebhookEnabled"] == {"enabled": False}
    deleted = await gql(api, DELETE, {"id": endpoint_id}, token=key)
    assert deleted["data"]["deleteWebhook"] == endpoint_id
    assert (await gql(api, ENDPOINTS, {}, token=key))["data"]["webhookEndpoints"] == []


async def test_registration_refuses_plain_http_and_no_events(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    org = await organisation(runtime)
    token = await admin(api, runtime, org)
    plain = await gql(
        api,
        REGISTER,
        {"url": "http://hooks.example.org/x", "events": ["BOOKING_STARTED"]},
        token=token,
    )
    assert codes(plain) == ["INVALID_WEBHOOK_URL"]
    none = await gql(
        api, REGISTER, {"url": "https://hooks.example.org/x", "events": []}, token=token
    )
    assert codes(none) == ["INVALID_WEBHOOK_EVENTS"]
    # The address behind the spelling is judged (outside production, loopback only).
    metadata = await gql(
        api,
        REGISTER,
        {"url": "https://169.254.169.254./latest", "events": ["BOOKING_STARTED"]},
        token=token,
    )
    assert codes(metadata) == ["INVALID_WEBHOOK_URL"]
    assert metadata["errors"][0]["message"] == "the URL's host must be a public address"


async def test_endpoints_and_deliveries_list_when_a_secret_cannot_be_opened(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    """A signing secret sealed with a key this process lacks fails that endpoint's deliveries
    (docs/webhooks.md), and nothing else: the admin still sees the endpoint and its log."""
    from sqlalchemy import text

    from app.platform import secret_box

    org = await organisation(runtime)
    token = await admin(api, runtime, org)
    registered = await register(api, token, org, "https://hooks.example.org/in")
    foreign = secret_box.SecretBox.from_settings(
        runtime.settings.model_copy(update={"secrets_keys": secret_box.new_key()})
    )
    lost = foreign.seal("whsec_sealed_elsewhere", secret_box.WEBHOOK_SECRET_PURPOSE)
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text("UPDATE webhook_endpoints SET secret = :s WHERE id = :i"),
            {"s": lost, "i": registered["endpoint"]["id"]},
        )
    await emit_committed(runtime, org)
    listed = await gql(api, ENDPOINTS, {"org": str(org)}, token=token)
    assert "errors" not in listed, listed
    assert [e["id"] for e in listed["data"]["webhookEndpoints"]] == [registered["endpoint"]["id"]]
    deliveries = await gql(api, DELIVERIES, {"org": str(org)}, token=token)
    assert "errors" not in deliveries, deliveries
