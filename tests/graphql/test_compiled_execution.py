"""Compiled list completion answers exactly as graphql-core does, and is actually used."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from app.runtime import Runtime
from graphql_schema import execution
from graphql_schema.context import Context
from graphql_schema.schema import build_schema
from providers.simulators.feed_server import FeedServer
from tests.helpers import add_conformance_provider

NEAR = "near: {lat: 58.97, lon: 5.73, radiusMeters: 5000}"

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
    "directives fall back": f"query($x: Boolean!) {{ vehicles({NEAR}, first: 5) "
    "{ id lat @include(if: $x) lon @skip(if: $x) } }",
    "async relation falls back": f"{{ vehicles({NEAR}, first: 5) {{ id station {{ id }} "
    "provider { vehicleCount } } }",
    "nested lists": '{ geofencingZones(providers: ["getaround-stavanger"]) { id } '
    "providers { id formFactors } }",
}


async def _execute(runtime: Runtime, compiled: bool, query: str) -> dict[str, Any]:
    schema = build_schema(runtime.settings, compiled=compiled)
    context = Context(
        sessions=runtime.sessions,
        settings=runtime.settings,
        search=runtime.search,
        reference=runtime.reference,
        persisted_queries=runtime.persisted_queries,
    )
    result = await schema.execute(query, variable_values={"x": True}, context_value=context)
    return {
        "data": result.data,
        "errors": [(e.message, e.path) for e in result.errors or []],
    }


@pytest.fixture
async def getaround(runtime: Runtime, feed_server: tuple[FeedServer, str]) -> str:
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "getaround-stavanger")
    assert (await runtime.sync.sync(slug)).ok
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


async def test_hot_query_is_completed_by_a_plan(runtime: Runtime, getaround: str) -> None:
    execution._plans.clear()
    await _execute(runtime, True, QUERIES["relations"])
    assert any(template is not None for _, template in execution._plans.values())

    execution._plans.clear()
    await _execute(runtime, True, QUERIES["directives fall back"])
    assert all(template is None for _, template in execution._plans.values())


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
