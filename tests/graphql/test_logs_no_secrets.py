"""The logs of a whole booking and its webhooks, at DEBUG, in both formats: no secret the test
set appears in them, and the request id of each GraphQL request follows its work into the
operator calls (our log lines and the header the operator received) and into the webhook
deliveries of the events it caused."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from app.fleet.webhooks import run_webhook_round, utc_now, webhook_http_client
from app.platform.logs import TextFormatter, configure_logging
from app.platform.request_id import well_formed
from app.runtime import Runtime
from tests.booking_support import (
    END,
    RESERVE_PROBLEMS,
    START,
    SharedClock,
    bookable_operator,
    clock_of,
    gql,
    key,
    staff_token,
)
from tests.graphql.test_fleet_booking import Org
from tests.webhook_support import Receiver, running, verify_signature

SIGN_UP = """
mutation S($input: SignUpInput!) { signUp(input: $input) { accessToken refreshToken } }"""
REFRESH = "mutation R($t: String!) { refreshSession(refreshToken: $t) { accessToken } }"
CREDENTIALS = """
mutation C($id: ID!, $credentials: OperatorCredentialsInput) {
  setProviderCredentials(id: $id, credentials: $credentials) { id credentialsKind }
}"""
REGISTER = """
mutation W($url: String!, $events: [WebhookEventType!]!) {
  registerWebhook(url: $url, events: $events) { secret }
}"""
RESERVE_FOR = f"""
mutation R($v: ID!, $k: String!, $org: ID) {{
  reserveVehicle(vehicleId: $v, idempotencyKey: $k, organisationId: $org) {{
    __typename
    ... on BookingSuccess {{ booking {{ id state }} }}
    {RESERVE_PROBLEMS}
  }}
}}"""
OPERATOR_CALLS = "app.booking.operator_calls"


@dataclass
class Captured:
    json_text: io.StringIO
    text_text: io.StringIO

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.json_text.getvalue().splitlines()]


@contextmanager
def logs_at_debug() -> Iterator[Captured]:
    """Every record, as `mobility serve` would write it at MOBILITY_LOG_LEVEL=DEBUG (the same
    configure_logging), and in the text format beside it."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("httpx").level)
    captured = Captured(io.StringIO(), io.StringIO())
    configure_logging("DEBUG", "json", stream=captured.json_text)
    text = logging.StreamHandler(captured.text_text)
    text.setFormatter(TextFormatter())
    root.addHandler(text)
    try:
        yield captured
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(saved[2])


async def _post(
    api: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any],
    token: str,
    request_id: str | None = None,
) -> tuple[dict[str, Any], str]:
    """The answer, and the request id it came back with."""
    headers = {"Authorization": f"Bearer {token}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json(), response.headers["x-request-id"]


async def test_a_booking_and_its_webhooks_log_no_secret_and_carry_the_request_id(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    receiver = Receiver()
    password = f"pw-{secrets.token_hex(12)}"
    operator_token = f"op-{secrets.token_hex(16)}"
    async with running(receiver) as hook_base, bookable_operator(runtime, "simscoot") as (sim, _):
        clock = SharedClock(sim)
        with logs_at_debug() as logs:
            async with clock_of(runtime, clock):
                staff = await staff_token(runtime)
                # The operator's credentials, sent on every call to it from here on.
                body = await gql(
                    api,
                    CREDENTIALS,
                    {"id": "simscoot", "credentials": {"bearerToken": operator_token}},
                    staff,
                )
                assert body["data"]["setProviderCredentials"]["credentialsKind"] == "BEARER_TOKEN"
                # A rider of our own password, who trades the refresh token once.
                signed_up = await gql(
                    api,
                    SIGN_UP,
                    {
                        "input": {
                            "email": f"r-{secrets.token_hex(6)}@example.org",
                            "password": password,
                            "birthDate": "1990-05-17",
                        }
                    },
                )
                session = signed_up["data"]["signUp"]
                refreshed = await gql(api, REFRESH, {"t": session["refreshToken"]})
                new_access = refreshed["data"]["refreshSession"]["accessToken"]
                # An organisation (riders signed up with the helpers' password), an API key
                # that registers the webhook, and a member who books for it.
                org = await Org.build(api, "Acme")
                api_key = await org.key(api, "WEBHOOKS_MANAGE")
                registered = await gql(
                    api,
                    REGISTER,
                    {
                        "url": f"{hook_base}/hook",
                        "events": ["BOOKING_CONFIRMED", "BOOKING_STARTED", "BOOKING_FINISHED"],
                    },
                    api_key,
                )
                webhook_secret = registered["data"]["registerWebhook"]["secret"]

                vehicle = sim.vehicles[0]
                reserve_id = f"reserve-{secrets.token_hex(8)}"
                reserved, returned = await _post(
                    api,
                    RESERVE_FOR,
                    {"v": f"simscoot:{vehicle.vehicle_id}", "k": key(), "org": org.id},
                    org.rider,
                    request_id=reserve_id,
                )
                assert returned == reserve_id
                result = reserved["data"]["reserveVehicle"]
                assert result["__typename"] == "BookingSuccess", result
                booking_id = result["booking"]["id"]
                clock.advance(60)
                started, start_id = await _post(
                    api, START, {"bookingId": booking_id, "key": key()}, org.rider
                )
                assert started["data"]["startTrip"]["__typename"] == "BookingSuccess", started
                clock.advance(300)
                ended, end_id = await _post(
                    api,
                    END,
                    {"bookingId": booking_id, "key": key(), "lat": vehicle.lat, "lon": vehicle.lon},
                    org.rider,
                )
                assert ended["data"]["endTrip"]["__typename"] == "BookingSuccess", ended

            # The deliveries, as a worker's round makes them (outside any request).
            async with webhook_http_client(runtime.settings) as http:
                for _ in range(5):
                    await run_webhook_round(runtime.sessions, http, utc_now())
                    if len(receiver.received) >= 3:
                        break
        assert len(receiver.received) == 3
        # The secret was used, so it passed through the code whose logs are checked.
        assert all(
            verify_signature(webhook_secret, r.headers["mobility-signature"], r.body, utc_now())
            for r in receiver.received
        )

    # --- no secret in any line, in either format ---
    settings = runtime.settings
    set_secrets = {
        "rider password": password,
        "helpers' rider password": "correct horse battery",
        "access token": session["accessToken"],
        "refresh token": session["refreshToken"],
        "refreshed access token": new_access,
        "member access token": org.rider,
        "owner access token": org.owner,
        "API key": api_key,
        "webhook signing secret": webhook_secret,
        "operator bearer token": operator_token,
        "staff token": staff,
        "JWT secret": settings.jwt_secret or "",
    }
    if settings.secrets_keys:  # the suite seals with the development key unless one is set
        set_secrets["sealing keys"] = settings.secrets_keys
    assert all(set_secrets.values()), [k for k, v in set_secrets.items() if not v]
    json_text, text_text = logs.json_text.getvalue(), logs.text_text.getvalue()
    # Named, not shown: a failure must not print the secret it found.
    in_json = [name for name, value in set_secrets.items() if value in json_text]
    in_text = [name for name, value in set_secrets.items() if value in text_text]
    assert (in_json, in_text) == ([], [])

    # --- the request ids: one JSON object per line; each request's own in its work's lines ---
    documents = logs.documents()
    assert len(documents) == len(text_text.splitlines())
    assert all({"timestamp", "level", "logger", "message"} <= d.keys() for d in documents)
    assert len({reserve_id, start_id, end_id}) == 3
    assert well_formed(start_id) and well_formed(end_id)
    calls = [d for d in documents if d["logger"] == OPERATOR_CALLS]
    by_request = {
        rid: [c for c in calls if c.get("request_id") == rid]
        for rid in (reserve_id, start_id, end_id)
    }
    for rid, lines in by_request.items():
        assert lines, f"no operator call logged with {rid}"
        assert all(c["status"] < 400 and c["url"].startswith("http://") for c in lines)
    # What the operator received: each call with the id of the request that made it, the same
    # calls our lines name.
    received_ids = [
        entry.request_headers.get("x-request-id")
        for entry in sim.journal
        if entry.request_headers.get("x-request-id") in by_request
    ]
    for rid, lines in by_request.items():
        assert received_ids.count(rid) == len(lines), rid
    assert any(entry.route.startswith("POST /bookings") for entry in sim.journal)

    deliveries = [
        d for d in documents if d["logger"] == "app.fleet.webhooks" and "delivery_id" in d
    ]
    assert {(d["event_type"], d["request_id"], d["status"]) for d in deliveries} == {
        ("booking.confirmed", reserve_id, "DELIVERED"),
        ("booking.started", start_id, "DELIVERED"),
        ("booking.finished", end_id, "DELIVERED"),
    }
