"""Tenant isolation, operation by operation: organisation A has one of everything (a cost
centre, members, an API key, a webhook endpoint and a delivery, a policy, a booking); every kind
of caller of organisation B (its OWNER, a BOOKER, a RIDER and an all-scope API key) tries every
query, mutation and subscription that reads or changes organisation data with A's ids, alone and
combined with B's own organisation, and gets nothing: "not found", as for ids that do not exist,
and never any of A's ids, names, addresses or key prefixes. A is unchanged afterwards."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

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
from tests.graphql.test_fleet_booking import (
    ADD_CENTRE,
    BOOKING,
    CREATE_KEY,
    MY_BOOKINGS,
    RESERVE_FOR,
    SET_POLICY,
    Org,
)
from tests.graphql.test_subscriptions import served

ALL_SCOPES = ["VEHICLES_READ", "BOOKINGS_WRITE", "REPORTS_READ", "WEBHOOKS_MANAGE"]
NOT_FOUND = {"NOT_FOUND", "BOOKING_NOT_FOUND"}


async def _a_world(runtime: Runtime, api: httpx.AsyncClient, vehicle_id: str) -> dict[str, str]:
    a = await Org.build(api, f"Alpha-{uuid.uuid4().hex[:10]}")
    ids = {"org": a.id, "member": a.rider_member, "centre": a.centre, "owner": a.owner}
    ids |= {"booker": a.booker, "rider": a.rider}
    # Org.build's cost centre is SALES in every organisation: one with a code and name of
    # A's own, so that a leak of A's cost centres would show.
    centre = await gql(api, ADD_CENTRE, {"org": a.id, "code": f"alpha-{uuid.uuid4().hex}"}, a.owner)
    assert "errors" not in centre, centre
    ids["own_centre"] = centre["data"]["addCostCentre"]["id"]
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

OWNER, BOOKER, RIDER, KEY = "B's owner", "B's booker", "B's rider", "B's key"
# Who of B may be told FORBIDDEN for an operation on B's own organisation: the roles it does
# not have there (docs/fleet.md), and a key where keys never act (or, for setPolicy, "not with
# an API key" in the schema). Everybody else is told "not found" about A's id.
NOT_ADMINS = frozenset({BOOKER, RIDER, KEY})


class Cross(NamedTuple):
    """B's own organisation with one of A's ids."""

    query: str
    variables: dict[str, Any]
    may_be_forbidden: frozenset[str]
    # A filter may answer "none" (an empty list) instead of "not found".
    may_be_empty: bool = False


def _cross_attempts(a: dict[str, str], b: Org) -> list[Cross]:
    update_member = (
        "mutation($o: ID!, $m: ID!, $c: ID) { updateMember(organisationId: $o, memberId: $m, "
        "role: ADMIN, costCentreId: $c) { id } }"
    )
    return [
        Cross(
            "query($o: ID!, $c: ID!) { policy(organisationId: $o, costCentreId: $c) "
            "{ __typename } }",
            {"o": b.id, "c": a["centre"]},
            frozenset(),  # any member or key reads its policy
        ),
        Cross(
            "query($o: ID!, $c: ID!) { effectivePolicy(organisationId: $o, costCentreId: $c) "
            "{ __typename } }",
            {"o": b.id, "c": a["centre"]},
            frozenset(),
        ),
        Cross(
            "mutation($o: ID!, $c: ID!) { setPolicy(organisationId: $o, costCentreId: $c, "
            "input: {}) { __typename } }",
            {"o": b.id, "c": a["centre"]},
            NOT_ADMINS,
        ),
        Cross(update_member, {"o": b.id, "m": a["member"], "c": None}, NOT_ADMINS),
        Cross(update_member, {"o": b.id, "m": a["member"], "c": a["centre"]}, NOT_ADMINS),
        # B's own member, charged to A's cost centre.
        Cross(update_member, {"o": b.id, "m": b.rider_member, "c": a["centre"]}, NOT_ADMINS),
        Cross(
            "mutation($o: ID!, $m: ID!) { removeMember(organisationId: $o, memberId: $m) }",
            {"o": b.id, "m": a["member"]},
            NOT_ADMINS,
        ),
        Cross(
            "mutation($o: ID!, $c: ID!) { inviteMember(organisationId: $o, "
            'email: "y@example.org", role: RIDER, costCentreId: $c) { token } }',
            {"o": b.id, "c": a["centre"]},
            NOT_ADMINS,
        ),
        Cross(
            "query($o: ID!, $e: ID!) { webhookDeliveries(organisationId: $o, endpointId: $e) "
            "{ id } }",
            {"o": b.id, "e": a["endpoint"]},
            frozenset({BOOKER, RIDER}),  # the key has webhooks:manage
            may_be_empty=True,
        ),
        Cross(
            RESERVE_FOR,
            {"v": "simscoot:none", "k": key(), "org": b.id, "member": a["member"]},
            frozenset({RIDER}),  # a RIDER books for themselves only
        ),
        Cross(
            RESERVE_FOR,
            {
                "v": "simscoot:none",
                "k": key(),
                "org": b.id,
                "member": a["member"],
                "cc": a["centre"],
            },
            frozenset({RIDER}),
        ),
        # B's own member, charged to A's cost centre.
        Cross(
            RESERVE_FOR,
            {
                "v": "simscoot:none",
                "k": key(),
                "org": b.id,
                "member": b.rider_member,
                "cc": a["centre"],
            },
            frozenset({RIDER}),
        ),
    ]


A_IDS = ("org", "member", "centre", "own_centre", "key", "endpoint", "delivery", "booking")


async def _same_as_for_unknown_ids(
    api: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any],
    token: str,
    body: dict[str, Any],
    ids_of_a: Collection[str],
) -> None:
    """The answer with A's ids is the answer with ids that exist nowhere, but for the ids
    themselves: nothing in it (a message, a code, a field) tells that A's exist."""
    fresh = {i: str(uuid.uuid4()) for i in ids_of_a}
    unknown = {k: fresh.get(v, v) if isinstance(v, str) else v for k, v in variables.items()}
    assert unknown != variables, ("no id of A in", variables)
    other = await gql(api, query, unknown, token)

    def normalised(answer: dict[str, Any], ids: dict[str, str]) -> str:
        text_of_answer = json.dumps(answer, sort_keys=True)
        for name, value in ids.items():
            text_of_answer = text_of_answer.replace(value, f"<{name}>")
        return text_of_answer

    names = {v: k for k, v in variables.items() if isinstance(v, str) and v in fresh}
    assert normalised(body, {names[v]: v for v in names}) == normalised(
        other, {names[v]: fresh[v] for v in names}
    ), (query, body, other)


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


def _refusal(message: dict[str, Any], booking_id: str) -> dict[str, Any]:
    """A refused subscription, the id it was asked for taken out: its codes and messages,
    and no data. Fails on anything else (data, or an answer without errors)."""
    assert message["type"] in {"next", "error"}, message
    if message["type"] == "next":
        assert message["payload"]["data"] is None, message
        errors = message["payload"]["errors"]
    else:
        errors = message["payload"]
    found = [e["extensions"]["code"] for e in errors]
    assert found, message
    return {
        "type": message["type"],
        "codes": found,
        "messages": [e["message"].replace(booking_id, "<booking>") for e in errors],
    }


@asynccontextmanager
async def _unlimited_api() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The app served on a local port without rate limits: some hundred operations per caller
    would be answered RATE_LIMITED (tested on their own) long before the end."""
    settings = make_settings(rate_limits_enabled=False)
    async with (
        open_runtime(settings) as unlimited,
        served(unlimited, settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as api,
    ):
        yield api, base_url


async def test_organisation_b_gets_nothing_of_organisation_a(runtime: Runtime) -> None:
    async with (
        bookable_operator(runtime, "simscoot") as (sim, _),
        _unlimited_api() as (api, base_url),
    ):
        a_vehicle, b_vehicle = (f"simscoot:{v.vehicle_id}" for v in sim.vehicles[:2])
        a = await _a_world(runtime, api, a_vehicle)
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
        assert a["own_centre"] in own
        secrets_of_a = own | {a[k] for k in ("owner", "booker", "rider", "key_secret")}
        ids_of_a = [a[k] for k in A_IDS]

        b = await Org.build(api, f"Beta-{uuid.uuid4().hex[:10]}")
        b_key = (await gql(api, CREATE_KEY, {"org": b.id, "scopes": ALL_SCOPES}, b.owner))["data"][
            "createApiKey"
        ]["secret"]
        # B's RIDER has a booking of B's: their myBookings is not empty by construction.
        b_booked = await gql(
            api,
            RESERVE_FOR,
            {"v": b_vehicle, "k": key(), "org": b.id, "member": b.rider_member},
            b.booker,
        )
        assert b_booked["data"]["reserveVehicle"]["__typename"] == "BookingSuccess", b_booked
        b_booking = b_booked["data"]["reserveVehicle"]["booking"]["id"]
        # The control for myBookings: A's RIDER sees A's booking there.
        a_mine = await gql(api, MY_BOOKINGS, {}, a["rider"])
        assert a["booking"] in {x["id"] for x in a_mine["data"]["myBookings"]}, a_mine
        callers = ((OWNER, b.owner), (BOOKER, b.booker), (RIDER, b.rider), (KEY, b_key))
        for caller, token in callers:
            for query, variables in _attempts(a):
                body = await gql(api, query, variables, token)
                got = set(codes(body))
                # Keys cannot manage members or keys at all: FORBIDDEN is theirs there, and
                # says nothing of A. Everything else: not found.
                key_never = caller == KEY and any(op in query for op in KEY_NEVER)
                allowed = NOT_FOUND | ({"FORBIDDEN"} if key_never else set())
                assert got and got <= allowed, (caller, query, body)
                assert not _leaks(body, secrets_of_a, variables), (caller, query, body)
                await _same_as_for_unknown_ids(api, query, variables, token, body, ids_of_a)
            # B's own organisation with A's ids: refused ("not found", or FORBIDDEN where B's
            # caller lacks the role in B's organisation), and nothing of A in the answer.
            for cross in _cross_attempts(a, b):
                body = await gql(api, cross.query, cross.variables, token)
                got = set(codes(body))
                where = (caller, cross.query, cross.variables, body)
                assert not _leaks(body, secrets_of_a, cross.variables), where
                await _same_as_for_unknown_ids(
                    api, cross.query, cross.variables, token, body, ids_of_a
                )
                if not got and cross.may_be_empty:
                    assert all(v == [] for v in body["data"].values()), where
                    continue
                allowed = NOT_FOUND | ({"FORBIDDEN"} if caller in cross.may_be_forbidden else set())
                assert got and got <= allowed, where
            # Their own bookings never include A's (B's RIDER's has B's booking, no other).
            mine = await gql(api, MY_BOOKINGS, {}, token)
            assert not _leaks(mine, secrets_of_a, {}), (caller, mine)
            if caller == KEY:  # a key is no rider: it has no bookings of its own
                assert mine["data"] is None and codes(mine), mine
            else:
                expected = [b_booking] if caller == RIDER else []
                assert [x["id"] for x in mine["data"]["myBookings"]] == expected, (caller, mine)
            # Nor can they follow A's booking live: refused as a booking that does not exist.
            refused = await _subscription_answer(base_url, token, a["booking"])
            assert not _leaks(refused, secrets_of_a, {"b": a["booking"]}), (caller, refused)
            nowhere = str(uuid.uuid4())
            assert _refusal(refused, a["booking"]) == _refusal(
                await _subscription_answer(base_url, token, nowhere), nowhere
            ), (caller, refused)
            assert set(_refusal(refused, a["booking"])["codes"]) <= NOT_FOUND, (caller, refused)
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

        # The control: A's own owner, booker and key do follow A's booking, so the refusals above
        # are about who asks, not a broken subscription.
        for token in (a["owner"], a["booker"], a["key_secret"]):
            followed = await _subscription_answer(base_url, token, a["booking"])
            assert followed["type"] == "next", followed
            assert followed["payload"]["data"]["bookingUpdates"] == {
                "id": a["booking"],
                "state": "CONFIRMED",
            }, followed

        # And A is exactly as it was: members, cost centres, keys, policy, webhooks, booking.
        after = await gql(api, SNAPSHOT, {"o": a["org"], "b": a["booking"]}, a["owner"])
        assert after == before


async def _outbox_size(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int((await session.execute(text("SELECT count(*) FROM outbox_events"))).scalar_one())


async def test_b_moves_none_of_as_bookings_in_any_state(runtime: Runtime) -> None:
    """Every trip action on A's bookings, each in a state where that action is allowed
    (reserved, riding, paused): B's callers are told the booking does not exist, nothing
    reaches the operator or A's outbox, and A's own key can then do each of them."""
    async with (
        bookable_operator(runtime, "simscoot") as (sim, _),
        _unlimited_api() as (api, _),
    ):
        a = await Org.build(api, f"Alpha-{uuid.uuid4().hex[:10]}")
        a_key = await a.key(api, "BOOKINGS_WRITE")
        b = await Org.build(api, f"Beta-{uuid.uuid4().hex[:10]}")
        b_key = await b.key(api, *ALL_SCOPES)
        steps_to: dict[str, list[str]] = {
            "CONFIRMED": [],
            "STARTED": [START],
            "PAUSED": [START, PAUSE],
        }
        bookings: dict[str, tuple[str, Any]] = {}
        for (state, steps), vehicle in zip(steps_to.items(), sim.vehicles, strict=False):
            booked = await gql(
                api,
                RESERVE_FOR,
                {
                    "v": f"simscoot:{vehicle.vehicle_id}",
                    "k": key(),
                    "org": a.id,
                    "member": a.rider_member,
                },
                a.booker,
            )
            booking_id = booked["data"]["reserveVehicle"]["booking"]["id"]
            for step in steps:
                done = await gql(api, step, {"bookingId": booking_id, "key": key()}, a.rider)
                [result] = done["data"].values()
                assert result["__typename"] == "BookingSuccess", done
            bookings[state] = (booking_id, vehicle)

        async def states() -> dict[str, str]:
            found = {}
            for state, (booking_id, _) in bookings.items():
                body = await gql(api, BOOKING, {"id": booking_id}, a.owner)
                found[state] = body["data"]["booking"]["state"]
            return found

        assert await states() == {state: state for state in steps_to}
        operator_calls, events = len(sim.journal), await _outbox_size(runtime)

        def variables(action: str, booking_id: str, vehicle: Any) -> dict[str, Any]:
            here = {"lat": vehicle.lat, "lon": vehicle.lon} if action is END else {}
            return {"bookingId": booking_id, "key": key(), **here}

        callers = ((OWNER, b.owner), (BOOKER, b.booker), (RIDER, b.rider), (KEY, b_key))
        for caller, token in callers:
            for booking_id, vehicle in bookings.values():
                for action in (START, PAUSE, RESUME, END, CANCEL):
                    sent = variables(action, booking_id, vehicle)
                    body = await gql(api, action, sent, token)
                    assert codes(body) == ["BOOKING_NOT_FOUND"], (caller, action, body)
                    assert body["data"] is None, (caller, action, body)
                    await _same_as_for_unknown_ids(api, action, sent, token, body, [booking_id])

        assert await states() == {state: state for state in steps_to}
        assert len(sim.journal) == operator_calls, sim.journal[operator_calls:]
        assert await _outbox_size(runtime) == events

        # The control: the organisation's own key may do what B's callers were refused.
        for state, action, then in (
            ("CONFIRMED", CANCEL, "CANCELLED"),
            ("STARTED", PAUSE, "PAUSED"),
            ("PAUSED", RESUME, "STARTED"),
            ("PAUSED", END, "FINISHED"),
        ):
            booking_id, vehicle = bookings[state]
            done = await gql(api, action, variables(action, booking_id, vehicle), a_key)
            assert "errors" not in done, (state, done)
            [result] = done["data"].values()
            assert (result["__typename"], result["booking"]["state"]) == ("BookingSuccess", then)
