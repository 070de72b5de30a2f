"""One rider may hold at most MOBILITY_MAX_ACTIVE_BOOKINGS_PER_RIDER active bookings, whoever
books them (the rider, or a booker of the rider's organisation), even when the reservations
race: one account cannot hoard a fleet."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text

from app.runtime import Runtime
from tests.booking_support import CANCEL, RESERVE, bookable_operator, gql, key, sign_up
from tests.graphql.test_fleet_booking import RESERVE_FOR, Org

RESERVE_LIMIT = RESERVE.replace(
    "__typename", "__typename ... on TooManyActiveBookings { code limit }", 1
)


async def _active(runtime: Runtime) -> int:
    query = "SELECT count(*) FROM bookings WHERE state IN (:a, :b, :c, :d)"
    states = {"a": "PENDING", "b": "CONFIRMED", "c": "STARTED", "d": "PAUSED"}
    async with runtime.sessions() as session:
        return int((await session.execute(text(query), states)).scalar_one())


async def test_the_next_reservation_past_the_limit_is_refused_until_one_ends(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    limit = runtime.settings.max_active_bookings_per_rider
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        rider, _ = await sign_up(api)
        vehicles = [f"simscoot:{v.vehicle_id}" for v in sim.vehicles[: limit + 2]]
        results = [
            (await gql(api, RESERVE_LIMIT, {"vehicleId": v, "key": key()}, rider))["data"][
                "reserveVehicle"
            ]
            for v in vehicles[: limit + 1]
        ]
        assert [r["__typename"] for r in results] == ["BookingSuccess"] * limit + [
            "TooManyActiveBookings"
        ]
        assert (results[-1]["code"], results[-1]["limit"]) == ("TOO_MANY_ACTIVE_BOOKINGS", limit)
        assert len(sim.bookings_view()) == limit  # the refused one never reached the operator
        # Another rider is not affected.
        other, _ = await sign_up(api)
        theirs = await gql(api, RESERVE_LIMIT, {"vehicleId": vehicles[limit], "key": key()}, other)
        assert theirs["data"]["reserveVehicle"]["__typename"] == "BookingSuccess"
        # Once one ends, the rider may book again.
        first = results[0]["booking"]["id"]
        await gql(api, CANCEL, {"bookingId": first, "key": key()}, rider)
        again = await gql(
            api, RESERVE_LIMIT, {"vehicleId": vehicles[limit + 1], "key": key()}, rider
        )
        assert again["data"]["reserveVehicle"]["__typename"] == "BookingSuccess"


async def test_racing_reservations_of_one_rider_stop_at_the_limit(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    limit = runtime.settings.max_active_bookings_per_rider
    async with bookable_operator(runtime, "simscoot", vehicles=12) as (sim, _):
        rider, _ = await sign_up(api)
        bodies = await asyncio.gather(
            *(
                gql(
                    api,
                    RESERVE_LIMIT,
                    {"vehicleId": f"simscoot:{v.vehicle_id}", "key": key()},
                    rider,
                )
                for v in sim.vehicles[:10]
            )
        )
        kinds = sorted(b["data"]["reserveVehicle"]["__typename"] for b in bodies)
        assert kinds == ["BookingSuccess"] * limit + ["TooManyActiveBookings"] * (10 - limit)
        assert await _active(runtime) == limit


async def test_bookings_made_for_a_member_count_against_the_member(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    limit = runtime.settings.max_active_bookings_per_rider
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        org = await Org.build(api, "Acme")
        vehicles = [f"simscoot:{v.vehicle_id}" for v in sim.vehicles[: limit + 1]]
        for vehicle_id in vehicles[:limit]:
            body = await gql(
                api,
                RESERVE_FOR,
                {"v": vehicle_id, "k": key(), "org": org.id, "member": org.rider_member},
                org.booker,
            )
            assert body["data"]["reserveVehicle"]["__typename"] == "BookingSuccess", body
        # The member's own reservation is the one too many.
        own = await gql(api, RESERVE_LIMIT, {"vehicleId": vehicles[limit], "key": key()}, org.rider)
        assert own["data"]["reserveVehicle"]["__typename"] == "TooManyActiveBookings"
