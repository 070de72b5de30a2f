"""Tenant isolation, operation by operation: organisation A has one of everything (a cost
centre, members, an API key, a webhook endpoint and a delivery, a policy, a booking); organisation
B's owner and B's all-scope API key try every operation that reads or changes organisation data
with A's ids, and get nothing: "not found", as for ids that do not exist, and never A's data."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import text

from app.fleet.webhooks import dispatch_outbox
from app.runtime import Runtime
from tests.booking_support import CANCEL, START, bookable_operator, codes, gql, key
from tests.graphql.test_fleet_booking import CREATE_KEY, RESERVE_FOR, SET_POLICY, Org

ALL_SCOPES = ["VEHICLES_READ", "BOOKINGS_WRITE", "REPORTS_READ", "WEBHOOKS_MANAGE"]
NOT_FOUND = {"NOT_FOUND", "BOOKING_NOT_FOUND"}


async def _a_world(runtime: Runtime, api: httpx.AsyncClient, vehicle_id: str) -> dict[str, str]:
    a = await Org.build(api, "A")
    ids = {"org": a.id, "member": a.rider_member, "centre": a.centre}
    body = await gql(api, CREATE_KEY, {"org": a.id, "scopes": ALL_SCOPES}, a.owner)
    keys = await gql(
        api, "query($o: ID!) { apiKeys(organisationId: $o) { id } }", {"o": a.id}, a.owner
    )
    assert "errors" not in body, body
    ids["key"] = keys["data"]["apiKeys"][0]["id"]
    hook = await gql(
        api,
        'mutation($o: ID!) { registerWebhook(organisationId: $o, url: "http://127.0.0.1:9/",'
        " events: [BOOKING_CONFIRMED]) { endpoint { id } } }",
        {"o": a.id},
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
    await dispatch_outbox(runtime.sessions, runtime.bookings.now())
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
        (CANCEL, {"bookingId": a["booking"], "key": key()}),
        (RESERVE_FOR, {"v": "simscoot:none", "k": key(), "org": org, "member": member}),
    ]


async def test_organisation_b_gets_nothing_of_organisation_a(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        a = await _a_world(runtime, api, f"simscoot:{sim.vehicles[0].vehicle_id}")
        b = await Org.build(api, "B")
        b_key = (await gql(api, CREATE_KEY, {"org": b.id, "scopes": ALL_SCOPES}, b.owner))["data"][
            "createApiKey"
        ]["secret"]
        secrets_of_a = set(a.values())
        for caller, token in (("B's owner", b.owner), ("B's key", b_key)):
            for query, variables in _attempts(a):
                body = await gql(api, query, variables, token)
                got = set(codes(body))
                # Keys cannot manage members or keys at all: FORBIDDEN is theirs, and says
                # nothing of A. Everything else: not found.
                allowed = NOT_FOUND | ({"FORBIDDEN"} if caller == "B's key" else set())
                assert got and got <= allowed, (caller, query, body)
                assert not secrets_of_a & set(json.dumps(body).split('"')), (caller, query, body)
            # Unknown ids answer the same way as A's ids.
            unknown = await gql(
                api,
                "query($o: ID!) { organisation(id: $o) { id } }",
                {"o": str(uuid.uuid4())},
                token,
            )
            assert codes(unknown) == ["NOT_FOUND"]
            # Through B's own organisation with A's ids: still nothing.
            cross = await gql(
                api,
                RESERVE_FOR,
                {
                    "v": "simscoot:none",
                    "k": key(),
                    "org": b.id,
                    "member": a["member"],
                    "cc": a["centre"],
                },
                token,
            )
            assert set(codes(cross)) <= NOT_FOUND | {"FORBIDDEN"}, (caller, cross)
            csv = await api.get(
                "/reports/usage.csv",
                params={"organisationId": a["org"], "month": "2026-11", "groupBy": "MEMBER"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert csv.status_code == 404, (caller, csv.text)
        # And A's things are all still there, untouched.
        async with runtime.sessions() as session:
            state = (
                await session.execute(
                    text(
                        "SELECT (SELECT count(*) FROM api_keys WHERE revoked_at IS NULL "
                        "AND organisation_id = :o), (SELECT count(*) FROM webhook_endpoints "
                        "WHERE enabled AND organisation_id = :o), (SELECT state FROM bookings "
                        "WHERE id = :b)"
                    ),
                    {"o": a["org"], "b": a["booking"]},
                )
            ).one()
        assert tuple(state) == (1, 1, "CONFIRMED")
