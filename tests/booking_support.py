"""Shared set-up for booking tests: a TOMP simulator registered as a bookable provider, riders,
GraphQL calls, and a clock the booking service and the simulator share."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from app.platform.db import transaction
from app.runtime import Runtime
from app.staff_auth import create_token
from providers.admin import set_booking
from providers.service import register_provider
from providers.simulators.feed_server import serve_in_background
from providers.simulators.tomp_server import TompSimulator
from tests.adapters.tomp_spec import TompSpec, load_spec
from tests.conftest import require_conformance


async def gql(
    api: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


SIGN_UP = """
mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) { accessToken rider { id } }
}"""

SET_LICENCE = """
mutation L($userId: ID!, $status: LicenceStatus!) {
  setLicenceStatus(userId: $userId, status: $status) { id licenceStatus }
}"""

BOOKING_FIELDS = """
  id state vehicleId providerId reservedUntil startedAt endedAt distanceMeters failureCode
  allowedActions
  estimatedPrice { amountMinor currency }
  finalPrice { amountMinor currency }
  receipt { lines { kind amount { amountMinor } } total { amountMinor currency }
            minutes kilometers operatorPrice { amountMinor currency } }
  events { event fromState toState cause }
"""

COMMON_PROBLEMS = """
  ... on BookingProblem { code message }
  ... on OperatorRejected { operatorCode }
  ... on OperatorUnavailable { retryAfterSeconds }
"""
RESERVE_PROBLEMS = (
    COMMON_PROBLEMS
    + """
  ... on VehicleUnavailable { reason }
  ... on NotEligible { refusals { code } }
  ... on ExternalBooking { providerName androidUri iosUri webUri message }
"""
)
TRIP_PROBLEMS = (
    COMMON_PROBLEMS
    + """
  ... on RideEndNotAllowed { zoneName }
  ... on IllegalBookingTransition { state allowedActions }
"""
)

RESERVE = f"""
mutation R($vehicleId: ID!, $key: String!, $offerId: String) {{
  reserveVehicle(vehicleId: $vehicleId, idempotencyKey: $key, offerId: $offerId) {{
    __typename
    ... on BookingSuccess {{ booking {{ {BOOKING_FIELDS} }} }}
    {RESERVE_PROBLEMS}
  }}
}}"""


def trip_action(name: str, extra_args: str = "", extra_params: str = "") -> str:
    return f"""
mutation A($bookingId: ID!, $key: String!{extra_params}) {{
  {name}(bookingId: $bookingId, idempotencyKey: $key{extra_args}) {{
    __typename
    ... on BookingSuccess {{ booking {{ {BOOKING_FIELDS} }} }}
    {TRIP_PROBLEMS}
  }}
}}"""


START = trip_action("startTrip")
PAUSE = trip_action("pauseTrip")
RESUME = trip_action("resumeTrip")
CANCEL = trip_action("cancelBooking")
END = trip_action("endTrip", ", lat: $lat, lon: $lon", ", $lat: Float!, $lon: Float!")

NEARBY = """
query V($lat: Float!, $lon: Float!) {
  vehicles(near: {lat: $lat, lon: $lon, radiusMeters: 5000}, first: 200) { id }
}"""


def key() -> str:
    return str(uuid.uuid4())


async def sign_up(
    api: httpx.AsyncClient, *, birth_date: date = date(1990, 5, 17)
) -> tuple[str, str]:
    """A new rider: (access token, user id)."""
    body = await gql(
        api,
        SIGN_UP,
        {
            "input": {
                "email": f"rider-{uuid.uuid4().hex[:12]}@example.org",
                "password": "correct horse battery",
                "birthDate": birth_date.isoformat(),
            }
        },
    )
    assert "errors" not in body, body
    session = body["data"]["signUp"]
    return session["accessToken"], session["rider"]["id"]


async def staff_token(runtime: Runtime) -> str:
    async with transaction(runtime.sessions) as session:
        _, token = await create_token(session, "booking tests")
    return token


async def verified_rider(api: httpx.AsyncClient, runtime: Runtime) -> str:
    """A rider whose driving licence staff verified, through the API."""
    token, user_id = await sign_up(api)
    body = await gql(
        api,
        SET_LICENCE,
        {"userId": user_id, "status": "VERIFIED"},
        await staff_token(runtime),
    )
    assert body["data"]["setLicenceStatus"]["licenceStatus"] == "VERIFIED", body
    return token


class SharedClock:
    """The booking service's clock, moved by the test together with the simulator's, so a
    ride can last minutes without the test waiting."""

    def __init__(self, sim: TompSimulator | None = None) -> None:
        self.now = datetime.now(UTC)
        self.sims: list[TompSimulator] = [sim] if sim else []

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        for sim in self.sims:
            sim.advance(seconds)


def journal_spec_errors(
    spec: TompSpec, sim: TompSimulator, *, check_responses: bool = True
) -> list[str]:
    """Every TOMP request the simulator received (our adapter's: nothing else in these tests
    talks TOMP to it) and, with ``check_responses``, every answer it sent, against the
    TOMP-API 1.6.1 document. Answers lost on purpose (``hang``, ``lose_response``) have no
    status and are not checked."""
    errors: list[str] = []
    for entry in sim.journal:
        errors += spec.request_errors(
            entry.method, entry.path, entry.request_headers, entry.request_body
        )
        if check_responses and entry.status is not None:
            errors += spec.response_errors(
                entry.method, entry.path, entry.status, entry.response_headers, entry.response_body
            )
    return errors


@asynccontextmanager
async def bookable_operator(
    runtime: Runtime,
    slug: str,
    *,
    fleet: str = "scooter",
    vehicles: int = 12,
    injects_faults: bool = False,
) -> AsyncIterator[tuple[TompSimulator, str]]:
    """A TOMP simulator on a local port, registered as provider ``slug`` (GBFS availability
    from the simulator's own feeds, bookings through its TOMP API) and synced.

    When the block ends without an error, every exchange in the simulator's journal is checked
    against the TOMP-API 1.6.1 document (the oracle of tests/adapters/tomp_spec.py): our
    adapter's requests always, the simulator's answers unless ``injects_faults``. A test that
    injects faults (``error``, ``reject`` with a status the spec does not list, ``delay`` past a
    client's timeout…) makes the simulator answer off-spec on purpose, so only its answers are
    exempt there; what our adapter sends, retries included, must still follow the spec."""
    spec = load_spec(require_conformance())
    sim = TompSimulator(fleet=fleet, vehicles=vehicles, system_id=f"sim-{slug}")  # type: ignore[arg-type]
    async with serve_in_background(sim.app) as base_url:
        async with transaction(runtime.sessions) as session:
            await register_provider(
                session,
                slug=slug,
                name=f"Simulated {fleet}s",
                adapter="gbfs",
                config={"discovery_url": f"{base_url}/gbfs/gbfs.json"},
            )
            await set_booking(session, slug, {"operator": "tomp", "config": {"base_url": base_url}})
        report = await runtime.sync.sync(slug)
        assert report.ok, report.error
        yield sim, base_url
    # Not reached when the block raised: a failing test keeps its own error.
    errors = journal_spec_errors(spec, sim, check_responses=not injects_faults)
    assert errors == [], "TOMP exchanges off the 1.6.1 spec:\n" + "\n".join(errors)


@asynccontextmanager
async def clock_of(runtime: Runtime, clock: SharedClock) -> AsyncIterator[SharedClock]:
    previous = runtime.bookings.clock
    runtime.bookings.clock = clock
    try:
        yield clock
    finally:
        runtime.bookings.clock = previous


async def visible_ids(api: httpx.AsyncClient, token: str, lat: float, lon: float) -> set[str]:
    body = await gql(api, NEARBY, {"lat": lat, "lon": lon}, token)
    assert "errors" not in body, body
    return {v["id"] for v in body["data"]["vehicles"]}
