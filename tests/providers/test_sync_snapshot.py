"""``SyncEngine.sync_snapshot``: a snapshot in hand, merged exactly as a fetched one."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import text

from adapters.dto import (
    FeedMeta,
    FormFactor,
    PropulsionType,
    Snapshot,
    SystemInfo,
    Vehicle,
    VehicleType,
)
from app.runtime import Runtime
from tests.helpers import add_provider, member_names


def _snapshot(vehicles: list[Vehicle]) -> Snapshot:
    return Snapshot(
        version="3.0",
        system=SystemInfo(system_id="snap", name="Snapshot operator"),
        vehicle_types=[
            VehicleType("sc", FormFactor.SCOOTER_STANDING, PropulsionType.ELECTRIC),
        ],
        vehicles=vehicles,
        feeds=[FeedMeta("vehicle_status", "http://127.0.0.1/v.json", None, 60)],
    )


def _vehicle(n: int, **changes: object) -> Vehicle:
    v = Vehicle(f"v{n}", 52.5 + n / 1000, 13.4, False, False, vehicle_type_id="sc")
    return replace(v, **changes)  # type: ignore[arg-type]


async def _positions(runtime: Runtime) -> dict[str, tuple[float, float]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT external_id, ST_Y(geom), ST_X(geom) FROM vehicles "
                "WHERE provider_id = 'snap'"
            )
        )
        return {r[0]: (r[1], r[2]) for r in rows}


async def test_first_snapshot_bulk_loads_and_the_next_is_an_exact_delta(runtime: Runtime) -> None:
    await add_provider(
        runtime, "snap", {"vehicle_status": "http://127.0.0.1:9/vehicle_status.json"}
    )
    first = [_vehicle(n) for n in range(5)]
    report = await runtime.sync.sync_snapshot("snap", _snapshot(first))
    assert report.ok, report.error
    assert report.counts["vehicles"] == {"created": 5, "updated": 0, "removed": 0, "total": 5}
    assert set(report.phases) == {"rows", "database", "index", "deltas"}
    assert await _positions(runtime) == {v.external_id: (v.lat, v.lon) for v in first}
    members = await runtime.redis.smembers(runtime.keys.provider_members("snap"))
    assert member_names(members) == {f"snap:v{n}" for n in range(5)}

    # v0 moves, v1 is reserved, v4 goes, v5 comes: the upsert path, not the bulk load.
    second = [
        _vehicle(0, lat=52.6),
        _vehicle(1, is_reserved=True),
        _vehicle(2),
        _vehicle(3),
        _vehicle(5),
    ]
    report = await runtime.sync.sync_snapshot("snap", _snapshot(second))
    assert report.ok, report.error
    assert report.counts["vehicles"] == {"created": 1, "updated": 2, "removed": 1, "total": 5}
    assert await _positions(runtime) == {v.external_id: (v.lat, v.lon) for v in second}
    members = await runtime.redis.smembers(runtime.keys.provider_members("snap"))
    # The reserved one left the index; the new one is in.
    assert member_names(members) == {"snap:v0", "snap:v2", "snap:v3", "snap:v5"}


async def test_duplicate_vehicle_ids_keep_the_first_and_are_reported(runtime: Runtime) -> None:
    await add_provider(
        runtime, "snap", {"vehicle_status": "http://127.0.0.1:9/vehicle_status.json"}
    )
    vehicles = [_vehicle(1), _vehicle(2), _vehicle(1, lat=10.0), _vehicle(1, lat=11.0)]
    for round_ in ("bulk load", "upsert"):
        report = await runtime.sync.sync_snapshot("snap", _snapshot(vehicles))
        assert report.ok, (round_, report.error)
        duplicates = [f for f in report.findings if f.code == "DUPLICATE_ID"]
        assert [(f.record_id, f.severity) for f in duplicates] == [("v1", "error")]
        assert "3 times" in duplicates[0].message
        assert await _positions(runtime) == {"v1": (52.501, 13.4), "v2": (52.502, 13.4)}
