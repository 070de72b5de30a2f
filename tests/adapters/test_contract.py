"""The contract kit run against every bundled adapter and against fake adapter packages that are
registered through a real ``mobility.adapters`` entry point; the kit catches broken adapters.

Operators are served by real local HTTP servers (the project's FeedServer), from the
conformance feeds or from this module's own ScooterCo document.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from sqlalchemy import text

from adapters.base import available_adapters
from adapters.dto import (
    FeedMeta,
    FormFactor,
    GeofencingZone,
    PricingPlan,
    PropulsionType,
    Region,
    Snapshot,
    Station,
    SystemInfo,
    Vehicle,
    VehicleType,
    VehicleTypeCount,
    ZoneRule,
)
from adapters.testing import AvailabilityAdapterContract, run_contract, snapshot_problems
from app.platform.db import transaction
from app.runtime import Runtime
from providers.service import register_provider
from providers.simulators.feed_server import FeedServer, serve_in_background
from tests.fake_adapters import ENTRY_POINTS, installed
from tests.helpers import feed_dir, raw

pytestmark = pytest.mark.usefixtures("fake_adapter_package")


@pytest.fixture(scope="module")
def fake_adapter_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with installed(tmp_path_factory.mktemp("site-packages")):
        yield


# --- bundled adapters ----------------------------------------------------------------------------

GBFS_INVALID_CONFIGS: list[object] = [
    {},
    {"discovery_url": "ftp://example.com/gbfs.json"},
    {"discovery_url": 5},
    {"discovery_url": "https://example.com/gbfs.json", "feeds": {}},
    {"discovery_url": "https://example.com/gbfs.json", "colour": "red"},
    {"discovery_url": "https://example.com/gbfs.json", "language": "not a tag!"},
    {"discovery_url": "https://example.com/gbfs.json", "headers": {"X-Key": "a\r\nb"}},
    {"feeds": {"vehicle_status": 3}},
    {"feeds": {"no_such_feed": "https://example.com/x.json"}},
    {"feeds": {"system_information": "https://example.com/system_information.json"}},
]


def _local_discovery(folder: str, local: dict[str, str]) -> bytes:
    """The folder's own gbfs.json, its feed URLs pointed at the local copies (feeds we do not
    serve are left out, as an operator's discovery file lists only what it publishes)."""

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            kept = [
                n for n in node if not (isinstance(n, dict) and "url" in n) or n["name"] in local
            ]
            return [rewrite(n) for n in kept]
        if isinstance(node, dict):
            if "name" in node and "url" in node:
                return {**node, "url": local[node["name"]]}
            return {k: rewrite(v) for k, v in node.items()}
        return node

    return orjson.dumps(rewrite(raw(folder, "gbfs")))


class _GbfsFolderContract(AvailabilityAdapterContract):
    """One conformance folder served unchanged, read by explicit feed URLs or by discovery."""

    adapter_name = "gbfs"
    invalid_configs = GBFS_INVALID_CONFIGS
    folder: ClassVar[str]
    discovery: ClassVar[bool] = False

    @contextlib.asynccontextmanager
    async def operator(self) -> AsyncIterator[Mapping[str, Any]]:
        server = FeedServer()
        paths = server.add_directory(self.folder, feed_dir(self.folder))
        async with serve_in_background(server.app) as base_url:
            feeds = {Path(p).stem: base_url + p for p in paths if Path(p).stem != "gbfs"}
            if not self.discovery:
                yield {"feeds": feeds}
                return
            server.add_static(
                f"/{self.folder}/local-gbfs.json", _local_discovery(self.folder, feeds)
            )
            yield {"discovery_url": f"{base_url}/{self.folder}/local-gbfs.json"}


class TestGbfsContractGetaroundStavangerByDiscovery(_GbfsFolderContract):
    folder = "getaround-stavanger"  # v3.0: cars, pricing plans
    discovery = True


class TestGbfsContractLillestromBysykkelByDiscovery(_GbfsFolderContract):
    folder = "lillestrom-bysykkel"  # v2.2: docked bikes, stations
    discovery = True


class TestGbfsContractTierOsloByDiscovery(_GbfsFolderContract):
    folder = "tier-oslo"  # v2.3: zones only
    discovery = True


class TestGbfsContractTierWolfsburg(_GbfsFolderContract):
    folder = "tier-wolfsburg"  # v2.x free_bike_status, 840 vehicles


class TestGbfsContractCheckAlmere(_GbfsFolderContract):
    folder = "check-almere"  # v3.0: mopeds, zones with broken geometries


class TestGbfsContractOsloBysykkelStatusOnly(_GbfsFolderContract):
    folder = "oslo-bysykkel"  # a partial feed set: station_status alone


class TestGbfsContractCooltraTheHagueByDiscovery(_GbfsFolderContract):
    folder = "cooltra-the-hague"  # v3.0: repeated JSON keys, a legacy time zone, stale files
    discovery = True


class TestGbfsContractPogohPittsburghByDiscovery(_GbfsFolderContract):
    folder = "pogoh-pittsburgh"  # 1.x without `version`, 0/1 booleans, no vehicle_types
    discovery = True


class TestPushAdapterContract(AvailabilityAdapterContract):
    adapter_name = "push"
    fetches_over_http = False  # its reference documents are in its config
    invalid_configs: ClassVar[list[object]] = [
        {"documents": []},
        {"documents": {"vehicle_status": {"data": {"vehicles": []}}}},
        {"documents": {"vehicle_types": {"no": "data"}}},
        {"documents": {}, "url": "https://example.com"},
        {"documents": {}, "language": 5},
    ]

    @contextlib.asynccontextmanager
    async def operator(self) -> AsyncIterator[Mapping[str, Any]]:
        names = ("system_information", "vehicle_types", "system_pricing_plans")
        yield {"documents": {name: raw("getaround-stavanger", name) for name in names}}


# --- a third-party adapter, installed through an entry point --------------------------------------


def scooterco_document() -> dict[str, Any]:
    def scooter(vid: str, lat: float, lon: float, **extra: Any) -> dict[str, Any]:
        return {"id": vid, "lat": lat, "lon": lon, "model": "s1", "battery": 0.5, **extra}

    return {
        "updated_at": "2025-06-01T12:00:00+02:00",
        "ttl": 30,
        "operator": {"id": "scooterco-berlin", "name": "ScooterCo Berlin"},
        "models": [{"id": "s1", "name": "S1", "range_km": 45}, {"id": "s2", "range_km": 60}],
        "tariff": {"currency": "eur", "unlock_cents": 100, "per_minute_cents": 25},
        "scooters": [
            scooter("a1", 52.52, 13.40),
            scooter("a2", 52.53, 13.41, reserved=True),
            scooter("a3", 52.54, 13.42, model="s2", battery=None),
            scooter("a4", 52.55, 13.43, broken=True),
            scooter("bad-position", 152.0, 13.4),
            scooter("bad-model", 52.5, 13.4, model="s9"),
        ],
    }


# "bad-model" names a model the document does not list: kept, under a placeholder type.
SCOOTERCO_VALID_IDS = {"a1", "a2", "a3", "a4", "bad-model"}
SCOOTERCO_INVALID_CONFIGS: list[object] = [
    {},
    {"url": 3},
    {"url": "ftp://example.com/fleet"},
    {"url": "https://example.com/fleet", "colour": "red"},
    {"url": "https://example.com/fleet", "api_key": 42},
]


@contextlib.asynccontextmanager
async def scooterco_operator() -> AsyncIterator[Mapping[str, Any]]:
    server = FeedServer()
    server.add_static("/v1/fleet", orjson.dumps(scooterco_document()))
    async with serve_in_background(server.app) as base_url:
        yield {"url": f"{base_url}/v1/fleet", "api_key": "k-123"}


class TestFakeThirdPartyAdapterContract(AvailabilityAdapterContract):
    adapter_name = "fake-scooters"
    invalid_configs = SCOOTERCO_INVALID_CONFIGS

    def operator(self) -> contextlib.AbstractAsyncContextManager[Mapping[str, Any]]:
        return scooterco_operator()


def test_fake_adapters_are_found_through_the_entry_point_group() -> None:
    found = available_adapters()

    assert set(ENTRY_POINTS) <= set(found)
    assert {"gbfs", "push"} <= set(found)
    assert found["fake-scooters"].__module__ == "tests.fake_adapters.scooterco"


async def test_a_third_party_adapter_syncs_end_to_end_without_core_changes(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    server.add_static("/v1/fleet", orjson.dumps(scooterco_document()))
    async with transaction(runtime.sessions) as session:
        await register_provider(
            session,
            slug="scooterco",
            name="ScooterCo",
            adapter="fake-scooters",
            config={"url": f"{base_url}/v1/fleet"},
        )

    report = await runtime.sync.sync("scooterco")

    assert report.ok, report.error
    async with runtime.sessions() as session:
        stored = (
            await session.execute(
                text("SELECT external_id FROM vehicles WHERE provider_id = 'scooterco'")
            )
        ).scalars()
        ids = set(stored)
    assert ids == SCOOTERCO_VALID_IDS
    skipped = {f.record_id for f in report.findings if f.code == "RECORD_SKIPPED"}
    assert skipped == {"bad-position"}
    unknown = [f.record_id for f in report.findings if f.code == "UNKNOWN_VEHICLE_TYPE"]
    assert unknown == ["s9"]
    async with runtime.sessions() as session:
        kind = (
            await session.execute(
                text("SELECT form_factor FROM vehicles WHERE id = 'scooterco:bad-model'")
            )
        ).scalar_one()
    assert kind == "other"


# --- the kit catches broken adapters -------------------------------------------------------------

ERROR_CHECKS = {"check_failing_operator", "check_retry_after", "check_honours_size_cap"}


@pytest.mark.parametrize(
    ("adapter_name", "expected_failures"),
    [
        ("fake-scooters", set()),
        ("fake-crashing-config", {"check_rejects_bad_configs"}),
        ("fake-leaky-errors", ERROR_CHECKS),
        ("fake-own-client", {"check_snapshot_well_formed", *ERROR_CHECKS}),
        ("fake-malformed", {"check_snapshot_well_formed"}),
        ("fake-nondeterministic", {"check_deterministic"}),
        ("fake-misnamed", {"check_registered"}),
        (
            "not-installed",
            {
                "check_registered",
                "check_loads_by_name",
                "check_rejects_bad_configs",
                "check_snapshot_well_formed",
                "check_deterministic",
                *ERROR_CHECKS,
            },
        ),
    ],
)
async def test_the_kit_reports_exactly_the_broken_contract_points(
    adapter_name: str, expected_failures: set[str]
) -> None:
    failures = await run_contract(
        adapter_name, scooterco_operator, invalid_configs=SCOOTERCO_INVALID_CONFIGS
    )

    assert {f.check for f in failures} == expected_failures, failures


async def test_the_kit_names_each_defect_of_a_malformed_snapshot() -> None:
    (failure,) = await run_contract("fake-malformed", scooterco_operator)

    assert "vehicles: duplicate id(s) 'a1'" in failure.message
    assert (
        "vehicle 'a1': last_reported 2025-06-01T12:00:00 is not timezone-aware" in failure.message
    )
    assert "vehicle 'a2': position (152.53, 13.41) is out of range" in failure.message
    assert "vehicle 'a2': vehicle_type_id 'no-such-model' refers to nothing" in failure.message


async def test_the_kit_names_the_exception_that_leaked() -> None:
    failures = {
        f.check: f.message for f in await run_contract("fake-leaky-errors", scooterco_operator)
    }

    assert "httpx.ConnectError" in failures["check_failing_operator"]
    assert "httpx.HTTPStatusError" in failures["check_retry_after"]
    assert "orjson.JSONDecodeError" in failures["check_failing_operator"]


# --- the snapshot checker on its own -------------------------------------------------------------

UTC_NOON = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def well_formed_snapshot() -> Snapshot:
    square = [[[[10.0, 50.0], [10.1, 50.0], [10.1, 50.1], [10.0, 50.0]]]]
    return Snapshot(
        version="3.0",
        system=SystemInfo(system_id="sys", name="Sys"),
        pricing_plans=[PricingPlan("p", "Plan", "EUR", 100, True)],
        vehicle_types=[
            VehicleType("t", FormFactor.BICYCLE, PropulsionType.HUMAN, pricing_plan_ids=("p",))
        ],
        regions=[Region("r", "Region")],
        stations=[
            Station(
                "st",
                "Station",
                50.0,
                10.0,
                region_id="r",
                vehicle_types_available=(VehicleTypeCount("t", 2),),
            )
        ],
        vehicles=[
            Vehicle("v", 50.0, 10.0, False, False, vehicle_type_id="t", station_id="st"),
            Vehicle("w", -50.0, -10.0, True, False, current_fuel_percent=1.0),
        ],
        zones=[
            GeofencingZone(
                0,
                {"type": "MultiPolygon", "coordinates": square},
                (ZoneRule(("t",), True, True, True),),
            )
        ],
        feeds=[FeedMeta("vehicle_status", "https://x", UTC_NOON, 60)],
    )


def test_a_well_formed_snapshot_has_no_problems() -> None:
    assert snapshot_problems(well_formed_snapshot()) == []


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda s: s.vehicles.append(s.vehicles[0]), "vehicles: duplicate id(s) 'v'"),
        (
            lambda s: s.vehicles.append(Vehicle("", 0.0, 0.0, False, False)),
            "vehicles: 1 record(s) with an empty or non-string id",
        ),
        (
            lambda s: s.vehicles.append(Vehicle("x", 0.0, 181.0, False, False)),
            "vehicle 'x': position (0.0, 181.0) is out of range",
        ),
        (
            lambda s: s.vehicles.append(Vehicle("x", 0.0, 0.0, False, False, station_id="nope")),
            "vehicle 'x': station_id 'nope' refers to nothing in the snapshot",
        ),
        (
            lambda s: s.vehicles.append(
                Vehicle("x", 0.0, 0.0, False, False, current_fuel_percent=80.0)
            ),
            "vehicle 'x': current_fuel_percent 80.0 is not within 0..1",
        ),
        (
            lambda s: s.pricing_plans.append(PricingPlan("q", "Q", "euro", 1, True)),
            "pricing plan 'q': currency 'euro' is not an ISO 4217 code",
        ),
        (
            lambda s: s.vehicle_types.append(
                VehicleType(
                    "u", FormFactor.CAR, PropulsionType.ELECTRIC, default_pricing_plan_id="z"
                )
            ),
            "vehicle type 'u': default_pricing_plan_id 'z' refers to nothing in the snapshot",
        ),
        (
            lambda s: s.stations.append(replace(s.stations[0], external_id="s2", region_id="zz")),
            "station 's2': region_id 'zz' refers to nothing in the snapshot",
        ),
        (
            lambda s: s.zones.append(
                GeofencingZone(
                    1,
                    {
                        "type": "MultiPolygon",
                        "coordinates": [[[[1.0, 1.0], [2.0, 2.0], [3.0, 1.0]]]],
                    },
                    (),
                )
            ),
            "zone #1: a ring is not closed or has fewer than 4 positions",
        ),
        (
            lambda s: s.zones.append(
                replace(s.zones[0], ordinal=1, rules=(ZoneRule(("q",), True, True, True),))
            ),
            "zone #1 rule: vehicle_type_ids 'q' refers to nothing in the snapshot",
        ),
        (
            lambda s: s.feeds.append(
                FeedMeta("station_status", "https://x", datetime(2025, 1, 1), 0)
            ),
            "feed 'station_status': last_updated 2025-01-01T00:00:00 is not timezone-aware",
        ),
        (
            lambda s: setattr(s, "system", SystemInfo(system_id="", name="")),
            "system.system_id is empty and no error finding says why",
        ),
    ],
)
def test_each_kind_of_malformed_record_is_reported(mutate: Any, problem: str) -> None:
    snapshot = well_formed_snapshot()
    mutate(snapshot)

    assert snapshot_problems(snapshot) == [problem]
