"""Push ingest end to end: signed HTTP requests to the real app, PostGIS, Redis and the channel."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import text

from adapters.base import AdapterConfigError
from adapters.push import PushAdapter
from app.platform.advisory_locks import INDEX_LOCK_SHARED
from app.platform.db import transaction
from app.platform.redis import create_redis
from app.runtime import Runtime
from app.vehicle_index import VehicleDelta, VehicleIndex
from providers import repository
from providers.push import (
    MAX_BODY_BYTES,
    MAX_SKEW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from providers.service import register_provider
from tests.helpers import close_pubsub, member_names

SLUG = "cars-cloud"
NOW = int(time.time())


def _v23(data: dict[str, Any]) -> dict[str, Any]:
    return {"last_updated": NOW, "ttl": 0, "version": "2.3", "data": data}


DOCUMENTS = {
    "system_information": _v23(
        {"system_id": SLUG, "language": "en", "name": "Cars Cloud", "timezone": "Europe/Berlin"}
    ),
    "vehicle_types": _v23(
        {
            "vehicle_types": [
                {
                    "vehicle_type_id": "id3",
                    "form_factor": "car",
                    "propulsion_type": "electric",
                    "max_range_meters": 400000,
                    "default_pricing_plan_id": "minute",
                },
                {
                    "vehicle_type_id": "kick",
                    "form_factor": "scooter",
                    "propulsion_type": "electric",
                    "max_range_meters": 40000,
                },
            ]
        }
    ),
    "system_pricing_plans": _v23(
        {
            "plans": [
                {
                    "plan_id": "minute",
                    "name": "Per minute",
                    "currency": "EUR",
                    "price": 1.0,
                    "is_taxable": True,
                    "description": "1 EUR to start, 0.30 EUR a minute",
                    "per_min_pricing": [{"start": 0, "rate": 0.3, "interval": 1}],
                },
                {
                    "plan_id": "day",
                    "name": "Day",
                    "currency": "EUR",
                    "price": 49.0,
                    "is_taxable": True,
                    "description": "one day",
                },
            ]
        }
    ),
}


async def _push_provider(runtime: Runtime, *, secret: bool = True) -> str | None:
    async with transaction(runtime.sessions) as session:
        await register_provider(
            session,
            slug=SLUG,
            name="Cars Cloud",
            adapter="push",
            config={"documents": DOCUMENTS},
        )
        provider = await repository.get(session, SLUG)
        assert provider is not None
        provider.ingest_secret = "whsec_test_secret" if secret else None
    report = await runtime.sync.sync(SLUG)
    assert report.ok, report.error
    runtime.reference.invalidate()
    return "whsec_test_secret" if secret else None


def _vehicle(vid: str, lat: float, lon: float, **extra: Any) -> dict[str, Any]:
    return {
        "vehicle_id": vid,
        "lat": lat,
        "lon": lon,
        "vehicle_type_id": "id3",
        "is_reserved": False,
        "is_disabled": False,
        "current_range_meters": 150000,
        "current_fuel_percent": 0.6,
        "last_reported": NOW - 10,
        **extra,
    }


async def _post(
    api: httpx.AsyncClient,
    body: bytes | dict[str, Any],
    *,
    secret: str = "whsec_test_secret",
    timestamp: int | None = None,
    provider: str = SLUG,
    signature: str | None = None,
    content_type: str = "application/json",
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": content_type,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: signature or sign(secret, ts, raw),
    }
    return await api.post(f"/ingest/{provider}/vehicles", content=raw, headers=headers)


async def _stored(runtime: Runtime) -> dict[str, tuple[float, float, str, str | None]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT external_id, ST_Y(geom), ST_X(geom), form_factor, pricing_plan_id "
                "FROM vehicles WHERE provider_id = :p"
            ),
            {"p": SLUG},
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


async def test_good_batch_reaches_postgis_redis_search_and_the_channel(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)
    pubsub = runtime.redis.pubsub()
    await pubsub.subscribe(runtime.keys.vehicle_deltas)
    while await pubsub.get_message(timeout=1.0) is None:
        pass

    batch = [
        _vehicle("car-1", 52.5200, 13.4050),
        _vehicle("car-2", 52.5210, 13.4060, pricing_plan_id="day"),
        _vehicle("kick-1", 52.5205, 13.4055, vehicle_type_id="kick", is_reserved=True),
    ]
    response = await _post(api, {"vehicles": batch})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["applied"], result["created"], result["updated"]) == (3, 3, 0)
    assert result["rejected"] == [] and result["ignored"] == [] and result["indexUpdated"]

    assert await _stored(runtime) == {
        "car-1": (52.5200, 13.4050, "car", f"{SLUG}:minute"),  # the type's default plan
        "car-2": (52.5210, 13.4060, "car", f"{SLUG}:day"),  # its own plan
        "kick-1": (52.5205, 13.4055, "scooter_standing", None),
    }
    # Search sees the available ones at once (the reserved scooter is not offered).
    query = (
        "{ vehicles(near: {lat: 52.5205, lon: 13.4055, radiusMeters: 500}) "
        "{ id formFactor currentRangeMeters } }"
    )
    answer = (await api.post("/graphql", json={"query": query})).json()
    assert sorted(v["id"] for v in answer["data"]["vehicles"]) == [
        f"{SLUG}:car-1",
        f"{SLUG}:car-2",
    ]
    # Subscribers got the delta.
    message = None
    for _ in range(50):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            break
    await close_pubsub(pubsub)
    assert message is not None
    delta = VehicleDelta.decode(message["data"])
    assert sorted(d.id for d in delta.created) == sorted(f"{SLUG}:{v['vehicle_id']}" for v in batch)

    # An incremental batch: one moves, one leaves; the others stay as they are.
    moved = _vehicle("car-1", 52.5300, 13.4100, last_reported=NOW - 5)
    response = await _post(api, {"vehicles": [moved], "removed": ["car-2"]})
    assert response.status_code == 200, response.text
    assert (response.json()["updated"], response.json()["removed"]) == (1, 1)
    stored = await _stored(runtime)
    assert set(stored) == {"car-1", "kick-1"}
    assert stored["car-1"][:2] == (52.5300, 13.4100)
    assert await runtime.redis.zscore(runtime.keys.vehicle_geo, f"{SLUG}:car-2") is None

    # The provider's own sync (reference data only) leaves pushed vehicles alone.
    report = await runtime.sync.sync(SLUG)
    assert report.ok and report.counts["vehicles"]["removed"] == 0
    assert set(await _stored(runtime)) == {"car-1", "kick-1"}


async def test_older_status_is_ignored_and_an_equal_replay_is_harmless(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)
    assert (await _post(api, {"vehicles": [_vehicle("car-1", 52.52, 13.40)]})).status_code == 200
    late = _vehicle("car-1", 52.60, 13.50, last_reported=NOW - 60)  # reported before
    response = await _post(api, {"vehicles": [late]})
    assert response.status_code == 200
    assert response.json()["applied"] == 0
    assert [(i["index"], i["code"]) for i in response.json()["ignored"]] == [(0, "STALE_STATUS")]
    assert (await _stored(runtime))["car-1"][:2] == (52.52, 13.40)
    # The same status again (a retry): applied, nothing changes.
    response = await _post(api, {"vehicles": [_vehicle("car-1", 52.52, 13.40)]})
    assert response.json()["updated"] == 1
    assert (await _stored(runtime))["car-1"][:2] == (52.52, 13.40)
    # Two statuses of one vehicle in one batch: the later wins, the other is reported.
    earlier = _vehicle("car-1", 52.53, 13.41, last_reported=NOW - 2)
    later = _vehicle("car-1", 52.54, 13.42, last_reported=NOW - 1)
    response = await _post(api, {"vehicles": [later, earlier]})
    assert response.json()["updated"] == 1
    assert [(i["index"], i["code"]) for i in response.json()["ignored"]] == [(1, "SUPERSEDED")]
    assert (await _stored(runtime))["car-1"][:2] == (52.54, 13.42)


async def test_some_invalid_records_apply_the_valid_ones_and_report_the_others(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)
    batch: list[Any] = [
        _vehicle("ok", 52.52, 13.40),
        _vehicle("far", 95.0, 13.40),
        _vehicle("typo", 52.52, 13.40, vehicle_type_id="tesla"),
        {k: v for k, v in _vehicle("half", 52.52, 13.40).items() if k != "is_reserved"},
        _vehicle("future", 52.52, 13.40, last_reported=NOW + 3600),
        _vehicle("plan", 52.52, 13.40, pricing_plan_id="weekly"),
        _vehicle("fuel", 52.52, 13.40, current_fuel_percent=1.5),
        _vehicle("flag", 52.52, 13.40, is_disabled="no"),
        "not an object",
    ]
    response = await _post(api, {"vehicles": batch, "removed": [""]})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["applied"] == 3
    assert [(r["index"], r["vehicleId"], r["code"]) for r in result["rejected"]] == [
        (1, "far", "COORDINATES_OUT_OF_RANGE"),
        (3, "half", "MISSING_FIELD"),
        (4, "future", "FUTURE_TIMESTAMP"),
        (6, "fuel", "INVALID_FIELD"),
        (7, "flag", "INVALID_FIELD"),
        (8, None, "INVALID_RECORD"),
        (None, None, "INVALID_FIELD"),
    ]
    # A type or plan the provider does not describe loses no vehicle: stored, with a warning.
    assert [(r["index"], r["vehicleId"], r["code"]) for r in result["warnings"]] == [
        (2, "typo", "UNKNOWN_VEHICLE_TYPE"),
        (5, "plan", "UNKNOWN_PRICING_PLAN"),
    ]
    assert "'tesla'" in result["warnings"][0]["message"]
    stored = await _stored(runtime)
    assert set(stored) == {"ok", "typo", "plan"}
    # The provider describes types, so an unknown one is `other`, not a guessed bicycle; the
    # unknown plan gives way to the type's default plan.
    assert stored["typo"][2:] == ("other", None)
    assert stored["plan"][2:] == ("car", f"{SLUG}:minute")
    async with runtime.sessions() as session:
        typo_type = await session.scalar(
            text("SELECT vehicle_type_id FROM vehicles WHERE id = :id"), {"id": f"{SLUG}:typo"}
        )
    assert typo_type == f"{SLUG}:tesla"

    # Nothing valid at all: 422, nothing written.
    response = await _post(api, {"vehicles": [_vehicle("x", 52.52, 200.0)]})
    assert response.status_code == 422
    assert set(await _stored(runtime)) == {"ok", "typo", "plan"}


async def _nothing_written(runtime: Runtime) -> None:
    assert await _stored(runtime) == {}
    assert await runtime.redis.zcard(runtime.keys.vehicle_geo) == 0


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("bad signature", 401, "BAD_SIGNATURE"),
        ("other secret", 401, "BAD_SIGNATURE"),
        ("stale timestamp", 401, "STALE_TIMESTAMP"),
        ("future timestamp", 401, "STALE_TIMESTAMP"),
        ("no signature", 401, "SIGNATURE_MISSING"),
        ("timestamp not a number", 401, "BAD_TIMESTAMP"),
        ("malformed body", 400, "MALFORMED_BODY"),
        ("not an object", 400, "MALFORMED_BODY"),
        ("vehicles not a list", 400, "MALFORMED_BODY"),
        ("unknown provider", 404, "UNKNOWN_PROVIDER"),
        ("wrong content type", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("too large", 413, "BODY_TOO_LARGE"),
    ],
)
async def test_bad_requests_are_refused_with_a_code_and_write_nothing(
    runtime: Runtime, api: httpx.AsyncClient, case: str, status: int, code: str
) -> None:
    await _push_provider(runtime)
    good = orjson.dumps({"vehicles": [_vehicle("car-1", 52.52, 13.40)]})
    now = int(time.time())
    if case == "bad signature":
        response = await _post(api, good, signature="v1=" + "0" * 64)
    elif case == "other secret":
        response = await _post(api, good, secret="whsec_someone_else")
    elif case == "stale timestamp":
        response = await _post(api, good, timestamp=now - MAX_SKEW_SECONDS - 5)
    elif case == "future timestamp":
        response = await _post(api, good, timestamp=now + MAX_SKEW_SECONDS + 5)
    elif case == "no signature":
        response = await api.post(
            f"/ingest/{SLUG}/vehicles", content=good, headers={"Content-Type": "application/json"}
        )
    elif case == "timestamp not a number":
        response = await api.post(
            f"/ingest/{SLUG}/vehicles",
            content=good,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: "yesterday",
                SIGNATURE_HEADER: "v1=00",
            },
        )
    elif case == "malformed body":
        response = await _post(api, b'{"vehicles": [')
    elif case == "not an object":
        response = await _post(api, b"[1, 2]")
    elif case == "vehicles not a list":
        response = await _post(api, {"vehicles": {"car-1": {}}})
    elif case == "unknown provider":
        response = await _post(api, good, provider="nobody")
    elif case == "wrong content type":
        response = await _post(api, good, content_type="text/plain")
    else:
        response = await _post(api, b" " * (MAX_BODY_BYTES + 1))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    await _nothing_written(runtime)


async def test_provider_without_secret_cannot_push(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime, secret=False)
    response = await _post(api, {"vehicles": [_vehicle("car-1", 52.52, 13.40)]})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PUSH_NOT_ENABLED"
    await _nothing_written(runtime)


async def test_rotated_secret_is_picked_up_without_waiting_for_the_cache(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)
    await runtime.reference.current()  # the old secret is cached now
    async with transaction(runtime.sessions) as session:
        provider = await repository.get(session, SLUG)
        assert provider is not None
        provider.ingest_secret = "whsec_rotated"
    response = await _post(
        api, {"vehicles": [_vehicle("car-1", 52.52, 13.40)]}, secret="whsec_rotated"
    )
    assert response.status_code == 200, response.text
    response = await _post(
        api, {"vehicles": [_vehicle("car-2", 52.52, 13.40)]}, secret="whsec_test_secret"
    )
    assert response.status_code == 401


async def test_concurrent_batches_for_one_vehicle_keep_the_newest(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)
    statuses = [
        _vehicle("car-1", 52.50 + n / 1000, 13.40, last_reported=NOW - 100 + n) for n in range(20)
    ]
    responses = await asyncio.gather(*(_post(api, {"vehicles": [s]}) for s in statuses))
    assert all(r.status_code == 200 for r in responses)
    newest = max(statuses, key=lambda s: s["last_reported"])
    assert (await _stored(runtime))["car-1"][:2] == (newest["lat"], newest["lon"])
    (position,) = await runtime.redis.geopos(runtime.keys.vehicle_geo, f"{SLUG}:car-1")
    assert position is not None
    lon, lat = position
    assert (lat, lon) == pytest.approx((newest["lat"], newest["lon"]), abs=1e-5)


def test_signature_is_the_documented_hmac() -> None:
    # docs/push-ingest.md: hex HMAC-SHA256 over "<timestamp>.<body>" with the secret, "v1=".
    secret, timestamp, body = "whsec_abc", 1_764_240_000, b'{"vehicles":[]}'
    digest = hmac.new(b"whsec_abc", b'1764240000.{"vehicles":[]}', hashlib.sha256).hexdigest()
    assert sign(secret, timestamp, body) == "v1=" + digest


def test_push_adapter_config_takes_reference_documents_only() -> None:
    assert PushAdapter.from_config({"documents": DOCUMENTS}).documents == DOCUMENTS
    with pytest.raises(AdapterConfigError, match="vehicle_status cannot be given"):
        PushAdapter.from_config({"documents": {"vehicle_status": _v23({"vehicles": []})}})
    with pytest.raises(AdapterConfigError, match="unknown option"):
        PushAdapter.from_config({"documents": {}, "url": "http://x"})
    with pytest.raises(AdapterConfigError, match=r"documents\.vehicle_types"):
        PushAdapter.from_config({"documents": {"vehicle_types": {"no": "data"}}})


async def test_overlapping_batches_in_any_order_neither_deadlock_nor_lose_the_newest(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)
    ids = [f"car-{n}" for n in range(30)]
    rng = random.Random(7)
    batches: list[dict[str, Any]] = []
    for n in range(12):
        order = ids[:]
        rng.shuffle(order)  # each batch locks the same rows, listed in another order
        batches.append(
            {
                "vehicles": [
                    _vehicle(vid, 52.5 + n / 1000, 13.4 + i / 1000, last_reported=NOW - 100 + n)
                    for i, vid in enumerate(order)
                ],
                # ... and removes a vehicle another batch upserts.
                "removed": [f"gone-{n}", order[-1]] if n % 4 == 3 else [],
            }
        )
    responses = await asyncio.gather(*(_post(api, b) for b in batches))
    assert [r.status_code for r in responses] == [200] * len(batches), [r.text for r in responses]
    # Independently of the server: a vehicle no batch removed holds the newest status sent.
    # One that was removed may have been created again by a batch that committed after the
    # removal (no tombstones: docs/push-ingest.md); then it holds one of the statuses sent.
    stored = await _stored(runtime)
    removed = {vid for b in batches for vid in b["removed"]}
    for vid in ids:
        sent = [v for b in batches for v in b["vehicles"] if v["vehicle_id"] == vid]
        if vid not in removed:
            newest = max(sent, key=lambda v: v["last_reported"])
            assert stored[vid][:2] == (newest["lat"], newest["lon"]), vid
        elif vid in stored:
            assert stored[vid][:2] in {(v["lat"], v["lon"]) for v in sent}, vid
    assert len(removed & set(ids)) == 3  # the check above covers both cases


async def test_redis_failure_answers_503_keeps_the_batch_and_a_resend_repairs_the_index(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)
    assert (await _post(api, {"vehicles": [_vehicle("car-1", 52.52, 13.40)]})).status_code == 200
    moved = _vehicle("car-2", 52.53, 13.41)
    batch = {"vehicles": [moved], "removed": ["car-1"]}
    # A Redis that refuses connections (nothing listens on port 1): a real outage.
    unreachable = create_redis("redis://127.0.0.1:1/0")
    working = runtime.push.index
    try:
        runtime.push.index = VehicleIndex(unreachable, runtime.keys)
        response = await _post(api, batch)
    finally:
        runtime.push.index = working
        await unreachable.aclose()
    assert response.status_code == 503, response.text
    assert response.json()["indexUpdated"] is False
    # PostgreSQL holds the batch; the index does not yet.
    assert set(await _stored(runtime)) == {"car-2"}
    geo = runtime.keys.vehicle_geo
    assert await runtime.redis.zscore(geo, f"{SLUG}:car-1") is not None
    assert await runtime.redis.zscore(geo, f"{SLUG}:car-2") is None

    # The resend: the status applies again (same time), the removal finds no row, and the
    # index ends matching PostgreSQL.
    response = await _post(api, batch)
    assert response.status_code == 200, response.text
    assert (response.json()["updated"], response.json()["removed"]) == (1, 0)
    members = member_names(await runtime.redis.zrange(geo, 0, -1))
    assert members == {f"{SLUG}:car-2"}


async def test_database_failure_answers_503_as_json(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)
    closed = await asyncpg.create_pool(runtime.settings.database_url, min_size=0, max_size=1)
    await closed.close()
    working = runtime.push.pool
    try:
        runtime.push.pool = closed
        response = await _post(api, {"vehicles": [_vehicle("car-1", 52.52, 13.40)]})
    finally:
        runtime.push.pool = working
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    await _nothing_written(runtime)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({TIMESTAMP_HEADER: "now", SIGNATURE_HEADER: "v1=00"}, "BAD_TIMESTAMP"),
        ({TIMESTAMP_HEADER: "9" * 400, SIGNATURE_HEADER: "v1=00"}, "BAD_TIMESTAMP"),
        ({TIMESTAMP_HEADER: "-5", SIGNATURE_HEADER: "v1=00"}, "BAD_TIMESTAMP"),
        ({SIGNATURE_HEADER: "v1=00"}, "SIGNATURE_MISSING"),
    ],
)
async def test_malformed_signature_headers_are_401_not_500(
    runtime: Runtime, api: httpx.AsyncClient, headers: dict[str, str], code: str
) -> None:
    await _push_provider(runtime)
    response = await api.post(
        f"/ingest/{SLUG}/vehicles",
        content=b'{"vehicles": []}',
        headers={"Content-Type": "application/json", **headers},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


async def test_non_ascii_signature_is_a_bad_signature(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)
    timestamp = str(int(time.time())).encode()
    response = await api.post(
        f"/ingest/{SLUG}/vehicles",
        content=b'{"vehicles": []}',
        headers=[
            (b"Content-Type", b"application/json"),
            (TIMESTAMP_HEADER.encode(), timestamp),
            (SIGNATURE_HEADER.encode(), "v1=é".encode("latin-1")),
        ],
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "BAD_SIGNATURE"


async def test_a_rebuild_waits_for_a_push_batch_in_flight(runtime: Runtime) -> None:
    """The index lock: a batch's transaction holds it shared, a rebuild exclusively."""
    await _push_provider(runtime)
    async with runtime.push.pool.acquire() as conn, conn.transaction():
        await conn.execute(INDEX_LOCK_SHARED, SLUG)
        rebuild = asyncio.create_task(runtime.sync.rebuild_index(SLUG))
        await asyncio.sleep(0.3)
        assert not rebuild.done()  # blocked behind the batch
    assert await asyncio.wait_for(rebuild, 5) == 0


async def test_vehicle_equipment_absent_keeps_empty_clears_unknown_is_refused(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    await _push_provider(runtime)

    async def equipment() -> tuple[list[str] | None, list[str] | None]:
        async with runtime.sessions() as session:
            stored = (
                await session.execute(
                    text("SELECT vehicle_equipment FROM vehicles WHERE id = :v"),
                    {"v": f"{SLUG}:car-1"},
                )
            ).scalar_one()
        (doc,) = await runtime.index.documents([f"{SLUG}:car-1"])
        assert doc is not None
        return stored, doc.vehicle_equipment

    # Sent out of order and twice: stored once each, in the spec's order.
    sent = _vehicle("car-1", 52.52, 13.40, vehicle_equipment=["snow_chains", "child_seat_b"] * 2)
    assert (await _post(api, {"vehicles": [sent]})).status_code == 200
    assert await equipment() == (["child_seat_b", "snow_chains"], ["child_seat_b", "snow_chains"])
    # Absent (or null): the known equipment stays, in PostGIS and in the index.
    later = _vehicle("car-1", 52.53, 13.41, last_reported=NOW - 5)
    assert (await _post(api, {"vehicles": [later]})).json()["updated"] == 1
    assert await equipment() == (["child_seat_b", "snow_chains"], ["child_seat_b", "snow_chains"])
    # An empty array: none any more.
    cleared = _vehicle("car-1", 52.53, 13.41, last_reported=NOW - 4, vehicle_equipment=[])
    assert (await _post(api, {"vehicles": [cleared]})).json()["updated"] == 1
    assert await equipment() == ([], [])
    # A value GBFS does not define, or not an array: the record is refused.
    for bad in (["jet_pack"], "winter_tires", [1]):
        record = _vehicle("car-1", 52.6, 13.5, last_reported=NOW - 3, vehicle_equipment=bad)
        response = await _post(api, {"vehicles": [record]})
        assert [(r["index"], r["code"]) for r in response.json()["rejected"]] == [
            (0, "INVALID_FIELD")
        ], bad
    assert await equipment() == ([], [])
