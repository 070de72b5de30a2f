"""Unified booking through the API, against a real TOMP operator simulator over HTTP, real
PostgreSQL/PostGIS and Redis: the whole ride, races, idempotency, faults, authorisation."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import httpx
import orjson
from geopy.distance import geodesic
from sqlalchemy import text

from app.booking.maintenance import run_maintenance
from app.platform.db import transaction
from app.runtime import Runtime
from providers.push import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from providers.simulators.feed_server import FeedServer
from providers.simulators.tomp_server import TompSimulator
from tests.booking_support import (
    CANCEL,
    END,
    PAUSE,
    RESERVE,
    RESUME,
    START,
    SharedClock,
    bookable_operator,
    clock_of,
    codes,
    gql,
    key,
    sign_up,
    verified_rider,
    visible_ids,
)
from tests.helpers import add_provider, scooter, serve_documents, synthetic_scooter_feeds
from tests.processes import wait_for

TRIP_OPTIONS = """
query T($from: LatLonInput!, $to: LatLonInput!) {
  tripOptions(from: $from, to: $to, formFactors: [CAR], first: 5) {
    vehicle { id }
    offer { id price { amountMinor currency } }
  }
}"""

BOOKING = """
query B($id: ID!) { booking(id: $id) { id state } }"""

MY_BOOKINGS = """
query M($active: Boolean) { myBookings(active: $active) { id state } }"""


# --- independent expectations ------------------------------------------------------------


def _minor(amount: float) -> int:
    return round(amount * 100)


def _charges(segment: dict[str, Any], amount: float) -> int:
    """Walk the charge points one by one: at start, start + interval, ..., each one due when
    the trip went past it (before the segment's end)."""
    start, interval, end = segment["start"], segment["interval"], segment.get("end")
    limit = amount if end is None else min(amount, end)
    if interval == 0:
        return 1 if limit > start else 0
    count, point = 0, start
    while point < limit:
        count += 1
        point += interval
    return count


def expected_price_minor(plan: dict[str, Any], minutes: float, kilometers: float) -> int:
    total = _minor(plan["price"])
    for segment in plan.get("per_min_pricing", []):
        total += _minor(segment["rate"]) * _charges(segment, minutes)
    for segment in plan.get("per_km_pricing", []):
        total += _minor(segment["rate"]) * _charges(segment, kilometers)
    return max(total, 0)


def published_plan(sim: TompSimulator, base_url: str, vehicle_id: str) -> dict[str, Any]:
    """The pricing plan the simulator's own GBFS feeds say applies to this vehicle."""
    docs = sim.gbfs_documents(base_url)
    bikes = {b["bike_id"]: b for b in docs["free_bike_status"]["data"]["bikes"]}
    types = {t["vehicle_type_id"]: t for t in docs["vehicle_types"]["data"]["vehicle_types"]}
    bike = bikes[vehicle_id]
    plan_id = (
        bike.get("pricing_plan_id") or types[bike["vehicle_type_id"]]["default_pricing_plan_id"]
    )
    plans: dict[str, dict[str, Any]] = {
        p["plan_id"]: p for p in docs["system_pricing_plans"]["data"]["plans"]
    }
    return plans[plan_id]


def _success(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, body
    result = body["data"][field]
    assert result["__typename"] == "BookingSuccess", result
    return result["booking"]  # type: ignore[no-any-return]


async def _active_bookings(runtime: Runtime, vehicle_id: str) -> int:
    async with runtime.sessions() as session:
        return int(
            (
                await session.execute(
                    text(
                        "SELECT count(*) FROM bookings WHERE vehicle_id = :v "
                        "AND state IN ('PENDING', 'CONFIRMED', 'STARTED', 'PAUSED')"
                    ),
                    {"v": vehicle_id},
                )
            ).scalar_one()
        )


# --- the whole ride ----------------------------------------------------------------------


async def test_whole_ride_with_a_car_from_sign_up_to_receipt(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simcars", fleet="car") as (sim, base_url):
        clock = SharedClock(sim)
        async with clock_of(runtime, clock):
            token = await verified_rider(api, runtime)
            target = sim.vehicles[0]
            origin = {"lat": target.lat + 0.0005, "lon": target.lon}
            destination = {"lat": target.lat - 0.01, "lon": target.lon - 0.005}
            body = await gql(api, TRIP_OPTIONS, {"from": origin, "to": destination}, token)
            assert "errors" not in body, body
            # Walking the whole way comes first (it is free); the cars follow.
            options = [o for o in body["data"]["tripOptions"] if o["vehicle"] is not None]
            assert options, "the simulator's cars are offered"
            option = options[0]
            vehicle_id = option["vehicle"]["id"]
            sim_id = vehicle_id.split(":", 1)[1]
            vehicle = next(v for v in sim.vehicles if v.vehicle_id == sim_id)
            start = (vehicle.lat, vehicle.lon)  # the simulator moves it when the ride ends

            reserved = _success(
                await gql(
                    api,
                    RESERVE,
                    {"vehicleId": vehicle_id, "key": key(), "offerId": option["offer"]["id"]},
                    token,
                ),
                "reserveVehicle",
            )
            assert reserved["state"] == "CONFIRMED"
            assert reserved["estimatedPrice"] == option["offer"]["price"]
            assert set(reserved["allowedActions"]) == {"START", "CANCEL"}
            # Gone from everyone's search at once, and held at the operator.
            other, _ = await sign_up(api)
            assert vehicle_id not in await visible_ids(api, other, *start)
            held = {b["vehicle_id"]: b["state"] for b in sim.bookings_view()}
            assert held[sim_id] == "CONFIRMED"
            booking_id = reserved["id"]

            started = _success(
                await gql(api, START, {"bookingId": booking_id, "key": key()}, token),
                "startTrip",
            )
            assert started["state"] == "STARTED"
            clock.advance(7 * 60 + 20)
            paused = _success(
                await gql(api, PAUSE, {"bookingId": booking_id, "key": key()}, token), "pauseTrip"
            )
            assert paused["state"] == "PAUSED"
            clock.advance(3 * 60)
            resumed = _success(
                await gql(api, RESUME, {"bookingId": booking_id, "key": key()}, token),
                "resumeTrip",
            )
            assert resumed["state"] == "STARTED"
            clock.advance(12 * 60 + 5)

            # Not inside the operator's no-parking zone: refused with the zone's name.
            zone = sim.zone
            inside = {
                "lat": (zone.south + zone.north) / 2,
                "lon": (zone.west + zone.east) / 2,
            }
            refused = await gql(api, END, {"bookingId": booking_id, "key": key(), **inside}, token)
            assert refused["data"]["endTrip"]["__typename"] == "RideEndNotAllowed", refused
            assert refused["data"]["endTrip"]["zoneName"] == zone.name
            assert refused["data"]["endTrip"]["code"] == "RIDE_END_NOT_ALLOWED"

            end_point = {"lat": start[0] - 0.012, "lon": start[1] - 0.004}
            ended = _success(
                await gql(api, END, {"bookingId": booking_id, "key": key(), **end_point}, token),
                "endTrip",
            )
    assert ended["state"] == "FINISHED"
    assert ended["allowedActions"] == []
    minutes = (7 * 60 + 20 + 3 * 60 + 12 * 60 + 5) / 60
    # The operator measured the ride (the simulator: the geodesic in whole metres): billed.
    meters = round(geodesic(start, (end_point["lat"], end_point["lon"])).meters)
    assert ended["distanceMeters"] == meters
    plan = published_plan(sim, base_url, sim_id)
    expected = expected_price_minor(plan, minutes, meters / 1000)
    receipt = ended["receipt"]
    assert receipt["total"] == {"amountMinor": expected, "currency": plan["currency"]}
    assert ended["finalPrice"]["amountMinor"] == expected
    assert sum(line["amount"]["amountMinor"] for line in receipt["lines"]) == expected
    assert math.isclose(receipt["minutes"], minutes, rel_tol=1e-9)
    # The operator billed the same ride the same way.
    assert receipt["operatorPrice"]["amountMinor"] == expected
    # Every transition is on record, in order, with its cause.
    assert [(e["event"], e["toState"], e["cause"]) for e in ended["events"]] == [
        ("RESERVE", "PENDING", "rider"),
        ("CONFIRM", "CONFIRMED", "operator"),
        ("START", "STARTED", "rider"),
        ("PAUSE", "PAUSED", "rider"),
        ("RESUME", "STARTED", "rider"),
        ("FINISH", "FINISHED", "rider"),
    ]
    past = await gql(api, MY_BOOKINGS, {"active": False}, token)
    assert past["data"]["myBookings"] == [{"id": booking_id, "state": "FINISHED"}]
    # The vehicle is back, where the ride ended.
    assert vehicle_id in await visible_ids(api, other, end_point["lat"], end_point["lon"])


async def test_an_illegal_action_is_a_typed_error_never_a_no_op(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        token, _ = await sign_up(api)
        vehicle_id = f"simscoot:{sim.vehicles[0].vehicle_id}"
        booking = _success(
            await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, token),
            "reserveVehicle",
        )
        body = await gql(api, PAUSE, {"bookingId": booking["id"], "key": key()}, token)
        result = body["data"]["pauseTrip"]
        assert result["__typename"] == "IllegalBookingTransition"
        assert result["code"] == "ILLEGAL_TRANSITION"
        assert result["state"] == "CONFIRMED"
        assert "START" in result["allowedActions"]
        # Nothing reached the operator, and the booking did not move.
        assert not sim.requests_to("POST /legs/{id}/events")
        again = await gql(api, BOOKING, {"id": booking["id"]}, token)
        assert again["data"]["booking"]["state"] == "CONFIRMED"
        cancelled = _success(
            await gql(api, CANCEL, {"bookingId": booking["id"], "key": key()}, token),
            "cancelBooking",
        )
        assert cancelled["state"] == "CANCELLED"
        assert {b["state"] for b in sim.bookings_view()} == {"CANCELLED"}


# --- eligibility ---------------------------------------------------------------------------


async def test_no_verified_licence_no_car_but_a_scooter_is_fine(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with (
        bookable_operator(runtime, "simcars", fleet="car") as (cars, _),
        bookable_operator(runtime, "simscoot") as (scooters, _),
    ):
        token, _ = await sign_up(api)
        car = f"simcars:{cars.vehicles[0].vehicle_id}"
        body = await gql(api, RESERVE, {"vehicleId": car, "key": key()}, token)
        result = body["data"]["reserveVehicle"]
        assert result["__typename"] == "NotEligible"
        assert [r["code"] for r in result["refusals"]] == ["LICENCE_REQUIRED"]
        assert cars.journal == [], "refused before any operator call"
        assert await _active_bookings(runtime, car) == 0

        scooter = f"simscoot:{scooters.vehicles[0].vehicle_id}"
        booked = _success(
            await gql(api, RESERVE, {"vehicleId": scooter, "key": key()}, token),
            "reserveVehicle",
        )
        assert booked["state"] == "CONFIRMED"


# --- no double booking ---------------------------------------------------------------------


async def test_fifty_riders_race_for_one_vehicle_and_exactly_one_gets_it(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        riders = [(await sign_up(api))[0] for _ in range(51)]
        contenders, bystander = riders[:50], riders[50]
        target = sim.vehicles[3]
        vehicle_id = f"simscoot:{target.vehicle_id}"
        assert vehicle_id in await visible_ids(api, bystander, target.lat, target.lon)
        bodies = await asyncio.gather(
            *(
                gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, token)
                for token in contenders
            )
        )
        kinds = [b["data"]["reserveVehicle"]["__typename"] for b in bodies]
        assert kinds.count("BookingSuccess") == 1, kinds
        assert kinds.count("VehicleUnavailable") == 49, kinds
        reasons = {
            b["data"]["reserveVehicle"]["reason"]
            for b in bodies
            if b["data"]["reserveVehicle"]["__typename"] == "VehicleUnavailable"
        }
        assert reasons <= {"BOOKED", "RESERVED"}
        assert await _active_bookings(runtime, vehicle_id) == 1
        # The losers never reached the operator: one booking there.
        assert len(sim.requests_to("POST /bookings")) == 1
        assert vehicle_id not in await visible_ids(api, bystander, target.lat, target.lon)
        # A sync while it is booked does not bring it back.
        assert (await runtime.sync.sync("simscoot")).ok
        assert vehicle_id not in await visible_ids(api, bystander, target.lat, target.lon)


async def _let_push(runtime: Runtime, provider: str) -> str:
    secret = f"whsec_{provider}_test_secret"
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text("UPDATE providers SET ingest_secret = :s WHERE id = :p"),
            {"s": secret, "p": provider},
        )
    runtime.reference.invalidate()
    return secret


async def _vehicle_types(runtime: Runtime, ids: list[str]) -> dict[str, str]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text("SELECT id, vehicle_type_id FROM vehicles WHERE id = ANY(:ids)"), {"ids": ids}
        )
        return {r.id: r.vehicle_type_id for r in rows}


async def _push_free(
    api: httpx.AsyncClient,
    secret: str,
    positions: dict[str, tuple[float, float]],
    types: dict[str, str],
) -> dict[str, Any]:
    """The operator reports these vehicles free, at these positions, now."""
    now = int(time.time())
    records = [
        {
            "vehicle_id": vid.split(":", 1)[1],
            "lat": lat,
            "lon": lon,
            "vehicle_type_id": types[vid].split(":", 1)[1],
            "is_reserved": False,
            "is_disabled": False,
            "last_reported": now,
        }
        for vid, (lat, lon) in positions.items()
    ]
    body = orjson.dumps({"vehicles": records})
    response = await api.post(
        f"/ingest/{next(iter(positions)).split(':', 1)[0]}/vehicles",
        content=body,
        headers={
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(now),
            SIGNATURE_HEADER: sign(secret, now, body),
        },
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _stored_vehicles(
    runtime: Runtime, ids: list[str]
) -> dict[str, tuple[bool, float, float]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id, is_reserved, ST_Y(geom) AS lat, ST_X(geom) AS lon "
                "FROM vehicles WHERE id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        return {r.id: (r.is_reserved, r.lat, r.lon) for r in rows}


async def test_a_pushed_status_does_not_bring_a_booked_vehicle_back(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    """An operator that also pushes statuses (connected vehicles) may report a booked vehicle
    as free: its status predates our booking. The vehicle moves, but stays out of search."""
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        secret = await _let_push(runtime, "simscoot")
        rider, _ = await sign_up(api)
        bystander, _ = await sign_up(api)
        booked, free = sim.vehicles[4], sim.vehicles[5]
        booked_id, free_id = f"simscoot:{booked.vehicle_id}", f"simscoot:{free.vehicle_id}"
        reserved = await gql(api, RESERVE, {"vehicleId": booked_id, "key": key()}, rider)
        assert reserved["data"]["reserveVehicle"]["__typename"] == "BookingSuccess", reserved
        booking_id = reserved["data"]["reserveVehicle"]["booking"]["id"]

        moved = {
            vid: (v.lat + 0.0005, v.lon + 0.0005)
            for vid, v in ((booked_id, booked), (free_id, free))
        }
        types = await _vehicle_types(runtime, list(moved))
        result = await _push_free(api, secret, moved, types)
        assert result["updated"] == 2 and result["indexUpdated"]

        # Both moved where the operator says; only the unbooked one is free.
        assert await _stored_vehicles(runtime, list(moved)) == {
            booked_id: (True, *moved[booked_id]),
            free_id: (False, *moved[free_id]),
        }
        lat, lon = moved[free_id]
        seen = await visible_ids(api, bystander, lat, lon)
        assert free_id in seen and booked_id not in seen
        # Once the booking is over, the vehicle is offered again.
        cancelled = await gql(api, CANCEL, {"bookingId": booking_id, "key": key()}, rider)
        assert cancelled["data"]["cancelBooking"]["__typename"] == "BookingSuccess", cancelled
        assert booked_id in await visible_ids(api, bystander, lat, lon)


async def test_bookings_racing_pushed_free_statuses_all_stay_reserved(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    """Reservations and pushes saying the same vehicles are free, all at once: whatever the
    interleaving, every booked vehicle ends reserved in PostGIS and out of search."""
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        secret = await _let_push(runtime, "simscoot")
        targets = sim.vehicles[:8]
        ids = [f"simscoot:{v.vehicle_id}" for v in targets]
        positions = {vid: (v.lat, v.lon) for vid, v in zip(ids, targets, strict=True)}
        types = await _vehicle_types(runtime, ids)
        riders = [(await sign_up(api))[0] for _ in ids]
        bystander, _ = await sign_up(api)

        async def reserve(vehicle_id: str, rider: str) -> str:
            body = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, rider)
            return str(body["data"]["reserveVehicle"]["__typename"])

        async def pushes() -> None:
            for _ in range(6):
                await _push_free(api, secret, positions, types)

        results = await asyncio.gather(
            *(reserve(vid, rider) for vid, rider in zip(ids, riders, strict=True)),
            pushes(),
            pushes(),
        )
        outcomes = dict(zip(ids, results[: len(ids)], strict=True))
        booked = {vid for vid, kind in outcomes.items() if kind == "BookingSuccess"}
        assert booked, outcomes
        assert await _active_bookings_count(runtime, ids) == len(booked)
        stored = await _stored_vehicles(runtime, ids)
        assert {vid for vid, (reserved, _, _) in stored.items() if reserved} == booked
        seen = set()
        for lat, lon in positions.values():
            seen |= await visible_ids(api, bystander, lat, lon)
        assert not booked & seen
        assert set(ids) - booked <= seen


async def _active_bookings_count(runtime: Runtime, ids: list[str]) -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM bookings WHERE vehicle_id = ANY(:ids) "
                "AND state IN ('PENDING', 'CONFIRMED', 'STARTED', 'PAUSED')"
            ),
            {"ids": ids},
        )
        return int(count or 0)


# --- idempotency ---------------------------------------------------------------------------


async def test_idempotency_replay_reuse_and_in_progress(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        token, _ = await sign_up(api)
        first, second = (f"simscoot:{v.vehicle_id}" for v in sim.vehicles[:2])
        same = key()
        one = await gql(api, RESERVE, {"vehicleId": first, "key": same}, token)
        two = await gql(api, RESERVE, {"vehicleId": first, "key": same}, token)
        assert one == two, "the same key and payload replay the first answer"
        assert len(sim.requests_to("POST /bookings")) == 1

        reused = await gql(api, RESERVE, {"vehicleId": second, "key": same}, token)
        assert codes(reused) == ["IDEMPOTENCY_KEY_REUSED"]
        booking_id = one["data"]["reserveVehicle"]["booking"]["id"]
        other_mutation = await gql(api, START, {"bookingId": booking_id, "key": same}, token)
        assert codes(other_mutation) == ["IDEMPOTENCY_KEY_REUSED"]

        # A request still running holds its key.
        sim.inject_fault("POST /bookings", "delay", delay_seconds=1.5)
        slow_key = key()
        slow = asyncio.create_task(gql(api, RESERVE, {"vehicleId": second, "key": slow_key}, token))

        async def second_booking_reached_the_operator() -> bool:
            return len(sim.requests_to("POST /bookings")) > 1

        await wait_for(second_booking_reached_the_operator, 10, "the slow request", [])
        busy = await gql(api, RESERVE, {"vehicleId": second, "key": slow_key}, token)
        assert codes(busy) == ["IDEMPOTENCY_KEY_IN_PROGRESS"]
        done = await slow
        assert done["data"]["reserveVehicle"]["__typename"] == "BookingSuccess"
        assert await gql(api, RESERVE, {"vehicleId": second, "key": slow_key}, token) == done


# --- faults --------------------------------------------------------------------------------


async def test_operator_failing_or_hanging_on_reserve_leaves_no_active_booking(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    # The injected 500 on POST /bookings is a status TOMP 1.6.1 does not list there: the
    # simulator's answers are exempt from the spec check, our requests are still checked.
    async with bookable_operator(runtime, "simscoot", injects_faults=True) as (sim, _):
        token, _ = await sign_up(api)
        target = sim.vehicles[0]
        vehicle_id = f"simscoot:{target.vehicle_id}"
        for mode in ("error", "hang"):
            sim.inject_fault("POST /bookings", mode)
            body = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, token)
            result = body["data"]["reserveVehicle"]
            assert result["__typename"] == "OperatorUnavailable", (mode, result)
            assert result["code"] == "OPERATOR_UNAVAILABLE"
            assert await _active_bookings(runtime, vehicle_id) == 0
            assert vehicle_id in await visible_ids(api, token, target.lat, target.lon)
        # Neither fault let the operator create anything (a commit whose answer is lost is
        # tested in test_booking_faults.py), and a cancel was tried for the unknown outcome.
        assert sim.bookings_view() == []
        assert len(sim.requests_to("POST /bookings/{id}/events")) == 2
        # And the vehicle can be booked once the operator is back.
        ok = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, token)
        assert ok["data"]["reserveVehicle"]["__typename"] == "BookingSuccess"


async def test_operator_rejection_is_operator_rejected_with_its_code(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        token, _ = await sign_up(api)
        vehicle_id = f"simscoot:{sim.vehicles[0].vehicle_id}"
        sim.inject_fault("POST /bookings", "reject", errorcode=3209)
        body = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, token)
        result = body["data"]["reserveVehicle"]
        assert result["__typename"] == "OperatorRejected"
        assert result["operatorCode"] == "3209"
        assert await _active_bookings(runtime, vehicle_id) == 0
        async with runtime.sessions() as session:
            states = (await session.execute(text("SELECT state FROM bookings"))).scalars().all()
        assert states == ["REJECTED"]


async def test_our_commit_failing_after_the_operator_said_yes_cancels_at_the_operator(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    # A real database failure at the worst moment: confirming is refused by a trigger.
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text(
                """
                CREATE OR REPLACE FUNCTION refuse_confirm() RETURNS trigger AS $$
                BEGIN RAISE EXCEPTION 'disk full (test)'; END $$ LANGUAGE plpgsql
                """
            )
        )
        await session.execute(
            text(
                "CREATE TRIGGER refuse_confirm BEFORE UPDATE ON bookings FOR EACH ROW "
                "WHEN (NEW.state = 'CONFIRMED') EXECUTE FUNCTION refuse_confirm()"
            )
        )
    try:
        async with bookable_operator(runtime, "simscoot") as (sim, _):
            token, _ = await sign_up(api)
            target = sim.vehicles[0]
            vehicle_id = f"simscoot:{target.vehicle_id}"
            body = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, token)
            result = body["data"]["reserveVehicle"]
            assert result["__typename"] == "BookingFailed", result
            cancels = [
                e
                for e in sim.requests_to("POST /bookings/{id}/events")
                if e.request_body["operation"] == "CANCEL"
            ]
            assert len(cancels) == 1, "the compensating cancel reached the operator"
            assert {b["state"] for b in sim.bookings_view()} == {"CANCELLED"}
            assert await _active_bookings(runtime, vehicle_id) == 0
            assert vehicle_id in await visible_ids(api, token, target.lat, target.lon)
    finally:
        async with transaction(runtime.sessions) as session:
            await session.execute(text("DROP TRIGGER refuse_confirm ON bookings"))
            await session.execute(text("DROP FUNCTION refuse_confirm()"))


async def test_a_reservation_not_started_in_time_expires_and_the_vehicle_returns(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        clock = SharedClock(sim)
        async with clock_of(runtime, clock):
            token, _ = await sign_up(api)
            target = sim.vehicles[0]
            vehicle_id = f"simscoot:{target.vehicle_id}"
            booking = _success(
                await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, token),
                "reserveVehicle",
            )
            assert vehicle_id not in await visible_ids(api, token, target.lat, target.lon)
            report = await run_maintenance(runtime.bookings)
            assert report.expired == []
            clock.advance(16 * 60)  # the simulator holds reservations for 15 minutes
            report = await run_maintenance(runtime.bookings)
            assert [str(b) for b in report.expired] == [booking["id"]]
            after = await gql(api, BOOKING, {"id": booking["id"]}, token)
            assert after["data"]["booking"]["state"] == "EXPIRED"
            assert vehicle_id in await visible_ids(api, token, target.lat, target.lon)
            late = await gql(api, START, {"bookingId": booking["id"], "key": key()}, token)
            assert late["data"]["startTrip"]["__typename"] == "IllegalBookingTransition"


# --- authorisation -------------------------------------------------------------------------


async def test_another_rider_cannot_read_change_or_guess_a_booking(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    import uuid

    async with bookable_operator(runtime, "simscoot") as (sim, _):
        owner, _ = await sign_up(api)
        intruder, _ = await sign_up(api)
        vehicle_id = f"simscoot:{sim.vehicles[0].vehicle_id}"
        booking = _success(
            await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, owner),
            "reserveVehicle",
        )
        for guess in (booking["id"], str(uuid.uuid4()), "not-a-uuid"):
            read = await gql(api, BOOKING, {"id": guess}, intruder)
            assert codes(read) == ["BOOKING_NOT_FOUND"], read
            for mutation, extra in (
                (START, {}),
                (PAUSE, {}),
                (RESUME, {}),
                (CANCEL, {}),
                (END, {"lat": 52.38, "lon": 4.9}),
            ):
                variables = {"bookingId": guess, "key": key(), **extra}
                body = await gql(api, mutation, variables, intruder)
                assert codes(body) == ["BOOKING_NOT_FOUND"], body
        # Nothing reached the operator on the intruder's behalf.
        assert not sim.requests_to("POST /legs/{id}/events")
        # The two answers for someone else's booking and for no booking read the same.
        mine = (await gql(api, BOOKING, {"id": booking["id"]}, intruder))["errors"][0]
        none = (await gql(api, BOOKING, {"id": str(uuid.uuid4())}, intruder))["errors"][0]
        assert mine["message"].split(" ")[0] == none["message"].split(" ")[0]
        assert (await gql(api, MY_BOOKINGS, {}, intruder))["data"]["myBookings"] == []
        anonymous = await gql(api, BOOKING, {"id": booking["id"]})
        assert codes(anonymous) == ["UNAUTHENTICATED"]
        still = await gql(api, BOOKING, {"id": booking["id"]}, owner)
        assert still["data"]["booking"]["state"] == "CONFIRMED"


# --- operators without a booking API -------------------------------------------------------


async def test_an_operator_without_a_booking_api_answers_with_its_deep_links(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    uris = {
        "android": "https://example.org/app/android?v=s1",
        "ios": "https://example.org/app/ios?v=s1",
        "web": "https://example.org/ride/s1",
    }
    documents = synthetic_scooter_feeds(
        [scooter("s1", 52.52, 13.405, rental_uris=uris), scooter("s2", 52.521, 13.406)]
    )
    await add_provider(runtime, "plain", serve_documents(server, base_url, "plain", documents))
    assert (await runtime.sync.sync("plain")).ok
    token, _ = await sign_up(api)
    body = await gql(api, RESERVE, {"vehicleId": "plain:s1", "key": key()}, token)
    result = body["data"]["reserveVehicle"]
    assert result["__typename"] == "ExternalBooking", result
    assert (result["androidUri"], result["iosUri"], result["webUri"]) == (
        uris["android"],
        uris["ios"],
        uris["web"],
    )
    assert result["providerName"] == "plain"
    # Nothing is booked here: the vehicle stays in search for everyone.
    assert await _active_bookings(runtime, "plain:s1") == 0
    assert "plain:s1" in await visible_ids(api, token, 52.52, 13.405)
    unknown = await gql(api, RESERVE, {"vehicleId": "plain:nope", "key": key()}, token)
    assert unknown["data"]["reserveVehicle"]["reason"] == "NOT_FOUND"
