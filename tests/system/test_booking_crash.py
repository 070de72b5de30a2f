"""A `mobility serve` process killed after the operator confirmed a reservation and before our
commit: the booking is left PENDING; reconciliation asks the operator and settles it, and the
rider's retry with the same idempotency key gets the booking."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.booking.maintenance import run_maintenance
from app.runtime import Runtime
from providers.simulators.tomp_server import TompSimulator
from tests.booking_support import (
    RESERVE,
    SharedClock,
    bookable_operator,
    clock_of,
    codes,
    gql,
    key,
    sign_up,
    visible_ids,
)
from tests.processes import free_port, kill_group, mobility_process, wait_for


async def _booking_rows(runtime: Runtime) -> list[tuple[str, str | None]]:
    async with runtime.sessions() as session:
        rows = await session.execute(text("SELECT state, operator_booking_id FROM bookings"))
        return [(r.state, r.operator_booking_id) for r in rows]


async def _killed_during_reserve(
    runtime: Runtime,
    sim: TompSimulator,
    token: str,
    vehicle_id: str,
    request_key: str,
    tmp_path: Path,
    *,
    lost_answer: str = "POST /bookings/{id}/events",
    operator_state: str = "CONFIRMED",
) -> None:
    """A `mobility serve` reserves ``vehicle_id``; the operator's answer to ``lost_answer``
    never comes back (our process waits on it), and the process is SIGKILLed once the
    operator's booking is in ``operator_state``: ours is left PENDING. By default the
    operator has committed (the answer to COMMIT is lost)."""
    sim.inject_fault(lost_answer, "lose_response")
    port = free_port()
    log = tmp_path / "api.log"
    with mobility_process(
        ["serve", "--port", str(port), "--no-sync"], runtime.settings, log
    ) as proc:
        api_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as remote:

            async def up() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await remote.get("/health")).status_code == 200
                return False

            await wait_for(up, 60, "the API process", [log])
            pending = asyncio.create_task(
                gql(remote, RESERVE, {"vehicleId": vehicle_id, "key": request_key}, token)
            )

            async def reached_at_operator() -> bool:
                return any(b["state"] == operator_state for b in sim.bookings_view())

            await wait_for(reached_at_operator, 30, f"the operator's {operator_state}", [log])
            kill_group(proc)  # SIGKILL: no clean-up of any kind
            results = await asyncio.gather(pending, return_exceptions=True)
            assert isinstance(results[0], BaseException), results


@pytest.mark.parametrize(
    "retry_after_the_lock_lapsed",
    [False, True],
    ids=["reconciled-first", "retried-after-the-key-lock-lapsed"],
)
async def test_process_killed_between_operator_call_and_commit_is_reconciled(
    runtime: Runtime, api: httpx.AsyncClient, tmp_path: Path, retry_after_the_lock_lapsed: bool
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        token, _ = await sign_up(api)
        target = sim.vehicles[0]
        vehicle_id = f"simscoot:{target.vehicle_id}"
        request_key = key()
        await _killed_during_reserve(runtime, sim, token, vehicle_id, request_key, tmp_path)

        [(state, reference)] = await _booking_rows(runtime)
        assert state == "PENDING"
        assert reference is not None, "the operator's reference was stored before the commit"
        # The rider's retry meanwhile: that request is still in flight, as far as we know.
        busy = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": request_key}, token)
        assert codes(busy) == ["IDEMPOTENCY_KEY_IN_PROGRESS"]

        clock = SharedClock(sim)
        async with clock_of(runtime, clock):
            early = await run_maintenance(runtime.bookings)
            assert early.reconciled == {}, "a PENDING booking this young may still be running"
            if retry_after_the_lock_lapsed:
                # Maintenance was late: the dead request's key lock lapsed first and the retry
                # takes the key over. It finds the booking its first attempt made, not "someone
                # else has this vehicle", and says it is still being settled.
                clock.advance(runtime.settings.booking_deadline_seconds * 3 + 31)
                again = await gql(
                    api, RESERVE, {"vehicleId": vehicle_id, "key": request_key}, token
                )
                assert codes(again) == ["IDEMPOTENCY_KEY_IN_PROGRESS"], again
            clock.advance(runtime.settings.booking_reconcile_after_seconds + 1)
            report = await run_maintenance(runtime.bookings)
        assert list(report.reconciled.values()) == ["CONFIRMED"]
        assert await _booking_rows(runtime) == [("CONFIRMED", reference)]
        # The retry now gets the booking the operator holds, and nothing new is created there.
        answer = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": request_key}, token)
        result = answer["data"]["reserveVehicle"]
        assert result["__typename"] == "BookingSuccess", result
        assert result["booking"]["state"] == "CONFIRMED"
        assert len(sim.bookings_view()) == 1
        assert vehicle_id not in await visible_ids(api, token, target.lat, target.lon)


async def test_a_pending_booking_the_operator_never_committed_is_failed_and_released(
    runtime: Runtime, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        token, _ = await sign_up(api)
        target = sim.vehicles[1]
        vehicle_id = f"simscoot:{target.vehicle_id}"
        # Killed while the operator was still creating the booking (before COMMIT).
        await _killed_during_reserve(
            runtime,
            sim,
            token,
            vehicle_id,
            key(),
            tmp_path,
            lost_answer="POST /bookings",
            operator_state="PENDING",
        )

        clock = SharedClock(sim)
        async with clock_of(runtime, clock):
            clock.advance(runtime.settings.booking_reconcile_after_seconds + 1)
            report = await run_maintenance(runtime.bookings)
        assert list(report.reconciled.values()) == ["FAILED"]
        # Let go at the operator first, then here: the vehicle is bookable again.
        assert {b["state"] for b in sim.bookings_view()} == {"CANCELLED"}
        assert vehicle_id in await visible_ids(api, token, target.lat, target.lon)


async def test_the_scheduler_process_reconciles_on_its_own(
    runtime: Runtime, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    """No test hook: the upkeep loop of a `mobility scheduler` process (what multi-process
    deployments run) finds the dead request's booking and settles it by asking the operator."""
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        token, _ = await sign_up(api)
        target = sim.vehicles[2]
        vehicle_id = f"simscoot:{target.vehicle_id}"
        request_key = key()
        await _killed_during_reserve(runtime, sim, token, vehicle_id, request_key, tmp_path)
        [(state, reference)] = await _booking_rows(runtime)
        assert state == "PENDING"

        log = tmp_path / "scheduler.log"
        with mobility_process(
            ["scheduler"],
            runtime.settings,
            log,
            MOBILITY_BOOKING_MAINTENANCE_INTERVAL_SECONDS="0.5",
            MOBILITY_BOOKING_RECONCILE_AFTER_SECONDS="1",
        ):

            async def settled() -> bool:
                return await _booking_rows(runtime) == [("CONFIRMED", reference)]

            await wait_for(settled, 60, "reconciliation by the scheduler", [log])
        answer = await gql(api, RESERVE, {"vehicleId": vehicle_id, "key": request_key}, token)
        result = answer["data"]["reserveVehicle"]
        assert result["__typename"] == "BookingSuccess", result
        assert result["booking"]["state"] == "CONFIRMED"
        assert len(sim.bookings_view()) == 1
