"""Tenant isolation, operation by operation: organisation A has one of everything (a cost
centre, members, an API key, a webhook endpoint and a delivery, a policy, a booking); every kind
of caller of organisation B (its OWNER, a BOOKER, a RIDER and an all-scope API key) tries every
query, mutation and subscription that reads or changes organisation data with A's ids, alone and
combined with B's own organisation, and gets nothing: "not found", as for ids that do not exist,
and never any of A's ids, names, addresses or key prefixes. A is unchanged afterwards."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from app.fleet.webhooks import dispatch_outbox
from app.runtime import Runtime, open_runtime
from tests.booking_support import (
    CANCEL,
    END,
    PAUSE,
    RESUME,
    START,
    bookable_operator,
    codes,
    gql,
    key,
)
from tests.conftest import make_settings
from tests.graphql.test_booking_updates import UPDATES, connect
from tests.graphql.test_fleet_booking import CREATE_KEY, RESERVE_FOR, SET_POLICY, Org
from tests.graphql.test_subscriptions import served

ALL_SCOPES = ["VEHICLES_READ", "BOOKINGS_WRITE", "REPORTS_READ", "WEBHOOKS_MANAGE"]
NOT_FOUND = {"NOT_FOUND", "BOOKING_NOT_FOUND"}


async def _a_world(runtime: Runtime, api: httpx.AsyncClient, vehicle_id: str) -> dict[str, str]:
    a = await Org.build(api, f"Alpha-{uuid.uuid4().hex[:10]}")
    ids = {"org": a.id, "member": a.rider_member, "centre": a.centre, "owner": a.owner}
    body = await gql(api, CREATE_KEY, {"org": a.id, "scopes": ALL_SCOPES}, a.owner)
    keys = await gql(
        api, "query($o: ID!) { apiKeys(organisationId: $o) { id } }", {"o": a.id}, a.owner
    )
    assert "errors" not in body, body
    ids["key"] = keys["data"]["apiKeys"][0]["id"]
    hook = await gql(
        api,
        "mutation($o: ID!, $u: String!) { registerWebhook(organisationId: $o, url: $u,"
        " events: [BOOKING_CONFIRMED]) { endpoint { id } } }",
        {"o": a.id, "u": f"http://127.0.0.1:9/alpha-{uuid.uuid4().hex}"},
        a.owner,
    )
    assert "errors" not in hook, hook
    ids["endpoint"] = hook["data"]["registerWebhook"]["endpoint"]["id"]
    policy = await gql(
        api,
        SET_POLICY,
        {"org": a.id, "input": {"monthlyBudgetMinor": 100000, "currency": "EUR"}},
        a.owner,
    )
    assert "errors" not in policy, policy
    booked = await gql(
        api,
        RESERVE_FOR,
        {"v": vehicle_id, "k": key(), "org": a.id, "member": a.rider_member},
        a.booker,
    )
    ids["booking"] = booked["data"]["reserveVehicle"]["booking"]["id"]
    ids["key_secret"] = body["data"]["createApiKey"]["secret"]
    await dispatch_outbox(runtime.sessions, datetime.now(UTC))
    async with runtime.sessions() as session:
        ids["delivery"] = str(
            (await session.execute(text("SELECT id FROM webhook_deliveries"))).scalar_one()
        )
    return ids


def _attempts(a: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    org, member, centre = a["org"], a["member"], a["centre"]
    return [
        ("query($o: ID!) { organisation(id: $o) { id name } }", {"o": org}),
        (
            'mutation($o: ID!) { addCostCentre(organisationId: $o, code: "X", name: "X") { id } }',
            {"o": org},
        ),
        (
            'mutation($o: ID!) { inviteMember(organisationId: $o, email: "x@example.org", '
            "role: RIDER) { token } }",
            {"o": org},
        ),
        (
            "mutation($o: ID!, $m: ID!) { updateMember(organisationId: $o, memberId: $m, "
            "role: ADMIN) { id } }",
            {"o": org, "m": member},
        ),
        (
            "mutation($o: ID!, $m: ID!) { removeMember(organisationId: $o, memberId: $m) }",
            {"o": org, "m": member},
        ),
        ("query($o: ID!) { apiKeys(organisationId: $o) { id } }", {"o": org}),
        (
            'mutation($o: ID!) { createApiKey(organisationId: $o, name: "x", '
            "scopes: [REPORTS_READ]) { secret } }",
            {"o": org},
        ),
        ("mutation($k: ID!) { rotateApiKey(id: $k) { secret } }", {"k": a["key"]}),
        ("mutation($k: ID!) { revokeApiKey(id: $k) { id } }", {"k": a["key"]}),
        (
            "query($o: ID!) { policy(organisationId: $o) { monthlyBudget { amountMinor } } }",
            {"o": org},
        ),
        (
            "query($o: ID!, $c: ID!) { effectivePolicy(organisationId: $o, costCentreId: $c) "
            "{ __typename } }",
            {"o": org, "c": centre},
        ),
        (
            "mutation($o: ID!) { setPolicy(organisationId: $o, input: {}) { __typename } }",
            {"o": org},
        ),
        (
            'query($o: ID!) { usageReport(organisationId: $o, month: "2026-11", '
            "groupBy: MEMBER) { __typename } }",
            {"o": org},
        ),
        ("query($o: ID!) { webhookEndpoints(organisationId: $o) { id } }", {"o": org}),
        ("query($o: ID!) { webhookDeliveries(organisationId: $o) { id } }", {"o": org}),
        (
            'mutation($o: ID!) { registerWebhook(organisationId: $o, url: "http://127.0.0.1:9/",'
            " events: [BOOKING_STARTED]) { secret } }",
            {"o": org},
        ),
        (
            "mutation($e: ID!) { setWebhookEnabled(id: $e, enabled: false) { id } }",
            {"e": a["endpoint"]},
        ),
        ("mutation($e: ID!) { deleteWebhook(id: $e) }", {"e": a["endpoint"]}),
        ("mutation($d: ID!) { replayWebhookDelivery(id: $d) { id } }", {"d": a["delivery"]}),
        ("query($b: ID!) { booking(id: $b) { id } }", {"b": a["booking"]}),
        (START, {"bookingId": a["booking"], "key": key()}),
        (PAUSE, {"bookingId": a["booking"], "key": key()}),
        (RESUME, {"bookingId": a["booking"], "key": key()}),
        (END, {"bookingId": a["booking"], "key": key(), "lat": 52.37, "lon": 4.89}),
        (CANCEL, {"bookingId": a["booking"], "key": key()}),
        (RESERVE_FOR, {"v": "simscoot:none", "k": key(), "org": org, "member": member}),
    ]


# The operations an API key may never perform, whoever's organisation: managing members and
# keys (docs/fleet.md). A key answered FORBIDDEN there learns nothing of A.
KEY_NEVER = ("addCostCentre", "inviteMember", "updateMember", "removeMember", "ApiKey", "apiKeys")


def _cross_attempts(a: dict[str, str], b_org: str) -> list[tuple[str, dict[str, Any]]]:
    """B's own organisation with one of A's ids."""
    return [
        (
            "query($o: ID!, $c: ID!) { policy(organisationId: $o, costCentreId: $c) "
            "{ __typename } }",
            {"o": b_org, "c": a["centre"]},
        ),
        (
            "query($o: ID!, $c: ID!) { effectivePolicy(organisationId: $o, costCentreId: $c) "
            "{ __typename } }",
            {"o": b_org, "c": a["centre"]},
        ),
        (
            "mutation($o: ID!, $c: ID!) { setPolicy(organisationId: $o, costCentreId: $c, "
            "input: {}) { __typename } }",
            {"o": b_org, "c": a["centre"]},
        ),
        (
            "mutation($o: ID!, $m: ID!) { updateMember(organisationId: $o, memberId: $m, "
            "role: ADMIN) { id } }",
            {"o": b_org, "m": a["member"]},
        ),
        (
            "mutation($o: ID!, $m: ID!) { removeMember(organisationId: $o, memberId: $m) }",
            {"o": b_org, "m": a["member"]},
        ),
        (
            "mutation($o: ID!, $c: ID!) { inviteMember(organisationId: $o, "
            'email: "y@example.org", role: RIDER, costCentreId: $c) { token } }',
            {"o": b_org, "c": a["centre"]},
        ),
        (
            "mutation($o: ID!, $m: ID!, $c: ID!) { updateMember(organisationId: $o, "
            "memberId: $m, costCentreId: $c) { id } }",
            {"o": b_org, "m": a["member"], "c": a["centre"]},
        ),
        (
            "query($o: ID!, $e: ID!) { webhookDeliveries(organisationId: $o, endpointId: $e) "
            "{ id } }",
            {"o": b_org, "e": a["endpoint"]},
        ),
        (
            RESERVE_FOR,
            {
                "v": "simscoot:none",
                "k": key(),
                "org": b_org,
                "member": a["member"],
                "cc": a["centre"],
            },
        ),
    ]


SNAPSHOT = """query($o: ID!, $b: ID!) {
  organisation(id: $o) { id name timezone plan costCentres { id code name }
                         members { id email role costCentreId } }
  apiKeys(organisationId: $o) { id name prefix scopes revokedAt }
  policy(organisationId: $o) { monthlyBudget { amountMinor currency } allowedFormFactors }
  webhookEndpoints(organisationId: $o) { id url enabled events }
  webhookDeliveries(organisationId: $o) { id status }
  booking(id: $b) { id state }
}"""


def _strings(value: Any) -> set[str]:
    """Every string in a JSON value (ids, names, emails, prefixes, URLs)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def _leaks(body: dict[str, Any], secrets_of_a: set[str], sent: dict[str, Any]) -> set[str]:
    """A's strings in an answer, but for what the caller sent (an error may name the id it
    was asked for: that tells the caller nothing it did not know)."""
    text_of_body = json.dumps(body)
    return {s for s in secrets_of_a - _strings(sent) if s in text_of_body}


async def _subscription_answer(base_url: str, token: str, booking_id: str) -> dict[str, Any]:
    async with connect(base_url, token) as client:
        await client.ws.send(
            json.dumps(
                {
                    "id": "b",
                    "type": "subscribe",
                    "payload": {"query": UPDATES, "variables": {"id": booking_id}},
                }
            )
        )
        return await client.receive()


async def test_organisation_b_gets_nothing_of_organisation_a(runtime: Runtime) -> None:
    # Some hundred operations per caller: rate limits (tested on their own) would answer
    # RATE_LIMITED long before the end.
    settings = make_settings(rate_limits_enabled=False)
    async with (
        bookable_operator(runtime, "simscoot") as (sim, _),
        open_runtime(settings) as unlimited,
        served(unlimited, settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as api,
    ):
        a = await _a_world(runtime, api, f"simscoot:{sim.vehicles[0].vehicle_id}")
        before = await gql(api, SNAPSHOT, {"o": a["org"], "b": a["booking"]}, a["owner"])
        assert "errors" not in before, before
        # What must never reach B: every string of A's snapshot that is A's own (its ids,
        # names, members' addresses, key prefix, webhook URL), and A's credentials.
        own = {
            v
            for v in _strings(before["data"])
            if len(v) >= 8 and not v.isupper() and not v.startswith("20")
        }
        assert {a["org"], a["member"], a["centre"], a["booking"], a["endpoint"]} <= own
        secrets_of_a = own | {a["owner"], a["key_secret"]}

        b = await Org.build(api, f"Beta-{uuid.uuid4().hex[:10]}")
        b_key = (await gql(api, CREATE_KEY, {"org": b.id, "scopes": ALL_SCOPES}, b.owner))["data"][
            "createApiKey"
        ]["secret"]
        callers = (
            ("B's owner", b.owner),
            ("B's booker", b.booker),
            ("B's rider", b.rider),
            ("B's key", b_key),
        )
        for caller, token in callers:
            for query, variables in _attempts(a):
                body = await gql(api, query, variables, token)
                got = set(codes(body))
                # Keys cannot manage members or keys at all: FORBIDDEN is theirs there, and
                # says nothing of A. Everything else: not found.
                key_never = caller == "B's key" and any(op in query for op in KEY_NEVER)
                allowed = NOT_FOUND | ({"FORBIDDEN"} if key_never else set())
                assert got and got <= allowed, (caller, query, body)
                assert not _leaks(body, secrets_of_a, variables), (caller, query, body)
            # B's own organisation with A's ids: refused (B's lesser roles may be told they
            # lack the role for B's organisation), and nothing of A in the answer.
            for query, variables in _cross_attempts(a, b.id):
                body = await gql(api, query, variables, token)
                got = set(codes(body))
                assert not _leaks(body, secrets_of_a, variables), (caller, query, body)
                if not got:
                    # A filter (deliveries of an endpoint) may answer "none" instead: then
                    # exactly as for an id that does not exist.
                    unknown = {
                        k: str(uuid.uuid4()) if v in a.values() else v for k, v in variables.items()
                    }
                    assert body == await gql(api, query, unknown, token), (caller, query, body)
                    continue
                assert got <= NOT_FOUND | {"FORBIDDEN", "MISSING_SCOPE"}, (caller, query, body)
                if caller == "B's owner":  # every role there: only "not found" is left
                    assert got <= NOT_FOUND, (caller, query, body)
            # Their own bookings never include A's.
            mine = await gql(api, "query { myBookings { id } }", {}, token)
            assert not _leaks(mine, secrets_of_a, {}), (caller, mine)
            # Nor can they follow it live.
            refused = await _subscription_answer(base_url, token, a["booking"])
            assert refused["type"] in {"next", "error"}, refused
            errors = (
                refused["payload"]["errors"] if refused["type"] == "next" else refused["payload"]
            )
            assert refused["type"] == "error" or refused["payload"]["data"] is None, refused
            assert {e["extensions"]["code"] for e in errors} <= NOT_FOUND, (caller, refused)
            assert not _leaks(refused, secrets_of_a, {"b": a["booking"]}), (caller, refused)
            # Unknown ids answer the same way as A's ids.
            unknown = await gql(
                api,
                "query($o: ID!) { organisation(id: $o) { id } }",
                {"o": str(uuid.uuid4())},
                token,
            )
            assert codes(unknown) == ["NOT_FOUND"]
            csv = await api.get(
                "/reports/usage.csv",
                params={"organisationId": a["org"], "month": "2026-11", "groupBy": "MEMBER"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert csv.status_code == 404, (caller, csv.text)
            assert not {s for s in secrets_of_a - {a["org"]} if s in csv.text}, (caller, csv.text)

        # The control: A's own owner and key do follow A's booking, so the refusals above
        # are about who asks, not a broken subscription.
        for token in (a["owner"], a["key_secret"]):
            followed = await _subscription_answer(base_url, token, a["booking"])
            assert followed["type"] == "next", followed
            assert followed["payload"]["data"]["bookingUpdates"] == {
                "id": a["booking"],
                "state": "CONFIRMED",
            }, followed

        # And A is exactly as it was: members, cost centres, keys, policy, webhooks, booking.
        after = await gql(api, SNAPSHOT, {"o": a["org"], "b": a["booking"]}, a["owner"])
        assert after == before
