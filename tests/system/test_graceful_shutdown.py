"""`mobility serve` stopped with SIGTERM under load (app/server.py, app/platform/shutdown.py):
/readyz turns 503 while it drains, subscriptions are closed with 1001, every request started
before the signal gets its answer, reservations in flight at a slow operator are settled (never
left PENDING), and the process exits 0. Real processes, a real TOMP operator over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text

from app.platform.shutdown import GOING_AWAY
from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.booking_support import RESERVE, bookable_operator, gql, key, sign_up
from tests.helpers import synced_conformance_provider
from tests.processes import free_port, mobility_process, wait_for

# Bounds for waiting on the process, generous next to the settings below: the test checks what
# the server does, not how fast it does it.
WITHIN_SECONDS = 30.0
COMMIT = "POST /bookings/{id}/events"
# The operator's booking calls may take this long in these processes (the suite's default of
# 2 s is shorter than the operator's delay below).
SLOW_OPERATOR_ENV = {
    "MOBILITY_BOOKING_HTTP_TIMEOUT_SECONDS": "15",
    "MOBILITY_BOOKING_DEADLINE_SECONDS": "20",
}
VEHICLES_NEAR = """
subscription S($lat: Float!, $lon: Float!) {
  vehicleUpdates(near: {lat: $lat, lon: $lon, radiusMeters: 5000}) { kind }
}"""
SEARCH = """
query V($lat: Float!, $lon: Float!) {
  vehicles(near: {lat: $lat, lon: $lon, radiusMeters: 5000}, first: 50) { id }
}"""


async def _booking_states(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        rows = await session.execute(text("SELECT state FROM bookings ORDER BY state"))
        return [str(r.state) for r in rows]


async def _up(base_url: str, log: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:

        async def ready() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await client.get("/readyz")).status_code == 200
            return False

        await wait_for(ready, 60, "the API process to be ready", [log])


@contextlib.asynccontextmanager
async def _subscribed(base_url: str, lat: float, lon: float) -> AsyncIterator[Any]:
    url = base_url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(
        url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": VEHICLES_NEAR, "variables": {"lat": lat, "lon": lon}},
                }
            )
        )
        first = json.loads(await ws.recv())
        assert first["type"] == "next", first
        assert first["payload"]["data"]["vehicleUpdates"]["kind"] == "SNAPSHOT", first
        yield ws


async def _close_code(ws: Any) -> int | None:
    """Read until the server closes the socket; its close code."""
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(WITHIN_SECONDS):
            while True:
                await ws.recv()
    return ws.close_code  # type: ignore[no-any-return]


@dataclass
class Load:
    """Searches sent back to back by a few clients until stopped; each one's outcome, and
    whether it started before the signal."""

    base_url: str
    variables: dict[str, float]
    signalled: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)

    async def client(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=WITHIN_SECONDS) as http:
            while not self.stop.is_set():
                started_before = not self.signalled.is_set()
                try:
                    response = await http.post(
                        "/graphql", json={"query": SEARCH, "variables": self.variables}
                    )
                    body = response.json()
                    ok = response.status_code == 200 and "errors" not in body
                    outcome = "ok" if ok else f"{response.status_code} {body}"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                (self.before if started_before else self.after).append(outcome)
                if not started_before and outcome != "ok":
                    return  # the server stopped accepting: nothing more to learn
                await asyncio.sleep(0.01)


def _exit_code(proc: subprocess.Popen[bytes]) -> int:
    return proc.wait(timeout=WITHIN_SECONDS)


async def test_sigterm_under_load_drains_and_settles_everything(
    runtime: Runtime, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with bookable_operator(runtime, "simscoot", injects_faults=True) as (sim, _):
        riders = [(await sign_up(api))[0] for _ in range(3)]
        targets = sim.vehicles[:3]
        # Each reservation's COMMIT takes 3 s at the operator: the signal comes while our
        # bookings are PENDING and the operator has not answered.
        sim.inject_fault(COMMIT, "delay", times=3, delay_seconds=3.0)
        port = free_port()
        log = tmp_path / "api.log"
        base_url = f"http://127.0.0.1:{port}"
        with mobility_process(
            ["serve", "--port", str(port), "--no-sync"],
            runtime.settings,
            log,
            MOBILITY_SHUTDOWN_DRAIN_SECONDS="1",
            MOBILITY_SHUTDOWN_GRACE_SECONDS="20",
            **SLOW_OPERATOR_ENV,
        ) as proc:
            await _up(base_url, log)
            lat, lon = targets[0].lat, targets[0].lon
            async with (
                httpx.AsyncClient(base_url=base_url, timeout=WITHIN_SECONDS) as remote,
                _subscribed(base_url, lat, lon) as ws1,
                _subscribed(base_url, lat, lon) as ws2,
            ):
                load = Load(base_url, {"lat": lat, "lon": lon})
                clients = [asyncio.create_task(load.client()) for _ in range(4)]
                reserves = [
                    asyncio.create_task(
                        gql(
                            remote,
                            RESERVE,
                            {"vehicleId": f"simscoot:{v.vehicle_id}", "key": key()},
                            token,
                        )
                    )
                    for token, v in zip(riders, targets, strict=True)
                ]

                async def commits_at_operator() -> bool:
                    return len(sim.requests_to(COMMIT)) == len(reserves)

                await wait_for(commits_at_operator, WITHIN_SECONDS, "the COMMIT calls", [log])
                assert await _booking_states(runtime) == ["PENDING"] * 3
                load.signalled.set()
                os.kill(proc.pid, signal.SIGTERM)

                # Draining: still answering, but not ready any more.
                async def draining() -> bool:
                    response = await remote.get("/readyz")
                    return response.status_code == 503

                await wait_for(draining, WITHIN_SECONDS, "/readyz to say 503", [log])
                readyz = (await remote.get("/readyz")).json()
                assert readyz["status"] == "not_ready"
                assert readyz["checks"]["lifecycle"] == "shutting_down"
                assert readyz["checks"]["database"] == "ok"

                assert await _close_code(ws1) == GOING_AWAY
                assert await _close_code(ws2) == GOING_AWAY

                answers = await asyncio.gather(*reserves)
                exit_code = await asyncio.to_thread(_exit_code, proc)
                load.stop.set()
                await asyncio.gather(*clients)

        assert exit_code == 0, log.read_text()[-3000:]
        for answer in answers:
            result = answer["data"]["reserveVehicle"]
            assert result["__typename"] == "BookingSuccess", result
            assert result["booking"]["state"] == "CONFIRMED"
        assert await _booking_states(runtime) == ["CONFIRMED"] * 3
        # Every search sent before the signal was answered, and some were sent (the load ran).
        assert load.before, "the load sent nothing before the signal"
        assert set(load.before) == {"ok"}, load.before
        # While it drained, the server still answered.
        assert "ok" in load.after, load.after


async def test_a_reservation_outliving_the_grace_is_still_settled(
    runtime: Runtime, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The operator answers after the grace has run out and uvicorn has cancelled the request:
    the reservation runs on to its end, and the process exits only then."""
    async with bookable_operator(runtime, "simscoot", injects_faults=True) as (sim, _):
        token, _ = await sign_up(api)
        target = sim.vehicles[0]
        sim.inject_fault(COMMIT, "delay", delay_seconds=5.0)
        port = free_port()
        log = tmp_path / "api.log"
        base_url = f"http://127.0.0.1:{port}"
        with mobility_process(
            ["serve", "--port", str(port), "--no-sync"],
            runtime.settings,
            log,
            MOBILITY_SHUTDOWN_GRACE_SECONDS="1",
            **SLOW_OPERATOR_ENV,
        ) as proc:
            await _up(base_url, log)
            async with httpx.AsyncClient(base_url=base_url, timeout=WITHIN_SECONDS) as remote:
                reserve = asyncio.create_task(
                    remote.post(
                        "/graphql",
                        json={
                            "query": RESERVE,
                            "variables": {
                                "vehicleId": f"simscoot:{target.vehicle_id}",
                                "key": key(),
                            },
                        },
                        headers={"Authorization": f"Bearer {token}"},
                    )
                )

                async def commit_at_operator() -> bool:
                    return len(sim.requests_to(COMMIT)) == 1

                await wait_for(commit_at_operator, WITHIN_SECONDS, "the COMMIT call", [log])
                os.kill(proc.pid, signal.SIGTERM)
                exit_code = await asyncio.to_thread(_exit_code, proc)
                # The request itself was cancelled with the grace: the client is told to
                # retry (with its idempotency key, it would get this very booking).
                response = await reserve
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "SHUTTING_DOWN"
                assert response.headers["retry-after"] == "1"

        assert exit_code == 0, log.read_text()[-3000:]
        assert await _booking_states(runtime) == ["CONFIRMED"]
        assert {b["state"] for b in sim.bookings_view()} == {"CONFIRMED"}


@pytest.mark.parametrize("whole_group", [False, True], ids=["supervisor", "process-group"])
async def test_every_worker_of_serve_workers_shuts_down_gracefully(
    runtime: Runtime, feed_server: tuple[FeedServer, str], tmp_path: Path, whole_group: bool
) -> None:
    """``mobility serve --workers 2``: SIGTERM to the supervisor (a process manager's stop)
    or to the whole process group (systemd's default, Ctrl-C in a terminal: each worker then
    gets it twice, once more from the supervisor) makes each worker drain as a single process
    does: WebSockets on either worker closed with 1001, searches started before the signal
    answered, and the whole process group gone within the bound."""
    await synced_conformance_provider(runtime, feed_server, "getaround-stavanger")
    lat, lon = 58.97, 5.73
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "api.log"
    with mobility_process(
        ["serve", "--port", str(port), "--no-sync", "--workers", "2"],
        runtime.settings,
        log,
        MOBILITY_SHUTDOWN_DRAIN_SECONDS="1",
    ) as proc:
        await _up(base_url, log)
        async with contextlib.AsyncExitStack() as stack:
            # Sockets on new connections: with two workers accepting, both get some.
            sockets = [
                await stack.enter_async_context(_subscribed(base_url, lat, lon)) for _ in range(6)
            ]
            load = Load(base_url, {"lat": lat, "lon": lon})
            clients = [asyncio.create_task(load.client()) for _ in range(3)]
            await asyncio.sleep(0.5)
            load.signalled.set()
            if whole_group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                os.kill(proc.pid, signal.SIGTERM)
            codes = await asyncio.gather(*(_close_code(ws) for ws in sockets))
            load.stop.set()
            await asyncio.gather(*clients)
        assert codes == [GOING_AWAY] * len(sockets)
        assert load.before and set(load.before) == {"ok"}, load.before
        assert await asyncio.to_thread(_exit_code, proc) == 0
    workers = [line for line in log.read_text().splitlines() if "shutting down: draining" in line]
    # Each worker process drained (its own log line); no worker was killed instead.
    assert len(workers) == 2, log.read_text()[-3000:]
