"""The Redis index's bulk writes and delta messages, against the real Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from app.runtime import Runtime
from app.vehicle_index import VehicleDelta, VehicleDoc, VehicleIndex
from tests.helpers import close_pubsub, member_names


def _doc(n: int, *, form_factor: str = "scooter_standing", reserved: bool = False) -> VehicleDoc:
    return VehicleDoc(
        id=f"p:v{n}",
        provider_id="p",
        form_factor=form_factor,
        propulsion_type="electric",
        lat=52.5 + n * 1e-4,
        lon=13.4 + n * 1e-4,
        is_reserved=reserved,
        is_disabled=False,
        vehicle_type_id="p:t",
        pricing_plan_id=None,
        station_id=None,
        current_range_meters=1000.0 + n,
        current_fuel_percent=None,
        rental_uris={"android": None, "ios": None, "web": f"https://x/{n}"},
        last_reported=datetime(2026, 1, 1, 12, 0, n % 60, n, tzinfo=UTC),
    )


def test_document_encoding_round_trips_with_iso_timestamps() -> None:
    doc = _doc(7)
    decoded = VehicleDoc.decode(doc.encode())
    assert decoded._replace(last_reported=None) == doc._replace(last_reported=None)
    # Stored as isoformat() would write it, microseconds and offset included.
    assert decoded.last_reported == doc.reported_iso()
    assert decoded.reported_at() == doc.last_reported


async def test_apply_writes_every_key_across_batches(runtime: Runtime) -> None:
    index = runtime.index
    # More than one batch, two form factors, and unavailable vehicles that must stay out.
    docs = [
        _doc(n, form_factor="bicycle" if n % 3 else "car", reserved=n % 7 == 0) for n in range(4500)
    ]
    await index.apply("p", docs, ())
    keys = runtime.keys
    available = [d for d in docs if d.indexable]
    geo = member_names(await runtime.redis.zrange(keys.vehicle_geo, 0, -1))
    assert geo == {d.id for d in available}
    for form_factor in ("bicycle", "car"):
        members = await runtime.redis.zrange(keys.vehicle_geo_of(form_factor), 0, -1)
        assert member_names(members) == {d.id for d in available if d.form_factor == form_factor}
    stored = await index.documents([d.id for d in docs])
    assert stored == [VehicleDoc.decode(d.encode()) if d.indexable else None for d in docs]
    assert await runtime.redis.scard(keys.provider_members("p")) == len(available)

    # Now half of them leave: removed by id, or reserved (upserted as unavailable).
    gone = [d.id for d in available[::2]]
    reserved = [d._replace(is_reserved=True) for d in available[1::4]]
    await index.apply("p", reserved, gone)
    expected = {d.id for d in available} - set(gone) - {d.id for d in reserved}
    geo = member_names(await runtime.redis.zrange(keys.vehicle_geo, 0, -1))
    assert geo == expected
    assert await runtime.redis.hlen(keys.vehicle_docs) == len(expected)


async def test_apply_error_reply_is_raised_and_connection_not_reused(runtime: Runtime) -> None:
    # The docs hash key holding a string makes HSET fail on the server.
    await runtime.redis.set(runtime.keys.vehicle_docs, "not a hash")
    assert isinstance(runtime.redis, Redis)  # the suite runs on one server
    pool = runtime.redis.connection_pool
    released: list[Any] = []
    release = pool.release

    async def recording_release(connection: Any) -> None:
        released.append(connection)
        await release(connection)

    pool.release = recording_release  # type: ignore[method-assign]
    try:
        with pytest.raises(Exception, match="WRONGTYPE"):
            await runtime.index.apply("p", [_doc(1)], ())
    finally:
        pool.release = release  # type: ignore[method-assign]
    # The connection that saw the error (replies still unread behind it) was closed before it
    # went back to the pool, so nobody can read those replies as their own.
    assert len(released) == 1 and not released[0].is_connected
    await runtime.redis.delete(runtime.keys.vehicle_docs)
    assert await runtime.redis.ping() is True
    await runtime.index.apply("p", [_doc(2)], ())
    assert await runtime.index.documents(["p:v2"]) != [None]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 500])
async def test_delta_batches_keep_every_change_in_order(runtime: Runtime, batch_size: int) -> None:
    created = [_doc(n) for n in range(3)]
    updated = [_doc(n) for n in range(10, 12)]
    removed = ["p:v20", "p:v21"]
    # Expected batches, built item by item: the concatenation cut every batch_size items.
    items = (
        [("created", d.id) for d in created]
        + [("updated", d.id) for d in updated]
        + [("removed", r) for r in removed]
    )
    expected = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]

    pubsub = runtime.redis.pubsub()
    await pubsub.subscribe(runtime.keys.vehicle_deltas)
    while await pubsub.get_message(timeout=1.0) is None:
        pass
    sent = await VehicleIndex(runtime.redis, runtime.keys).publish_delta(
        "p", created, updated, removed, batch_size=batch_size
    )
    got: list[VehicleDelta] = []
    for _ in range(100):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            got.append(VehicleDelta.decode(message["data"]))
        if len(got) == len(expected):
            break
        await asyncio.sleep(0)
    await close_pubsub(pubsub)

    assert sent == len(expected)
    assert [
        [("created", d.id) for d in m.created]
        + [("updated", d.id) for d in m.updated]
        + [("removed", r) for r in m.removed]
        for m in got
    ] == expected
    by_id = {d.id: d for m in got for d in (*m.created, *m.updated)}
    for doc in (*created, *updated):
        assert by_id[doc.id] == VehicleDoc.decode(doc.encode())
