"""Redis stopped: requests are still served (rate limits fail open) and bookings stay correct,
PostgreSQL deciding: one booking per vehicle, the vehicle out of search (answered from PostGIS),
the idempotent replay."""

from __future__ import annotations

import asyncio

import httpx

from app.main import create_app
from app.runtime import Runtime, open_runtime
from tests.booking_support import RESERVE, bookable_operator, gql, key, sign_up, visible_ids
from tests.conftest import make_settings


async def test_bookings_stay_correct_with_redis_down(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        # The same database; a Redis address where nothing listens.
        settings = make_settings(redis_url="redis://127.0.0.1:1/0")
        async with open_runtime(settings) as down:
            app = create_app(settings)
            app.state.runtime = down
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api"
            ) as client:
                riders = [(await sign_up(client))[0] for _ in range(5)]
                target = sim.vehicles[0]
                vehicle_id = f"simscoot:{target.vehicle_id}"
                assert vehicle_id in await visible_ids(client, riders[0], target.lat, target.lon)
                keys = [key() for _ in riders]
                bodies = await asyncio.gather(
                    *(
                        gql(client, RESERVE, {"vehicleId": vehicle_id, "key": k}, token)
                        for token, k in zip(riders, keys, strict=True)
                    )
                )
                kinds = [b["data"]["reserveVehicle"]["__typename"] for b in bodies]
                assert kinds.count("BookingSuccess") == 1, kinds
                winner = kinds.index("BookingSuccess")
                loser = (winner + 1) % len(riders)
                assert vehicle_id not in await visible_ids(
                    client, riders[loser], target.lat, target.lon
                )
                # The winner's retry replays its answer (idempotency lives in PostgreSQL).
                again = await gql(
                    client, RESERVE, {"vehicleId": vehicle_id, "key": keys[winner]}, riders[winner]
                )
                assert again == bodies[winner]
        assert len(sim.requests_to("POST /bookings")) == 1
