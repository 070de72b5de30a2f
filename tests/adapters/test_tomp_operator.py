"""TompBookingOperator against the TOMP simulator over real HTTP: the booking lifecycle, retry
safety after unknown outcomes, error mapping, money, and every request and response checked
against the TOMP-API 1.6.1 OpenAPI document."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from geographiclib.geodesic import Geodesic

from adapters.base import AdapterConfigError
from adapters.booking import (
    BookingContext,
    BookingNotFoundAtOperator,
    OperatorBooking,
    OperatorBookingState,
    OperatorMoney,
    OperatorRejected,
    OperatorUnavailable,
    Position,
    ReservationRequest,
    load_booking_operator,
)
from adapters.credentials import BearerToken, OperatorAuth
from adapters.tomp import TompBookingOperator
from adapters.tomp.wire import WireError, booking_state, fare_total, parse_booking
from providers.simulators.feed_server import serve_in_background
from providers.simulators.tomp_fleet import FleetName
from providers.simulators.tomp_server import TompSimulator
from tests.adapters.tomp_spec import TompSpec, load_spec
from tests.conftest import require_conformance
from tests.processes import free_port

S = OperatorBookingState
MAAS_ID = "aggregator-under-test"


@dataclass
class Rig:
    sim: TompSimulator
    base_url: str
    operator: TompBookingOperator
    ctx: BookingContext

    def request(self, vehicle_id: str | None = None, **extra: Any) -> ReservationRequest:
        vehicle = next(
            v for v in self.sim.vehicles if vehicle_id is None or v.vehicle_id == vehicle_id
        )
        return ReservationRequest(
            idempotency_key="key-1",
            vehicle_external_id=vehicle.vehicle_id,
            lat=vehicle.lat,
            lon=vehicle.lon,
            **extra,
        )

    async def gbfs(self, feed: str) -> Any:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.base_url}/gbfs/{feed}.json")
            response.raise_for_status()
            return response.json()


async def _rig(fleet: FleetName, client_timeout_s: float = 2.0) -> AsyncIterator[Rig]:
    sim = TompSimulator(fleet=fleet, seed=7, vehicles=6)
    async with serve_in_background(sim.app) as base_url:
        operator = TompBookingOperator.from_config({"base_url": base_url, "maas_id": MAAS_ID})
        async with httpx.AsyncClient(timeout=client_timeout_s) as http:
            yield Rig(sim, base_url, operator, BookingContext(http=http))


@pytest.fixture
async def scooters() -> AsyncIterator[Rig]:
    async for rig in _rig("scooter"):
        yield rig


@pytest.fixture
async def cars() -> AsyncIterator[Rig]:
    async for rig in _rig("car"):
        yield rig


@pytest.fixture
async def impatient() -> AsyncIterator[Rig]:
    """A client that gives up after half a second, for hangs and lost answers."""
    async for rig in _rig("scooter", client_timeout_s=0.5):
        yield rig


@pytest.fixture(scope="module")
def spec() -> TompSpec:
    return load_spec(require_conformance())


def _geodesic_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(Geodesic.WGS84.Inverse(a[0], a[1], b[0], b[1])["s12"])


def _published_plan(plans: Any) -> dict[str, Any]:
    """The GBFS plan in minor units, read from what the simulator publishes."""
    (plan,) = plans["data"]["plans"]
    return {
        "currency": plan["currency"],
        "price": round(plan["price"] * 100),
        "per_min": [
            (s["start"], round(s["rate"] * 100), s["interval"])
            for s in plan.get("per_min_pricing", [])
        ],
        "per_km": [
            (s["start"], round(s["rate"] * 100), s["interval"])
            for s in plan.get("per_km_pricing", [])
        ],
    }


def _expected_price(plan: dict[str, Any], minutes: float, km: float) -> int:
    """GBFS: each segment charges its rate at the beginning of each started interval."""

    def charges(segments: list[tuple[int, int, int]], amount: float) -> int:
        return sum(
            rate * math.ceil((amount - start) / interval)
            for start, rate, interval in segments
            if amount > start
        )

    return int(plan["price"] + charges(plan["per_min"], minutes) + charges(plan["per_km"], km))


async def _reserved(rig: Rig, **extra: Any) -> tuple[ReservationRequest, OperatorBooking]:
    request = rig.request(**extra)
    offer = await rig.operator.prepare(rig.ctx, request)
    return request, await rig.operator.reserve(rig.ctx, offer, request)


# -- configuration ----------------------------------------------------------------------------


def test_config_is_validated_with_clear_messages() -> None:
    operator = TompBookingOperator.from_config({"base_url": "http://tomp.example/api/"})
    assert (operator.base_url, operator.maas_id, operator.api_version, operator.language) == (
        "http://tomp.example/api",
        "mobility-aggregator",
        "1.6.1",
        "en",
    )
    with pytest.raises(AdapterConfigError, match="base_url is required"):
        TompBookingOperator.from_config({})
    with pytest.raises(AdapterConfigError, match="http"):
        TompBookingOperator.from_config({"base_url": "ftp://tomp.example"})
    with pytest.raises(AdapterConfigError, match="unknown config key"):
        TompBookingOperator.from_config({"base_url": "http://x", "token": "secret"})
    with pytest.raises(AdapterConfigError, match="maas_id"):
        TompBookingOperator.from_config({"base_url": "http://x", "maas_id": ""})


def test_the_entry_point_loads_the_tomp_operator() -> None:
    operator = load_booking_operator("tomp", {"base_url": "http://tomp.example"})
    assert isinstance(operator, TompBookingOperator)


# -- lifecycle --------------------------------------------------------------------------------


async def test_scooter_ride_from_offer_to_final_fare(scooters: Rig) -> None:
    rig = scooters
    plan = _published_plan(await rig.gbfs("system_pricing_plans"))
    request = rig.request()
    offer = await rig.operator.prepare(rig.ctx, request)
    # No destination: the simulator prices a 10-minute ride.
    assert offer.estimated_price == OperatorMoney(_expected_price(plan, 10.0, 0.0), "EUR")
    assert offer.valid_until is not None

    booking = await rig.operator.reserve(rig.ctx, offer, request)
    assert (booking.reference, booking.state) == (offer.reference, S.CONFIRMED)
    assert booking.leg_reference is not None and booking.expires_at is not None
    bikes = (await rig.gbfs("free_bike_status"))["data"]["bikes"]
    assert {b["bike_id"]: b["is_reserved"] for b in bikes}[request.vehicle_external_id] is True

    started = await rig.operator.start(rig.ctx, booking, idempotency_key="k-start")
    assert started.state is S.STARTED
    rig.sim.advance(300)
    paused = await rig.operator.pause(rig.ctx, started, idempotency_key="k-pause")
    assert paused.state is S.PAUSED
    rig.sim.advance(120)
    resumed = await rig.operator.resume(rig.ctx, paused, idempotency_key="k-resume")
    assert resumed.state is S.STARTED
    rig.sim.advance(334)  # 754 s in all: 12.6 minutes, 13 started minutes
    end = (request.lat + 0.004, request.lon + 0.003)
    finished = await rig.operator.end(rig.ctx, resumed, idempotency_key="k-end", at=Position(*end))
    assert finished.state is S.FINISHED
    meters = _geodesic_m((request.lat, request.lon), end)
    assert finished.distance_meters == round(meters)
    assert finished.price == OperatorMoney(_expected_price(plan, 754 / 60, meters / 1000), "EUR")
    assert finished.price.amount_minor == 100 + 13 * 25  # the published plan, read by hand

    moved = {b["bike_id"]: b for b in (await rig.gbfs("free_bike_status"))["data"]["bikes"]}
    vehicle = moved[request.vehicle_external_id]
    assert (vehicle["lat"], vehicle["lon"], vehicle["is_reserved"]) == (
        round(end[0], 6),
        round(end[1], 6),
        False,
    )


async def test_car_fare_charges_started_minutes_and_kilometres(cars: Rig) -> None:
    rig = cars
    plan = _published_plan(await rig.gbfs("system_pricing_plans"))
    destination = (rig.sim.vehicles[0].lat + 0.02, rig.sim.vehicles[0].lon + 0.01)
    request = rig.request(to_lat=destination[0], to_lon=destination[1])
    offer = await rig.operator.prepare(rig.ctx, request)
    planned_km = _geodesic_m((request.lat, request.lon), destination) / 1000
    planned_minutes = planned_km / 25.0 * 60  # the simulator's car speed for estimates
    assert offer.estimated_price == OperatorMoney(
        _expected_price(plan, planned_minutes, planned_km), "EUR"
    )

    booking = await rig.operator.reserve(rig.ctx, offer, request)
    booking = await rig.operator.start(rig.ctx, booking, idempotency_key="s")
    rig.sim.advance(1_530)  # 25.5 minutes
    finished = await rig.operator.end(
        rig.ctx, booking, idempotency_key="e", at=Position(*destination)
    )
    assert finished.price is not None
    assert finished.price.amount_minor == _expected_price(plan, 1_530 / 60, planned_km)
    assert finished.price.amount_minor == 26 * 29 + math.ceil(planned_km) * 19


async def test_cancel_frees_the_vehicle_and_repeating_it_is_harmless(scooters: Rig) -> None:
    rig = scooters
    request, booking = await _reserved(rig)
    cancelled = await rig.operator.cancel(rig.ctx, booking, idempotency_key="c1")
    assert cancelled.state is S.CANCELLED
    again = await rig.operator.cancel(rig.ctx, booking, idempotency_key="c1")
    assert again.state is S.CANCELLED
    assert [e.status for e in rig.sim.requests_to("POST /bookings/{id}/events")] == [200, 200, 403]
    bikes = (await rig.gbfs("free_bike_status"))["data"]["bikes"]
    assert {b["bike_id"]: b["is_reserved"] for b in bikes}[request.vehicle_external_id] is False


async def test_every_request_carries_the_tomp_headers_and_the_credentials(scooters: Rig) -> None:
    rig = scooters
    rig.ctx.auth = OperatorAuth(BearerToken("sim-token"))
    await _reserved(rig)
    assert rig.sim.journal
    for entry in rig.sim.journal:
        headers = entry.request_headers
        assert headers["api"] == "TOMP"
        assert headers["api-version"] == "1.6.1"
        assert headers["maas-id"] == MAAS_ID
        assert headers["accept-language"] == "en"
        assert headers["authorization"] == "Bearer sim-token"


# -- retry safety -----------------------------------------------------------------------------


async def test_reserving_the_same_offer_twice_gives_one_booking(scooters: Rig) -> None:
    rig = scooters
    request = rig.request()
    offer = await rig.operator.prepare(rig.ctx, request)
    first = await rig.operator.reserve(rig.ctx, offer, request)
    second = await rig.operator.reserve(rig.ctx, offer, request)
    assert (second.reference, second.state) == (first.reference, S.CONFIRMED)
    assert [b["state"] for b in rig.sim.bookings_view()] == ["CONFIRMED"]
    assert [e.status for e in rig.sim.requests_to("POST /bookings")] == [201, 409]
    # The second attempt read the state instead of committing again.
    assert len(rig.sim.requests_to("POST /bookings/{id}/events")) == 1


async def test_reserve_after_a_lost_create_answer_continues_with_the_commit(
    impatient: Rig,
) -> None:
    rig = impatient
    request = rig.request()
    offer = await rig.operator.prepare(rig.ctx, request)
    rig.sim.inject_fault("POST /bookings", "lose_response")
    with pytest.raises(OperatorUnavailable, match="timed out"):
        await rig.operator.reserve(rig.ctx, offer, request)
    assert [b["state"] for b in rig.sim.bookings_view()] == ["PENDING"]  # it did happen

    booking = await rig.operator.reserve(rig.ctx, offer, request)
    assert booking.state is S.CONFIRMED
    assert [b["state"] for b in rig.sim.bookings_view()] == ["CONFIRMED"]


async def test_reserve_after_a_lost_commit_answer_reads_the_confirmed_booking(
    impatient: Rig,
) -> None:
    rig = impatient
    request = rig.request()
    offer = await rig.operator.prepare(rig.ctx, request)
    rig.sim.inject_fault("POST /bookings/{id}/events", "lose_response")
    with pytest.raises(OperatorUnavailable):
        await rig.operator.reserve(rig.ctx, offer, request)
    booking = await rig.operator.reserve(rig.ctx, offer, request)
    assert booking.state is S.CONFIRMED
    assert len(rig.sim.requests_to("POST /bookings/{id}/events")) == 1  # no second COMMIT


async def test_a_commit_refused_because_it_already_happened_is_accepted(scooters: Rig) -> None:
    rig = scooters
    request = rig.request()
    offer = await rig.operator.prepare(rig.ctx, request)
    headers = {"Api": "TOMP", "Api-Version": "1.6.1", "maas-id": "other", "Accept-Language": "en"}
    # Another attempt (a crashed worker) created and committed the booking meanwhile.
    pending = parse_booking(
        (
            await rig.ctx.http.post(
                f"{rig.base_url}/bookings", json={"id": offer.reference}, headers=headers
            )
        ).json()
    )
    await rig.ctx.http.post(
        f"{rig.base_url}/bookings/{offer.reference}/events",
        json={"operation": "COMMIT"},
        headers=headers,
    )
    booking = await rig.operator._commit(rig.ctx, pending)
    assert booking.state is S.CONFIRMED
    assert [e.status for e in rig.sim.requests_to("POST /bookings/{id}/events")] == [200, 403]


async def test_a_repeated_start_after_a_lost_answer_is_accepted(impatient: Rig) -> None:
    rig = impatient
    _, booking = await _reserved(rig)
    rig.sim.inject_fault("POST /legs/{id}/events", "lose_response")
    with pytest.raises(OperatorUnavailable):
        await rig.operator.start(rig.ctx, booking, idempotency_key="s")
    started = await rig.operator.start(rig.ctx, booking, idempotency_key="s")
    assert started.state is S.STARTED
    assert [e.status for e in rig.sim.requests_to("POST /legs/{id}/events")] == [None, 403]


# -- refusals ---------------------------------------------------------------------------------


async def test_an_expired_offer_is_rejected(scooters: Rig) -> None:
    rig = scooters
    request = rig.request()
    offer = await rig.operator.prepare(rig.ctx, request)
    rig.sim.advance(301)  # offers are valid for 300 s
    with pytest.raises(OperatorRejected, match="expired"):
        await rig.operator.reserve(rig.ctx, offer, request)
    assert [e.status for e in rig.sim.requests_to("POST /bookings")] == [410]


async def test_a_vehicle_booked_by_someone_else_is_rejected(scooters: Rig) -> None:
    rig = scooters
    request = rig.request()
    mine = await rig.operator.prepare(rig.ctx, request)
    theirs = await rig.operator.prepare(rig.ctx, request)
    await rig.operator.reserve(rig.ctx, theirs, request)
    with pytest.raises(OperatorRejected, match="REJECTED"):
        await rig.operator.reserve(rig.ctx, mine, request)
    # And no one offers it while it is held.
    with pytest.raises(OperatorRejected, match="no offer"):
        await rig.operator.prepare(rig.ctx, request)


async def test_a_booking_that_expired_before_the_retry_is_rejected(scooters: Rig) -> None:
    rig = scooters
    request = rig.request()
    offer = await rig.operator.prepare(rig.ctx, request)
    rig.sim.inject_fault("POST /bookings/{id}/events", "error", status=502)
    with pytest.raises(OperatorUnavailable):
        await rig.operator.reserve(rig.ctx, offer, request)
    rig.sim.advance(301)  # PENDING bookings expire after 300 s
    with pytest.raises(OperatorRejected, match="EXPIRED"):
        await rig.operator.reserve(rig.ctx, offer, request)


async def test_a_tomp_rejection_carries_its_errorcode_and_title(scooters: Rig) -> None:
    rig = scooters
    request = rig.request()
    offer = await rig.operator.prepare(rig.ctx, request)
    rig.sim.inject_fault("POST /bookings", "reject", status=403, errorcode=3201)
    with pytest.raises(OperatorRejected) as refused:
        await rig.operator.reserve(rig.ctx, offer, request)
    assert refused.value.operator_code == "3201"
    assert "Injected rejection" in refused.value.message


async def test_an_illegal_leg_event_is_rejected_with_the_tomp_code(scooters: Rig) -> None:
    rig = scooters
    _, booking = await _reserved(rig)
    with pytest.raises(OperatorRejected) as refused:
        await rig.operator.pause(rig.ctx, booking, idempotency_key="p")  # never started
    assert refused.value.operator_code == "4004"
    assert "illegal" in refused.value.message


async def test_status_of_an_unknown_booking_is_not_found(scooters: Rig) -> None:
    with pytest.raises(BookingNotFoundAtOperator):
        await scooters.operator.status(scooters.ctx, "no-such-booking")


# -- unavailability ---------------------------------------------------------------------------


async def test_a_server_error_is_unavailable_with_retry_after(scooters: Rig) -> None:
    rig = scooters
    rig.sim.inject_fault("POST /planning/offers", "error", status=503, retry_after="7")
    with pytest.raises(OperatorUnavailable) as unavailable:
        await rig.operator.prepare(rig.ctx, rig.request())
    assert unavailable.value.retry_after_seconds == 7.0
    assert "503" in unavailable.value.message


async def test_a_500_is_unavailable(scooters: Rig) -> None:
    rig = scooters
    _, booking = await _reserved(rig)
    rig.sim.inject_fault("GET /bookings/{id}", "error")
    with pytest.raises(OperatorUnavailable, match="500"):
        await rig.operator.status(rig.ctx, booking.reference)


async def test_a_hanging_operator_is_unavailable(impatient: Rig) -> None:
    rig = impatient
    rig.sim.inject_fault("POST /planning/offers", "hang")
    with pytest.raises(OperatorUnavailable, match="timed out"):
        await rig.operator.prepare(rig.ctx, rig.request())
    assert rig.sim.state.offers == {}  # the hang happened before any work


async def test_an_unreachable_operator_is_unavailable() -> None:
    operator = TompBookingOperator.from_config({"base_url": f"http://127.0.0.1:{free_port()}"})
    async with httpx.AsyncClient(timeout=1.0) as http:
        with pytest.raises(OperatorUnavailable, match="ConnectError"):
            await operator.status(BookingContext(http=http), "b-1")


@pytest.mark.parametrize(
    ("content", "content_type", "reason"),
    [
        (b"<html>maintenance</html>", "text/html", "not JSON"),
        (b'{"id": "b-1"}', "application/json", "no known state"),
        (b'{"id": "b-1", "state": "CONFIRMED", "legs": {"id": "l"}}', "application/json", "legs"),
        (
            b'{"id": "b-1", "state": "CONFIRMED", "pricing": {"estimated": true, "parts": '
            b'[{"amount": "lots", "currencyCode": "EUR"}]}}',
            "application/json",
            "amount",
        ),
        (b"[]", "application/json", "not a JSON object"),
    ],
)
async def test_an_answer_of_the_wrong_shape_is_unavailable(
    content: bytes, content_type: str, reason: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content, headers={"Content-Type": content_type})

    operator = TompBookingOperator.from_config({"base_url": "http://tomp.example"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(OperatorUnavailable, match=reason):
            await operator.status(BookingContext(http=http), "b-1")


# -- money and states -------------------------------------------------------------------------


def test_fare_is_the_sum_of_parts_except_max_in_minor_units() -> None:
    parts = [
        {"amount": 2.35, "currencyCode": "EUR", "type": "FIXED"},
        {"amount": 0.1, "currencyCode": "EUR", "type": "FLEX", "unitType": "MINUTE", "units": 1},
        {"amount": 0.2, "currencyCode": "eur", "type": "FLEX", "unitType": "KM", "units": 1},
        {"amount": 15.0, "currencyCode": "EUR", "type": "MAX"},
    ]
    assert fare_total({"estimated": False, "parts": parts}) == OperatorMoney(235 + 10 + 20, "EUR")
    yen = [{"amount": 480, "currencyCode": "JPY"}]
    assert fare_total({"estimated": True, "parts": yen}) == OperatorMoney(480, "JPY")
    assert fare_total({"estimated": True, "parts": []}) is None
    mixed = [{"amount": 1, "currencyCode": "EUR"}, {"amount": 1, "currencyCode": "NOK"}]
    with pytest.raises(WireError, match="mixes currencies"):
        fare_total({"estimated": True, "parts": mixed})


@pytest.mark.parametrize(
    ("booking", "leg", "expected"),
    [
        ("NEW", None, S.PENDING),
        ("PENDING", "NOT_STARTED", S.PENDING),
        ("CONFIRMED", "NOT_STARTED", S.CONFIRMED),
        ("CONFIRMED", "IN_USE", S.STARTED),
        ("STARTED", "IN_USE", S.STARTED),
        ("STARTED", "PAUSED", S.PAUSED),
        ("STARTED", "FINISHED", S.FINISHED),
        ("FINISHED", "FINISHED", S.FINISHED),
        ("CANCELLED", "CANCELLED", S.CANCELLED),
        ("RELEASED", None, S.CANCELLED),
        ("EXPIRED", "NOT_STARTED", S.EXPIRED),
        ("REJECTED", None, S.REJECTED),
        ("CONDITIONAL_CONFIRMED", None, S.PENDING),
    ],
)
def test_tomp_booking_and_leg_states_map_to_ours(
    booking: str, leg: str | None, expected: OperatorBookingState
) -> None:
    assert booking_state(booking, leg) is expected


# -- the OpenAPI document as the oracle -------------------------------------------------------


async def test_every_exchange_of_a_lifecycle_and_its_refusals_follows_the_spec(
    scooters: Rig, spec: TompSpec
) -> None:
    rig = scooters
    http = rig.ctx.http
    headers = {"Api": "TOMP", "Api-Version": "1.6.1", "maas-id": MAAS_ID, "Accept-Language": "en"}
    assert (await http.get(f"{rig.base_url}/operator/ping", headers=headers)).status_code == 200
    assert (await http.get(f"{rig.base_url}/operator/meta", headers=headers)).status_code == 200
    first, second = rig.sim.vehicles[0], rig.sim.vehicles[1]

    # A whole ride, with a destination, and a duplicate create on the way.
    request = rig.request(first.vehicle_id, to_lat=first.lat + 0.01, to_lon=first.lon + 0.01)
    offer = await rig.operator.prepare(rig.ctx, request)
    booking = await rig.operator.reserve(rig.ctx, offer, request)
    await rig.operator.reserve(rig.ctx, offer, request)  # 409, GET
    booking = await rig.operator.start(rig.ctx, booking, idempotency_key="s")
    booking = await rig.operator.pause(rig.ctx, booking, idempotency_key="p")
    booking = await rig.operator.resume(rig.ctx, booking, idempotency_key="r")
    rig.sim.advance(200)
    await rig.operator.end(rig.ctx, booking, idempotency_key="e", at=Position(first.lat, first.lon))
    assert booking.leg_reference is not None
    leg = await http.get(f"{rig.base_url}/legs/{booking.leg_reference}", headers=headers)
    assert leg.status_code == 200

    # Refusals: illegal event (403), cancel after the ride, unknown booking (404), taken
    # vehicle (REJECTED), expired offer (410).
    with pytest.raises(OperatorRejected):
        await rig.operator.pause(rig.ctx, booking, idempotency_key="p2")
    with pytest.raises(OperatorRejected):
        await rig.operator.cancel(rig.ctx, booking, idempotency_key="c")
    with pytest.raises(BookingNotFoundAtOperator):
        await rig.operator.status(rig.ctx, "unknown")
    other = rig.request(second.vehicle_id)
    late = await rig.operator.prepare(rig.ctx, other)
    taken = await rig.operator.prepare(rig.ctx, other)
    held = await rig.operator.reserve(rig.ctx, taken, other)
    with pytest.raises(OperatorRejected):
        await rig.operator.reserve(rig.ctx, late, other)
    await rig.operator.cancel(rig.ctx, held, idempotency_key="c2")
    expiring = await rig.operator.prepare(rig.ctx, other)
    rig.sim.advance(400)
    with pytest.raises(OperatorRejected):
        await rig.operator.reserve(rig.ctx, expiring, other)
    # A request without the TOMP headers: the 400 error body is checked, the request is not.
    bare = await http.post(f"{rig.base_url}/bookings", json={"id": "x"})
    assert bare.status_code == 400 and bare.json()["errorcode"] == 3001

    statuses = {(e.route, e.status) for e in rig.sim.journal}
    assert {
        ("POST /bookings", 201),
        ("POST /bookings", 409),
        ("POST /bookings", 410),
        ("POST /bookings", 400),
        ("GET /bookings/{id}", 404),
        ("POST /legs/{id}/events", 403),
        ("POST /bookings/{id}/events", 403),
    } <= statuses
    assert any(
        e.response_body and e.response_body.get("state") == "REJECTED"
        for e in rig.sim.journal
        if isinstance(e.response_body, dict)
    )
    assert spec.journal_errors(rig.sim.journal, requests_from=MAAS_ID) == []


def test_the_spec_check_catches_invalid_bodies_and_headers(spec: TompSpec) -> None:
    headers = {"Api": "TOMP", "Api-Version": "1.6.1", "maas-id": "m", "Accept-Language": "en"}
    assert spec.component_errors("booking", {"id": "b", "state": "BOOKED"})
    no_time = spec.request_errors("POST", "/legs/l-1/events", headers, {"event": "FINISH"})
    assert any("'time' is a required property" in error for error in no_time)
    missing_header = spec.request_errors("POST", "/bookings", {"Api": "TOMP"}, {"id": "b"})
    assert any("maas-id" in error for error in missing_header)
    # 409 has no content in 1.6.1: a body is a deviation.
    assert spec.response_errors("POST", "/bookings", 409, {}, {"errorcode": 3000})
    pending = {"id": "b", "state": "PENDING"}
    assert spec.response_errors("POST", "/bookings", 201, {"Content-Language": "en"}, pending) == [
        "response 201 to POST /bookings: required header Expires missing"
    ]
    bad_planning = {
        "validUntil": "tomorrow",
        "options": [{"id": "o", "state": "NEW", "pricing": {"parts": []}}],
    }
    errors = spec.response_errors(
        "POST", "/planning/offers", 201, {"Content-Language": "en"}, bad_planning
    )
    assert any("date-time" in e for e in errors)
    assert any("'estimated' is a required property" in e for e in errors)
