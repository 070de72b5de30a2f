"""`bookingUpdates` over graphql-transport-ws: the owner sees each change as it happens; anyone
else is refused as if the booking did not exist."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from redis.asyncio import Redis

from app.live_updates import BOOKING_SIGNALS_CLIENT_NAME
from app.runtime import Runtime
from tests.booking_support import CANCEL, RESERVE, START, bookable_operator, gql, key, sign_up
from tests.graphql.test_subscriptions import Client, served

UPDATES = """
subscription U($id: ID!) { bookingUpdates(bookingId: $id) { id state } }"""


@asynccontextmanager
async def connect(
    base_url: str,
    token: str | None,
    *,
    init_payload: dict[str, Any] | None = None,
    acknowledged: bool = True,
) -> AsyncIterator[Client]:
    """``token`` goes in the Authorization header; ``init_payload`` in ``connection_init``."""
    url = base_url.replace("http://", "ws://") + "/graphql"
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with websockets.connect(
        url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers=headers,
    ) as ws:
        client = Client(ws)
        init: dict[str, Any] = {"type": "connection_init"}
        if init_payload is not None:
            init["payload"] = init_payload
        await ws.send(json.dumps(init))
        if acknowledged:
            assert (await client.receive())["type"] == "connection_ack"
        yield client


async def _subscribe(client: Client, booking_id: str) -> None:
    await client.ws.send(
        json.dumps(
            {
                "id": "b",
                "type": "subscribe",
                "payload": {"query": UPDATES, "variables": {"id": booking_id}},
            }
        )
    )


async def _state(client: Client) -> Any:
    message = await client.receive()
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    return message["payload"]["data"]["bookingUpdates"]["state"]


async def test_the_owner_follows_the_booking_and_nobody_else_can(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with (
        bookable_operator(runtime, "simscoot") as (sim, _),
        served(runtime) as base_url,
    ):
        owner, _ = await sign_up(api)
        intruder, _ = await sign_up(api)
        vehicle_id = f"simscoot:{sim.vehicles[0].vehicle_id}"
        reserved = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, owner)
        booking_id = reserved["data"]["reserveVehicle"]["booking"]["id"]

        async with connect(base_url, intruder) as spy:
            await _subscribe(spy, booking_id)
            refused = await spy.receive()
            # An error raised by the subscription itself comes as a result with errors only.
            assert refused["type"] == "next", refused
            assert refused["payload"]["data"] is None
            assert [e["extensions"]["code"] for e in refused["payload"]["errors"]] == [
                "BOOKING_NOT_FOUND"
            ]

        async with connect(base_url, owner) as client:
            await _subscribe(client, booking_id)
            assert await _state(client) == "CONFIRMED"
            started = await gql(api, START, {"bookingId": booking_id, "key": key()}, owner)
            assert started["data"]["startTrip"]["__typename"] == "BookingSuccess"
            # Pushed through Redis, well before the periodic re-check (30 s).
            async with asyncio.timeout(5):
                assert await _state(client) == "STARTED"


async def test_the_subscription_ends_when_the_booking_is_over(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with (
        bookable_operator(runtime, "simscoot") as (sim, _),
        served(runtime) as base_url,
    ):
        owner, _ = await sign_up(api)
        vehicle_id = f"simscoot:{sim.vehicles[1].vehicle_id}"
        reserved = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, owner)
        booking_id = reserved["data"]["reserveVehicle"]["booking"]["id"]
        async with connect(base_url, owner) as client:
            await _subscribe(client, booking_id)
            assert await _state(client) == "CONFIRMED"
            await gql(api, CANCEL, {"bookingId": booking_id, "key": key()}, owner)
            assert await _state(client) == "CANCELLED"
            assert (await client.receive())["type"] == "complete"


async def _signal_connections(runtime: Runtime) -> list[dict[str, Any]]:
    """The booking signals' pub/sub connections to this suite's Redis db."""
    assert isinstance(runtime.redis, Redis)  # the suite runs on one server
    db = str(runtime.redis.connection_pool.connection_kwargs.get("db", 0))
    return [
        c
        for c in await runtime.redis.client_list(_type="pubsub")
        if c.get("name") == BOOKING_SIGNALS_CLIENT_NAME and str(c.get("db")) == db
    ]


async def test_subscribers_share_one_redis_subscription_and_each_sees_only_its_booking(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with (
        bookable_operator(runtime, "simscoot") as (sim, _),
        served(runtime) as base_url,
    ):
        riders = [(await sign_up(api))[0] for _ in range(3)]
        bookings = []
        for rider, vehicle in zip(riders, sim.vehicles[2:5], strict=True):
            vehicle_id = f"simscoot:{vehicle.vehicle_id}"
            reserved = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, rider)
            bookings.append(reserved["data"]["reserveVehicle"]["booking"]["id"])
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(connect(base_url, rider)) for rider in riders
            ]
            for client, booking_id in zip(clients, bookings, strict=True):
                await _subscribe(client, booking_id)
                assert await _state(client) == "CONFIRMED"
            assert len(await _signal_connections(runtime)) == 1
            assert runtime.booking_signals.watch_count == 3

            started = await gql(api, START, {"bookingId": bookings[1], "key": key()}, riders[1])
            assert started["data"]["startTrip"]["__typename"] == "BookingSuccess"
            async with asyncio.timeout(5):
                assert await _state(clients[1]) == "STARTED"
            # The signal connection dies (Redis restarted, a network cut): it reconnects, and
            # every subscriber looks again, so a change published meanwhile is not lost.
            for info in await _signal_connections(runtime):
                await runtime.redis.client_kill_filter(_id=info["id"])
            await gql(api, CANCEL, {"bookingId": bookings[0], "key": key()}, riders[0])
            async with asyncio.timeout(10):
                assert await _state(clients[0]) == "CANCELLED"
            # The third booking did not change: its subscriber got nothing.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await clients[2].receive()
        await asyncio.sleep(0.1)
        assert runtime.booking_signals.watch_count == 0


async def test_credentials_in_connection_init_serve_as_the_header_does(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    """Browsers cannot set headers on a websocket: the token goes in connection_init."""
    async with (
        bookable_operator(runtime, "simscoot") as (sim, _),
        served(runtime) as base_url,
    ):
        owner, _ = await sign_up(api)
        intruder, _ = await sign_up(api)
        vehicle_id = f"simscoot:{sim.vehicles[5].vehicle_id}"
        reserved = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": key()}, owner)
        booking_id = reserved["data"]["reserveVehicle"]["booking"]["id"]

        async with connect(
            base_url, None, init_payload={"Authorization": f"Bearer {owner}"}
        ) as client:
            await _subscribe(client, booking_id)
            assert await _state(client) == "CONFIRMED"
        async with connect(
            base_url, None, init_payload={"authorization": f"Bearer {intruder}"}
        ) as spy:
            await _subscribe(spy, booking_id)
            refused = await spy.receive()
            assert [e["extensions"]["code"] for e in refused["payload"]["errors"]] == [
                "BOOKING_NOT_FOUND"
            ]
        # Without credentials at all: told to sign in.
        async with connect(base_url, None) as anonymous:
            await _subscribe(anonymous, booking_id)
            refused = await anonymous.receive()
            assert [e["extensions"]["code"] for e in refused["payload"]["errors"]] == [
                "UNAUTHENTICATED"
            ]
        # The same token in both places is fine.
        async with connect(
            base_url, owner, init_payload={"Authorization": f"Bearer {owner}"}
        ) as both:
            await _subscribe(both, booking_id)
            assert await _state(both) == "CONFIRMED"


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        (None, {"Authorization": 12345}),
        (None, {"Authorization": ""}),
        (None, {"Authorization": "Bearer x", "authorization": "Bearer y"}),
        ("owner", {"Authorization": "Bearer someone-else"}),
    ],
    ids=["not-a-string", "empty", "twice", "differs-from-the-header"],
)
async def test_malformed_connection_credentials_close_the_socket_as_forbidden(
    runtime: Runtime, api: httpx.AsyncClient, header: str | None, payload: dict[str, Any]
) -> None:
    async with served(runtime) as base_url:
        token = (await sign_up(api))[0] if header else None
        async with connect(base_url, token, init_payload=payload, acknowledged=False) as client:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await client.receive()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
