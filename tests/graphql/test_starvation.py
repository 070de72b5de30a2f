"""Expensive anonymous requests cannot starve the database pool (issue 16, the most severe
find): a cost budget per request, one lane per request (root fields one after another, at most
one connection each), and an admission gate for expensive fields per process. Expected values
here are orderings and counts, not timings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from app.runtime import Runtime
from tests.graphql.test_quotes_api import DESTINATION, ORIGIN, TRIP_OPTIONS, fleet, gql, point

__all__ = ["fleet"]  # the quotes tests' synced fleet, as a fixture here too


def _trip(alias: str) -> str:
    (lat, lon), (tlat, tlon) = ORIGIN, DESTINATION
    return (
        f"{alias}: tripOptions(from: {{lat: {lat}, lon: {lon}}}, to: {{lat: {tlat}, lon: {tlon}}}, "
        "first: 2) { walkMinutes }"
    )


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_aliases_of_an_expensive_field_count_against_the_budget(
    api: httpx.AsyncClient, fleet: str
) -> None:
    three = await gql(api, "{ " + " ".join(_trip(f"t{i}") for i in range(3)) + " }")
    assert "errors" not in three and len(three["data"]) == 3
    four = await gql(api, "{ " + " ".join(_trip(f"t{i}") for i in range(4)) + " }")
    assert _codes(four) == ["QUERY_TOO_COSTLY"]
    # Fragments on the root count too.
    fragment = "fragment F on Query { " + " ".join(_trip(f"t{i}") for i in range(3)) + " }"
    hidden = await gql(api, "{ ...F " + _trip("extra") + " } " + fragment)
    assert _codes(hidden) == ["QUERY_TOO_COSTLY"]


class Concurrency:
    """Wraps an async method and records how many calls ran at once at most."""

    def __init__(self, delay: float = 0.0) -> None:
        self.running = 0
        self.peak = 0
        self.delay = delay

    def wrap(self, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await asyncio.sleep(self.delay)
                return await method(*args, **kwargs)
            finally:
                self.running -= 1

        return wrapped


async def test_one_request_runs_its_root_fields_one_at_a_time(
    runtime: Runtime, api: httpx.AsyncClient, fleet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = Concurrency(delay=0.02)
    monkeypatch.setattr(runtime.search, "stations", probe.wrap(runtime.search.stations))
    aliases = " ".join(
        f"s{i}: stations(near: {{lat: {ORIGIN[0]}, lon: {ORIGIN[1]}, radiusMeters: 500}}) {{ id }}"
        for i in range(20)
    )
    body = await gql(api, "{ " + aliases + " }")
    assert "errors" not in body and len(body["data"]) == 20
    assert probe.peak == 1


async def test_a_burst_of_expensive_requests_never_starves_a_cheap_one(
    runtime: Runtime, api: httpx.AsyncClient, fleet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each expensive search is made slow, so the burst is still running when the cheap query
    # comes: it must be answered without waiting for the burst.
    searches = Concurrency(delay=0.25)
    monkeypatch.setattr(runtime.search, "vehicles", searches.wrap(runtime.search.vehicles))
    pool: Any = runtime.engine.pool
    peak_connections = 0
    finished: list[str] = []

    async def expensive(i: int) -> dict[str, Any]:
        body = await gql(
            api,
            TRIP_OPTIONS,
            **{"from": point(ORIGIN)},
            to=point(DESTINATION),
            first=5,
            rank="TOTAL_PRICE",
        )
        finished.append(f"expensive-{i}")
        return body

    async def cheap() -> dict[str, Any]:
        await asyncio.sleep(0.1)  # the burst has started
        body = await gql(api, "{ providers { id } }")
        finished.append("cheap")
        return body

    async def watch(stop: asyncio.Event) -> None:
        nonlocal peak_connections
        while not stop.is_set():
            peak_connections = max(peak_connections, pool.checkedout())
            await asyncio.sleep(0.005)

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(stop))
    burst = 30
    results = await asyncio.gather(*(expensive(i) for i in range(burst)), cheap())
    stop.set()
    await watcher

    assert all("errors" not in r for r in results), [r for r in results if "errors" in r][:1]
    gate = runtime.settings.max_concurrent_costly_operations
    assert searches.peak == gate  # the rest waited their turn
    # The cheap query was answered while most of the burst still waited for the gate.
    assert finished.index("cheap") < burst - gate, finished
    # Never more connections than the gate's operations and the cheap query use.
    assert peak_connections <= gate + 2, peak_connections


class PoolPeak:
    """The most connections of the runtime's pool checked out at once while open, counted
    exactly from the pool's own checkout and checkin events."""

    def __init__(self, runtime: Runtime) -> None:
        self.pool = runtime.engine.sync_engine.pool
        self.out = 0
        self.peak = 0

    def _checkout(self, *_: Any) -> None:
        self.out += 1
        self.peak = max(self.peak, self.out)

    def _checkin(self, *_: Any) -> None:
        self.out -= 1

    def __enter__(self) -> PoolPeak:
        from sqlalchemy import event

        event.listen(self.pool, "checkout", self._checkout)
        event.listen(self.pool, "checkin", self._checkin)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self.pool, "checkout", self._checkout)
        event.remove(self.pool, "checkin", self._checkin)


async def test_a_list_field_that_reads_the_database_takes_one_connection_not_one_per_item(
    runtime: Runtime, api: httpx.AsyncClient, fleet: str
) -> None:
    # graphql-core resolves a list's items concurrently: a field that opened its own session
    # per item (Provider.validation did) took one connection per vehicle at once, so one
    # anonymous request of 200 vehicles could drain the pool.
    near = f"near: {{lat: {ORIGIN[0]}, lon: {ORIGIN[1]}, radiusMeters: 3000}}"
    with PoolPeak(runtime) as pool:
        body = await gql(
            api,
            "{ vehicles(" + near + ", first: 200) "
            "{ id provider { id validation { syncStatus } health { status } } } }",
        )
    assert "errors" not in body, body
    vehicles = body["data"]["vehicles"]
    assert len(vehicles) > 5  # a list, not one item
    async with runtime.sessions() as session:
        from sqlalchemy import text

        latest = await session.scalar(
            text(
                "SELECT status FROM sync_runs WHERE provider_id = :p AND status <> 'running' "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"p": fleet},
        )
    assert {v["provider"]["validation"]["syncStatus"] for v in vehicles} == {latest}
    assert pool.peak == 1


async def test_a_riders_bookings_read_their_events_in_one_connection(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    # Booking.events read one session per booking at once: myBookings(first: 100) took up to
    # 100 connections for one rider.
    from tests.booking_support import RESERVE, bookable_operator, key, sign_up
    from tests.booking_support import gql as booking_gql

    limit = runtime.settings.max_active_bookings_per_rider
    assert limit >= 2  # a list of bookings
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        rider, _ = await sign_up(api)
        for vehicle in sim.vehicles[:limit]:
            made = await booking_gql(
                api, RESERVE, {"vehicleId": f"simscoot:{vehicle.vehicle_id}", "key": key()}, rider
            )
            assert made["data"]["reserveVehicle"]["__typename"] == "BookingSuccess", made
        with PoolPeak(runtime) as pool:
            body = await booking_gql(
                api, "{ myBookings(first: 100) { id events { event toState } } }", None, rider
            )
    bookings = body["data"]["myBookings"]
    assert len(bookings) == limit
    async with runtime.sessions() as session:
        from sqlalchemy import text

        stored = await session.scalar(
            text("SELECT count(*) FROM booking_events WHERE booking_id::text = ANY(:ids)"),
            {"ids": [b["id"] for b in bookings]},
        )
    assert sum(len(b["events"]) for b in bookings) == stored
    assert pool.peak == 1
