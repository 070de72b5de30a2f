"""Compiled list completion answers exactly as graphql-core does, and is actually used."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
import strawberry
from sqlalchemy import text

from app.runtime import Runtime
from app.search.schemas import VehicleHit
from app.vehicle_index import VehicleDoc
from graphql_schema import execution
from graphql_schema.context import Context
from graphql_schema.enums import FormFactor
from graphql_schema.execution import CompiledExecutionContext
from graphql_schema.schema import build_schema
from graphql_schema.types import FAST_RELATIONS, Vehicle
from providers.simulators.feed_server import FeedServer
from tests.helpers import raw, synced_conformance_provider

NEAR = "near: {lat: 58.97, lon: 5.73, radiusMeters: 5000}"
WITHIN = "within: {minLat: 58.93, minLon: 5.66, maxLat: 59.0, maxLon: 5.78}"
CONNECTION_FIELDS = (
    "edges { cursor node { id distanceMeters formFactor provider { id name } "
    "pricingPlan { price { amountMinor } } } } "
    "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
)

QUERIES = {
    "plain fields": f"{{ vehicles({NEAR}, first: 20) {{ id providerId formFactor propulsionType "
    "lat lon distanceMeters currentRangeMeters currentFuelPercent isReserved isDisabled "
    "lastReported pricingPlanId vehicleTypeId stationId } }",
    "aliases, typename and fragments": f"{{ vehicles({NEAR}, first: 10) {{ __typename "
    "key: id ...F ... on Vehicle { lat } } } fragment F on Vehicle { id formFactor }",
    "relations": f"{{ vehicles({NEAR}, first: 10) {{ id provider {{ id name timezone stale }} "
    "vehicleType { id name formFactor maxRangeMeters provider { id } } "
    "pricingPlan { id name currency price { amountMinor amount currency } "
    "perMinPricing { start interval end rate { amountMinor } } } rentalUris { web ios } } }",
    # Every field here is an attribute or a FAST_RELATIONS entry, so the whole list is
    # completed by a plan (in "relations" above, Money.amount is a resolver, so graphql-core
    # completes those vehicles and only the nested segment lists get plans).
    "relations the plan resolves": f"{{ vehicles({NEAR}, first: 10) {{ id lastReported "
    "vehicleEquipment "
    "rentalUris { android ios web } provider { id name timezone } "
    "vehicleType { id formFactor provider { id } } pricingPlan { id currency provider { id } } "
    "} }",
    "directives fall back": f"query($x: Boolean!) {{ vehicles({NEAR}, first: 5) "
    "{ id lat @include(if: $x) lon @skip(if: $x) } }",
    "async relation falls back": f"{{ vehicles({NEAR}, first: 5) {{ id station {{ id }} "
    "provider { vehicleCount } } }",
    "nested lists": '{ geofencingZones(providers: ["getaround-stavanger"]) { id } '
    "providers { id formFactors } }",
    "within, nearest the centre first": f"{{ vehicles({WITHIN}, first: 30) {{ id lat lon "
    "distanceMeters formFactor provider { id } } }",
    "a page of a connection": f"{{ vehiclesConnection({WITHIN}, first: 7) "
    f"{{ {CONNECTION_FIELDS} }} }}",
}


async def _execute(
    runtime: Runtime, compiled: bool, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    schema = build_schema(runtime.settings, compiled=compiled)
    context = Context.of(runtime)
    result = await schema.execute(
        query, variable_values=variables or {"x": True}, context_value=context
    )
    return {
        "data": result.data,
        "errors": [(e.message, e.path) for e in result.errors or []],
    }


@pytest.fixture
async def getaround(runtime: Runtime, feed_server: tuple[FeedServer, str]) -> str:
    slug = await synced_conformance_provider(runtime, feed_server, "getaround-stavanger")
    # No real feed reports vehicle_equipment: every other car gets some (none, for a few), so
    # the plans' vehicleEquipment relation has values to prove.
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE vehicles SET vehicle_equipment = CASE WHEN id < :m "
                "THEN ARRAY['child_seat_a', 'winter_tires'] ELSE '{}' END "
                "WHERE provider_id = :p AND hashtext(id) % 2 = 0"
            ),
            {"p": slug, "m": f"{slug}:5"},
        )
    await runtime.sync.rebuild_index(slug)
    return slug


@pytest.mark.parametrize("name", list(QUERIES))
async def test_compiled_and_generic_execution_give_identical_answers(
    runtime: Runtime, getaround: str, name: str
) -> None:
    query = QUERIES[name]
    generic = await _execute(runtime, False, query)
    compiled = await _execute(runtime, True, query)
    assert generic["errors"] == []
    assert compiled == generic
    assert generic["data"] and any(generic["data"].values())  # the query found something


def _other_fleets_queries() -> dict[str, str]:
    """Queries over two more real feeds, for the relations Stavanger's cars do not have: a
    docked system's stations with their vehicle type counts (Lillestrøm) and vehicle types
    with a default pricing plan, and geofencing zones (Cooltra, The Hague). Their areas come
    from the feeds' own first station and vehicle."""
    station = raw("lillestrom-bysykkel", "station_information")["data"]["stations"][0]
    vehicle = raw("cooltra-the-hague", "vehicle_status")["data"]["vehicles"][0]
    docks = f"near: {{lat: {station['lat']}, lon: {station['lon']}, radiusMeters: 5000}}"
    hague = f"near: {{lat: {vehicle['lat']}, lon: {vehicle['lon']}, radiusMeters: 3000}}"
    return {
        "stations, their counts and types": f"{{ stations({docks}, first: 10) {{ id name "
        "provider { id } vehicleTypesAvailable { count vehicleType { id formFactor "
        "provider { id } } } } }",
        "vehicle types with their default plan": f"{{ vehicles({hague}, first: 25) {{ id "
        "lastReported vehicleType { id defaultPricingPlan { id currency provider { id } } } "
        "pricingPlan { id provider { id name } } } }",
        "zones and their provider": '{ geofencingZones(providers: ["cooltra-the-hague"]) '
        "{ id name provider { id } } }",
    }


@pytest.fixture
async def other_fleets(runtime: Runtime, feed_server: tuple[FeedServer, str]) -> list[str]:
    return [
        await synced_conformance_provider(runtime, feed_server, folder)
        for folder in ("lillestrom-bysykkel", "cooltra-the-hague")
    ]


@pytest.mark.parametrize(
    "name",
    [
        "stations, their counts and types",
        "vehicle types with their default plan",
        "zones and their provider",
    ],
)
async def test_other_fleets_answer_identically_on_both_executors(
    runtime: Runtime, other_fleets: list[str], name: str
) -> None:
    query = _other_fleets_queries()[name]
    generic = await _execute(runtime, False, query)
    compiled = await _execute(runtime, True, query)
    assert generic["errors"] == []
    assert compiled == generic
    assert generic["data"] and all(generic["data"].values())


async def test_every_fast_relation_is_exercised_by_a_parity_query(
    runtime: Runtime,
    getaround: str,
    other_fleets: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A relation the plans resolve by themselves must be proven against graphql-core's own
    # resolver: each entry of FAST_RELATIONS has to return a value inside a compiled plan
    # while the queries above run (and those queries answer as the generic executor does).
    # A relation added without a query here fails this test.
    returned: dict[tuple[str, str], int] = dict.fromkeys(FAST_RELATIONS, 0)

    def counting(key: tuple[str, str], relation: Any) -> Any:
        def counted(source: Any, context: Any) -> Any:
            value = relation(source, context)
            if value is not None:
                returned[key] += 1
            return value

        return counted

    for key, relation in list(FAST_RELATIONS.items()):
        monkeypatch.setitem(FAST_RELATIONS, key, counting(key, relation))
    execution._plans.clear()  # plans hold the relations they were compiled with
    queries = [*QUERIES.values(), *_other_fleets_queries().values()]
    for query in queries:
        compiled = await _execute(runtime, True, query)
        assert compiled == await _execute(runtime, False, query), query
    execution._plans.clear()
    never = sorted(key for key, count in returned.items() if count == 0)
    assert never == [], f"relations no parity query exercises: {never}"


async def test_hot_query_is_completed_by_a_plan(runtime: Runtime, getaround: str) -> None:
    execution._plans.clear()
    await _execute(runtime, True, QUERIES["relations"])
    assert any(template is not None for _, template in execution._plans.values())

    execution._plans.clear()
    await _execute(runtime, True, QUERIES["directives fall back"])
    assert all(template is None for _, template in execution._plans.values())


async def test_paging_through_a_connection_answers_alike_on_both_executors(
    runtime: Runtime, getaround: str
) -> None:
    query = (
        "query($first: Int, $after: String) { vehiclesConnection("
        f"{WITHIN}, first: $first, after: $after) {{ {CONNECTION_FIELDS} }} }}"
    )
    execution._plans.clear()
    after, pages = None, 0
    while True:
        variables = {"first": 4, "after": after}
        generic = await _execute(runtime, False, query, variables)
        compiled = await _execute(runtime, True, query, variables)
        assert generic["errors"] == []
        assert compiled == generic
        page = generic["data"]["vehiclesConnection"]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages > 2
    # The edges and their vehicles were completed by a plan, cursors included.
    assert any(template is not None for _, template in execution._plans.values())

    # A cursor that is not one of ours: the same error from both.
    bad = {"first": 4, "after": "bm90IG91cnM"}
    generic = await _execute(runtime, False, query, bad)
    assert [message for message, _ in generic["errors"]] and generic["data"] is None
    assert await _execute(runtime, True, query, bad) == generic


async def test_a_value_the_plan_cannot_serialise_falls_back_to_graphql_core_errors(
    runtime: Runtime, getaround: str
) -> None:
    # A NaN range cannot be serialised as a Float: graphql-core reports the field error (and
    # masks it), and the compiled path must report exactly the same.
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text("UPDATE vehicles SET current_range_meters = 'NaN' WHERE provider_id = :p"),
            {"p": getaround},
        )
    # includeReserved: answered from PostGIS, which returns the NaN as it is stored.
    query = (
        f"{{ vehicles({NEAR}, first: 3, filter: {{includeReserved: true}}) "
        "{ id currentRangeMeters } }"
    )

    generic = await _execute(runtime, False, query)
    compiled = await _execute(runtime, True, query)

    assert generic["errors"], "the test needs a value graphql-core refuses"
    assert compiled == generic


def test_vehicle_from_hit_fills_exactly_the_dataclass_fields() -> None:
    # from_hit bypasses the dataclass __init__ for speed: a field added to Vehicle and not to
    # from_hit would be an AttributeError at query time, so the two lists must match.
    doc = VehicleDoc(
        "v1",
        "p1",
        "scooter_standing",
        "electric",
        1.0,
        2.0,
        False,
        False,
        "t",
        "pp",
        None,
        10,
        0.5,
        None,
        None,
    )
    vehicle = Vehicle.from_hit(VehicleHit(doc, 3.0), ref=None)  # type: ignore[arg-type]
    assert set(vars(vehicle)) == {f.name for f in dataclasses.fields(Vehicle) if f.init}
    built = Vehicle(
        **{f.name: getattr(vehicle, f.name) for f in dataclasses.fields(Vehicle) if f.init}
    )
    assert vars(built) == vars(vehicle)


@strawberry.type
class _Item:
    f: float | None
    i: int
    s: str
    b: bool
    e: FormFactor
    n: _Item | None = None


@pytest.mark.parametrize(
    ("values", "fails"),
    [
        # Python values of the scalar's own type pass through the inline checks as they are.
        ({"f": 1.5, "i": 7, "s": "x", "b": False, "e": FormFactor.CAR}, False),
        # Other Python types must be serialised by the scalar, exactly as graphql-core does:
        # 3 -> 3.0 for a Float (orjson would write 3), True -> 1 for an Int, 5 -> "5".
        ({"f": 3, "i": True, "s": 5, "b": 1, "e": FormFactor.MOPED}, False),
        ({"f": None, "i": -(2**31), "s": "", "b": True, "e": FormFactor.BICYCLE}, False),
        # Values no serialiser accepts: graphql-core's errors, from both paths.
        ({"f": float("inf"), "i": 1, "s": "x", "b": True, "e": FormFactor.CAR}, True),
        ({"f": 1.0, "i": 2**31, "s": "x", "b": True, "e": FormFactor.CAR}, True),
        ({"f": 1.0, "i": 1, "s": None, "b": True, "e": FormFactor.CAR}, True),
    ],
)
async def test_generated_completion_serialises_like_graphql_core(
    values: dict[str, Any], fails: bool
) -> None:
    @strawberry.type
    class Query:
        @strawberry.field
        def items(self) -> list[_Item]:
            nested = _Item(**values)
            return [_Item(**values, n=nested), _Item(**values)]

    query = "{ items { f i s b e __typename again: i n { s e f } } }"
    compiled_schema = strawberry.Schema(Query, execution_context_class=CompiledExecutionContext)
    generic = await strawberry.Schema(Query).execute(query)
    execution._plans.clear()
    compiled = await compiled_schema.execute(query)
    assert bool(generic.errors) == fails
    assert compiled.data == generic.data
    assert orjson.dumps(compiled.data) == orjson.dumps(generic.data)
    assert [e.message for e in compiled.errors or []] == [e.message for e in generic.errors or []]
    if not fails:  # the plan, not a fallback, produced the answer
        assert any(template is not None for _, template in execution._plans.values())
