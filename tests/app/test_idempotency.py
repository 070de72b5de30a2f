"""Idempotency keys against real PostgreSQL: claim, replay, reuse, in progress, take-over."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from app.booking import idempotency as idem
from app.booking import outcomes as out
from app.platform.db import transaction
from app.platform.errors import InvalidInput
from app.runtime import Runtime

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def _claim(
    runtime: Runtime, key: str, payload: dict[str, object], now: datetime = T0
) -> idem.Claimed | idem.Replay:
    return await idem.claim(
        runtime.sessions,
        owner="user:a",
        key=key,
        operation="reserveVehicle",
        payload=payload,
        now=now,
        lock_seconds=60,
        ttl_seconds=3600,
    )


async def test_first_claim_then_replay_of_the_stored_answer(runtime: Runtime) -> None:
    first = await _claim(runtime, "key-00000001", {"vehicleId": "p:1"})
    assert isinstance(first, idem.Claimed)
    answer = out.VehicleUnavailable("p:1", "RESERVED", "taken")
    async with transaction(runtime.sessions) as session:
        await idem.complete(session, first, out.to_json(answer))
    again = await _claim(runtime, "key-00000001", {"vehicleId": "p:1"})
    assert isinstance(again, idem.Replay)
    assert out.from_json(again.response) == answer


async def test_same_key_other_payload_is_reused(runtime: Runtime) -> None:
    await _claim(runtime, "key-00000002", {"vehicleId": "p:1"})
    with pytest.raises(idem.IdempotencyKeyReused) as caught:
        await _claim(runtime, "key-00000002", {"vehicleId": "p:2"})
    assert caught.value.code == "IDEMPOTENCY_KEY_REUSED"


async def test_key_in_flight_is_in_progress_until_its_lock_lapses(runtime: Runtime) -> None:
    await _claim(runtime, "key-00000003", {"vehicleId": "p:1"})
    with pytest.raises(idem.IdempotencyKeyInProgress):
        await _claim(runtime, "key-00000003", {"vehicleId": "p:1"}, T0 + timedelta(seconds=59))
    # The first request died: past its lock, the retry takes the key over.
    taken = await _claim(runtime, "key-00000003", {"vehicleId": "p:1"}, T0 + timedelta(seconds=61))
    assert isinstance(taken, idem.Claimed)


async def test_released_key_runs_again(runtime: Runtime) -> None:
    first = await _claim(runtime, "key-00000004", {"vehicleId": "p:1"})
    assert isinstance(first, idem.Claimed)
    await idem.release(runtime.sessions, first)
    assert isinstance(await _claim(runtime, "key-00000004", {"vehicleId": "p:1"}), idem.Claimed)


async def test_an_orphaned_key_is_settled_by_maintenance(runtime: Runtime) -> None:
    dead = await _claim(runtime, "key-00000008", {"vehicleId": "p:1"})
    assert isinstance(dead, idem.Claimed)
    answer = out.VehicleUnavailable("p:1", "RESERVED", "taken")
    async with transaction(runtime.sessions) as session:
        settled = await idem.settle_orphan(
            session, dead, claimed_at=T0, response=out.to_json(answer)
        )
    assert settled
    replay = await _claim(runtime, "key-00000008", {"vehicleId": "p:1"}, T0 + timedelta(minutes=30))
    assert isinstance(replay, idem.Replay) and out.from_json(replay.response) == answer
    forgotten = await _claim(runtime, "key-00000009", {"vehicleId": "p:1"})
    assert isinstance(forgotten, idem.Claimed)
    async with transaction(runtime.sessions) as session:
        assert await idem.settle_orphan(session, forgotten, claimed_at=T0, response=None)
    assert isinstance(await _claim(runtime, "key-00000009", {"vehicleId": "p:1"}), idem.Claimed)


@pytest.mark.parametrize("response", [None, {"kind": "answer of the dead request"}])
async def test_a_key_taken_over_by_a_retry_is_left_to_the_retry(
    runtime: Runtime, response: dict[str, str] | None
) -> None:
    key = "key-00000010" if response is None else "key-00000011"
    dead = await _claim(runtime, key, {"vehicleId": "p:1"})
    assert isinstance(dead, idem.Claimed)
    # The dead request's lock lapsed and the rider's retry took the key over; it is running.
    retry = await _claim(runtime, key, {"vehicleId": "p:1"}, T0 + timedelta(seconds=61))
    assert isinstance(retry, idem.Claimed)
    async with transaction(runtime.sessions) as session:
        settled = await idem.settle_orphan(session, dead, claimed_at=T0, response=response)
    assert not settled
    # Still the retry's: a third request is told it is in progress, and nothing was replayed.
    with pytest.raises(idem.IdempotencyKeyInProgress):
        await _claim(runtime, key, {"vehicleId": "p:1"}, T0 + timedelta(seconds=62))


async def test_keys_are_scoped_to_their_owner(runtime: Runtime) -> None:
    await _claim(runtime, "key-00000005", {"vehicleId": "p:1"})
    other = await idem.claim(
        runtime.sessions,
        owner="user:b",
        key="key-00000005",
        operation="reserveVehicle",
        payload={"vehicleId": "p:2"},
        now=T0,
        lock_seconds=60,
        ttl_seconds=3600,
    )
    assert isinstance(other, idem.Claimed)


async def test_concurrent_claims_of_one_key_one_wins(runtime: Runtime) -> None:
    results = await asyncio.gather(
        *(_claim(runtime, "key-00000006", {"vehicleId": "p:1"}) for _ in range(10)),
        return_exceptions=True,
    )
    claimed = [r for r in results if isinstance(r, idem.Claimed)]
    busy = [r for r in results if isinstance(r, idem.IdempotencyKeyInProgress)]
    assert len(claimed) == 1
    assert len(busy) == 9


async def test_expired_keys_are_forgotten(runtime: Runtime) -> None:
    await _claim(runtime, "key-00000007", {"vehicleId": "p:1"})
    async with transaction(runtime.sessions) as session:
        assert await idem.forget_expired(session, T0 + timedelta(seconds=3599)) == 0
    async with transaction(runtime.sessions) as session:
        assert await idem.forget_expired(session, T0 + timedelta(seconds=3600)) == 1


@pytest.mark.parametrize("key", ["short", "x" * 201, "has space in it", "ünïcode-key"])
async def test_malformed_keys_are_refused(runtime: Runtime, key: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await _claim(runtime, key, {})
    assert caught.value.code == "INVALID_IDEMPOTENCY_KEY"


def test_every_outcome_round_trips_through_json() -> None:
    import uuid

    samples: list[out.Outcome] = [
        out.BookingDone(uuid.uuid4()),
        out.VehicleUnavailable("p:1", "BOOKED", "m"),
        out.NotEligible("car", (("LICENCE_REQUIRED", "a"), ("TOO_YOUNG", "b")), "a; b"),
        out.OperatorRejected("p", "3004", "no"),
        out.OperatorUnavailable("p", 2.5, "down"),
        out.RideEndNotAllowed("p:zone-1", "Harbour", "not here"),
        out.BookingFailed(uuid.uuid4(), "failed"),
        out.ExternalBooking("p:1", "p", "P", "a://", None, "https://p", "m"),
    ]
    for sample in samples:
        assert out.from_json(out.to_json(sample)) == sample
