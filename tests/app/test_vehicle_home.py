"""The vehicle's one home (issue 17): what ties its fields and its filter together.

- Filter parity: every criterion of :class:`VehicleFilter` gives the same vehicles in PostGIS
  (the search fallback's SQL), in Redis (the index's script) and in process (``matches``, used
  on the hot path and by live views), on one small fleet. A criterion without an example here,
  or an engine that ignores it, fails.
- Round trip: a vehicle with every field known comes back whole from each store and path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from app.gbfs_publish.repository import VEHICLE_STATUS
from app.platform.db import transaction
from app.platform.redis import RedisKeys
from app.runtime import Runtime
from app.search import repository
from app.search.paging import query_fingerprint
from app.search.schemas import RankedArea, VehicleFilter
from app.vehicle import DOC_FORMAT, MERGE_SELECT, PUSH_UPSERT, SELECT_COLUMNS
from app.vehicle_index import VehicleDelta, VehicleDoc
from geo.areas import BBox, Near
from graphql_schema.types import Vehicle
from providers.simulators.feed_server import FeedServer
from providers.sync import load_vehicle_docs
from tests.helpers import (
    add_provider,
    age_last_success,
    serve_documents,
    synthetic_scooter_feeds,
    v23_envelope,
)

CENTRE = (52.52, 13.40)
RADIUS = 5_000.0


def _feeds(vehicles: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The helpers' synthetic GBFS 2.3 system (type "es", plan "basic"), with two more vehicle
    types and a station."""
    documents = synthetic_scooter_feeds(vehicles)
    documents["vehicle_types"]["data"]["vehicle_types"] += [
        {
            "vehicle_type_id": "car",
            "form_factor": "car",
            "propulsion_type": "combustion",
            "max_range_meters": 600000,
        },
        {"vehicle_type_id": "bike", "form_factor": "bicycle", "propulsion_type": "human"},
    ]
    documents["station_information"] = v23_envelope(
        {"stations": [{"station_id": "st", "name": "Station", "lat": 52.521, "lon": 13.401}]}
    )
    documents["station_status"] = v23_envelope(
        {
            "stations": [
                {
                    "station_id": "st",
                    "num_bikes_available": 1,
                    "is_installed": True,
                    "is_renting": True,
                    "is_returning": True,
                    "last_reported": 1_700_000_000,
                }
            ]
        }
    )
    return documents


# (id, type, range, reserved, disabled): positions spread around the centre.
_FLEET: list[tuple[str, str, float | None, bool, bool]] = [
    ("s1", "es", 20000.0, False, False),
    ("s2", "es", 5000.0, False, False),
    ("s3", "es", None, False, False),
    ("s4", "es", 30000.0, True, False),
    ("s5", "es", 30000.0, False, True),
    ("c1", "car", 300000.0, False, False),
    ("c2", "car", 1000.0, False, False),
    ("b1", "bike", None, False, False),
]
# What some of them report on board (GBFS vehicle_equipment); the others report nothing.
_EQUIPMENT: dict[str, list[str]] = {
    "c1": ["child_seat_a", "winter_tires"],
    "c2": ["winter_tires"],
    "s1": [],
}
_KINDS = {"es": ("scooter_standing", "electric"), "car": ("car", "combustion")}
_KINDS["bike"] = ("bicycle", "human")
_PROVIDERS = ("alpha", "beta")


def _vehicle_json(
    n: int, vid: str, type_id: str, range_m: float | None, flags: tuple[bool, bool]
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "bike_id": vid,
        "lat": CENTRE[0] + 0.001 * n,
        "lon": CENTRE[1] + 0.0007 * n,
        "is_reserved": flags[0],
        "is_disabled": flags[1],
        "vehicle_type_id": type_id,
    }
    if range_m is not None:
        record["current_range_meters"] = range_m
    if vid in _EQUIPMENT:
        record["vehicle_equipment"] = _EQUIPMENT[vid]
    return record


class _Row:
    """The test's own view of one fleet vehicle, to compute what each criterion should keep."""

    def __init__(
        self, provider: str, vid: str, type_id: str, range_m: float | None, r: bool, d: bool
    ) -> None:
        self.id = f"{provider}:{vid}"
        self.provider_id = provider
        self.form_factor, self.propulsion_type = _KINDS[type_id]
        self.range = range_m
        self.reserved, self.disabled = r, d
        self.equipment = set(_EQUIPMENT.get(vid, ()))

    @property
    def available(self) -> bool:
        return not self.reserved and not self.disabled


_ROWS = [_Row(p, *v) for p in _PROVIDERS for v in _FLEET]

# Each criterion of VehicleFilter: a value, and which fleet vehicles it keeps (the default
# filter keeps available vehicles only). ``beta`` is fresh, ``alpha`` was last synced 2 h ago.
EXAMPLES: dict[str, tuple[dict[str, Any], Any]] = {
    "form_factors": ({"form_factors": frozenset({"car"})}, lambda r: r.form_factor == "car"),
    "propulsion_types": (
        {"propulsion_types": frozenset({"combustion", "human"})},
        lambda r: r.propulsion_type in ("combustion", "human"),
    ),
    "providers": ({"providers": frozenset({"beta"})}, lambda r: r.provider_id == "beta"),
    "min_range_meters": (
        {"min_range_meters": 5000.0},
        lambda r: r.range is not None and r.range >= 5000.0,
    ),
    "equipment": (
        {"equipment": frozenset({"winter_tires", "child_seat_a"})},
        lambda r: {"winter_tires", "child_seat_a"} <= r.equipment,
    ),
    "include_reserved": ({"include_reserved": True}, lambda r: not r.disabled),
    "include_disabled": ({"include_disabled": True}, lambda r: not r.reserved),
    "fresh_within_seconds": (
        {"fresh_within_seconds": 3600.0},
        lambda r: r.provider_id == "beta",
    ),
    "hidden_providers": (
        {"hidden_providers": frozenset({"alpha"})},
        lambda r: r.provider_id != "alpha",
    ),
}

# Criteria an engine does not decide, by design, and who does instead.
NOT_IN_REDIS = {
    # The index holds available vehicles only: the service asks PostGIS for the others.
    "include_reserved",
    "include_disabled",
    # Read from the providers table; the service keeps to servable providers itself.
    "fresh_within_seconds",
    # The service drops hidden providers with `matches` after the script.
    "hidden_providers",
}
NOT_IN_MATCHES = {"fresh_within_seconds"}  # the service checks freshness per provider


def test_every_criterion_has_an_example() -> None:
    assert set(EXAMPLES) == {f.name for f in fields(VehicleFilter)}


@pytest.fixture
async def fleet(runtime: Runtime, feed_server: tuple[FeedServer, str]) -> list[VehicleDoc]:
    server, base_url = feed_server
    for provider in _PROVIDERS:
        records = [_vehicle_json(n, *v[:3], v[3:]) for n, v in enumerate(_FLEET)]
        feeds = serve_documents(server, base_url, provider, _feeds(records))
        await add_provider(runtime, provider, feeds)
        assert (await runtime.sync.sync(provider)).ok
    await age_last_success(runtime, "alpha", 7200)
    async with transaction(runtime.sessions) as session:
        docs = [d for p in _PROVIDERS for d in await load_vehicle_docs(session, p)]
    assert {d.id for d in docs} == {r.id for r in _ROWS}
    return docs


async def _sql_ids(runtime: Runtime, flt: VehicleFilter) -> set[str]:
    area = RankedArea(CENTRE[0], CENTRE[1], RADIUS, None)
    hits = await repository.search_vehicles(runtime.search.pool, area=area, flt=flt, first=1000)
    return {h.vehicle.id for h in hits}


async def _redis_ids(runtime: Runtime, flt: VehicleFilter) -> set[str]:
    _, docs = await runtime.index.nearest_documents(
        CENTRE[0],
        CENTRE[1],
        RADIUS,
        count=1000,
        flt=flt,
    )
    return {d.id for d in docs}


@pytest.mark.parametrize("criterion", sorted(EXAMPLES))
async def test_filter_parity(runtime: Runtime, fleet: list[VehicleDoc], criterion: str) -> None:
    values, keeps = EXAMPLES[criterion]
    flt = VehicleFilter(**values)
    base = VehicleFilter()
    expected = {r.id for r in _ROWS if keeps(r) and (r.available or criterion.startswith("incl"))}
    # The example must tell the criterion apart from no filter at all.
    assert expected != {r.id for r in _ROWS if r.available}

    assert await _sql_ids(runtime, flt) == expected
    if criterion not in NOT_IN_MATCHES:
        assert {d.id for d in fleet if flt.matches(d)} == expected
    else:
        assert {d.id for d in fleet if flt.matches(d)} == {d.id for d in fleet if base.matches(d)}
    if criterion not in NOT_IN_REDIS:
        assert await _redis_ids(runtime, flt) == expected
    else:
        assert await _redis_ids(runtime, flt) == {r.id for r in _ROWS if r.available}


_FULL_RECORD = {
    "bike_id": "full",
    "lat": 52.5211,
    "lon": 13.4011,
    "is_reserved": False,
    "is_disabled": False,
    "vehicle_type_id": "car",
    "pricing_plan_id": "basic",
    "station_id": "st",
    "current_range_meters": 250000.0,
    "current_fuel_percent": 0.5,
    "rental_uris": {"android": "https://a.example/full", "web": "https://w.example/full"},
    "last_reported": 1_700_000_123,
    # Out of order, repeated, and one value GBFS does not define: kept once each, in order.
    "vehicle_equipment": ["winter_tires", "child_seat_a", "winter_tires", "jet_pack"],
}


async def test_every_field_round_trips(
    runtime: Runtime, feed_server: tuple[FeedServer, str], api: httpx.AsyncClient
) -> None:
    """A vehicle with every field known: from a feed into PostGIS, the index, the delta
    channel and the search fallback, and back unchanged, no field lost on the way."""
    server, base_url = feed_server
    feeds = serve_documents(server, base_url, "full", _feeds([_FULL_RECORD]))
    await add_provider(runtime, "full", feeds)
    assert (await runtime.sync.sync("full")).ok
    async with transaction(runtime.sessions) as session:
        (stored,) = await load_vehicle_docs(session, "full")
        by_id = await repository.vehicle_by_id(session, "full:full")
    assert all(value is not None for value in stored), stored
    assert stored.id == "full:full" and stored.station_id == "full:st"
    assert stored.pricing_plan_id == "full:basic"
    assert stored.vehicle_equipment == ["child_seat_a", "winter_tires"]
    assert stored.last_reported == datetime.fromtimestamp(1_700_000_123, UTC)
    assert stored.rental_uris == {
        "android": "https://a.example/full",
        "ios": None,
        "web": "https://w.example/full",
    }

    assert by_id is not None and by_id.vehicle == stored
    area = RankedArea(CENTRE[0], CENTRE[1], RADIUS, None)
    flt = VehicleFilter()
    (hit,) = await repository.search_vehicles(runtime.search.pool, area=area, flt=flt, first=5)
    # The fallback keeps rental_uris as the JSON text PostGIS sent: decoded only when shown.
    assert isinstance(hit.vehicle.rental_uris, str)
    assert hit.vehicle._replace(rental_uris=orjson.loads(hit.vehicle.rental_uris)) == stored

    # The index keeps the timestamp as its ISO text.
    as_indexed = stored._replace(last_reported=stored.reported_iso())
    assert await runtime.index.documents([stored.id]) == [as_indexed]
    assert VehicleDoc.decode(stored.encode()) == as_indexed
    delta = VehicleDelta.decode(
        b'{"provider":"full","created":[' + stored.encode() + b'],"updated":[],"removed":[]}'
    )
    assert delta.created == [as_indexed]

    # And the API shows it, by id (PostGIS) and in an area search (the index, compiled plans).
    query = (
        '{ vehicle(id: "full:full") { vehicleEquipment } '
        "vehicles(near: {lat: 52.52, lon: 13.40, radiusMeters: 5000}) { id vehicleEquipment } }"
    )
    response = await api.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {
        "vehicle": {"vehicleEquipment": ["CHILD_SEAT_A", "WINTER_TIRES"]},
        "vehicles": [{"id": "full:full", "vehicleEquipment": ["CHILD_SEAT_A", "WINTER_TIRES"]}],
    }


def test_cursor_fingerprints_of_existing_queries_are_unchanged() -> None:
    """Values computed before the filter moved into app/vehicle.py: a cursor issued by a
    running version stays valid across the deploy (a new criterion is appended only when
    set)."""
    assert query_fingerprint(Near(52.5, 13.4, 500.0), None, VehicleFilter()) == "y4CKsKdZQA_b"
    full = VehicleFilter(
        form_factors=frozenset({"car", "bicycle"}),
        propulsion_types=frozenset({"electric"}),
        providers=frozenset({"b", "a"}),
        min_range_meters=100,
        include_reserved=True,
        include_disabled=True,
        hidden_providers=frozenset({"x"}),
        fresh_within_seconds=5.0,
    )
    assert query_fingerprint(None, BBox(52.5, 13.4, 52.6, 13.5), full) == "Cc0CAY_W2nRd"


def test_index_keys_and_delta_channel_carry_the_document_format() -> None:
    keys = RedisKeys("p")
    assert len(DOC_FORMAT) == 8
    for key in (keys.vehicle_docs, keys.vehicle_geo, keys.index_ready, keys.vehicle_deltas):
        # In the hash tag (the part a Redis Cluster hashes): "{p:v3-<DOC_FORMAT>}:...".
        tag, _, rest = key.partition("}")
        assert tag.startswith("{p:") and tag.endswith(f"-{DOC_FORMAT}"), key
        assert rest.startswith(":"), key


# Record fields GBFS's vehicle_status does not have, or that publishing writes differently.
NOT_PUBLISHED = {"id", "provider_id", "form_factor", "propulsion_type"}
# Record fields the API type shows under another name or not at all.
NOT_IN_API = {"rental_uris"}  # shown as rentalUris, resolved from rental_uris_raw


def test_every_field_is_read_written_published_and_shown() -> None:
    """The ties a new field must pass: derived SQL holds it, GBFS publishing and the API type
    show it (or it is listed above, with the reason)."""
    api_fields = {f.name for f in dataclasses.fields(Vehicle)} | {
        name for name in dir(Vehicle) if not name.startswith("_")
    }
    pushed = PUSH_UPSERT.split("(", 1)[1].split(")", 1)[0].split(", ")  # INSERT's columns
    for name in VehicleDoc._fields:
        if name not in ("lat", "lon"):  # both live in geom
            assert f"v.{name}" in SELECT_COLUMNS, name
            assert name in dict(MERGE_SELECT), name
            assert name in pushed, name
        if name not in NOT_PUBLISHED:
            assert f"'{name}'" in VEHICLE_STATUS, name
        if name not in NOT_IN_API:
            assert name in api_fields, name
