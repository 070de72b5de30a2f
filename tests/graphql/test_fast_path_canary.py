"""The fast path's canary: the library internals it relies on are still there and still mean
what it assumes, so an upgrade of Strawberry or graphql-core fails here, by name, instead of
quietly costing speed (the plans give up on anything unexpected and the full path answers, so
no other test would notice) or, worse, quietly dropping a guard.

What the fast path reads (graphql_schema/execution.py, operation.py, fast_http.py):
- Strawberry's graphql-core schema as ``schema._schema``; its default resolvers marked
  ``_is_default``, and each field's definition in ``extensions["strawberry-definition"]``;
- graphql-core's executor: ``build`` (with ``is_awaitable``), ``build_resolve_info``,
  ``collect_subfields``, ``fragments``, ``variable_values``, ``context_value``,
  ``middleware_manager``, and the two methods our execution contexts override:
  ``execute_root_grouped_field_set`` (one root field at a time: one database connection per
  request, issue 16's pool starvation guard) and ``complete_list_value`` (compiled lists);
- ``collect_fields`` and ``get_argument_values`` called positionally;
- the names of Strawberry's per-document extensions (an extension not in that list sends every
  request down the full path).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest
from graphql import GraphQLObjectType, GraphQLSchema
from graphql.execution.collect_fields import collect_fields
from graphql.execution.values import get_argument_values
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.runtime import Runtime
from bench.targets import GRAPHQL_QUERY
from graphql_schema.context import Context
from graphql_schema.execution import (
    STRAWBERRY_DEFINITION,
    CompiledExecutionContext,
    OneLaneExecutionContext,
)
from graphql_schema.operation import PER_DOCUMENT_EXTENSIONS, OperationPlans
from graphql_schema.schema import build_schema
from providers.simulators.feed_server import FeedServer
from tests.helpers import raw, synced_conformance_provider

# graphql-core's executor class (its name and module moved between releases).
_EXECUTOR: Any = StrawberryGraphQLCoreExecutionContext.__mro__[1]


def _parameters(function: Any) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p != "self"]


@pytest.mark.parametrize("ours", [OneLaneExecutionContext, CompiledExecutionContext])
def test_every_method_our_execution_contexts_override_still_exists_with_its_signature(
    ours: type,
) -> None:
    overridden = {
        name: member
        for name, member in vars(ours).items()
        if callable(member) and not name.startswith("_")
    }
    assert overridden  # the classes exist to override something
    for name, member in overridden.items():
        original = getattr(_EXECUTOR, name, None)
        assert original is not None, (
            f"graphql-core's {_EXECUTOR.__name__} no longer has {name}: "
            f"{ours.__name__}.{name} is never called (see the module docstring for what it guards)"
        )
        assert _parameters(member) == _parameters(original), (
            f"graphql-core changed the signature of {name}; {ours.__name__}.{name} must follow"
        )


def test_the_executor_internals_the_plans_use_are_there() -> None:
    assert {"schema", "document", "context_value", "is_awaitable"} <= set(
        _parameters(_EXECUTOR.build)
    )
    assert _parameters(_EXECUTOR.build_resolve_info) == [
        "field_def",
        "field_nodes",
        "parent_type",
        "path",
    ]
    assert _parameters(_EXECUTOR.collect_subfields) == ["return_type", "field_details_list"]
    # Called positionally by operation.py and the plans.
    assert _parameters(collect_fields)[:5] == [
        "schema",
        "fragments",
        "variable_values",
        "runtime_type",
        "operation",
    ]
    assert _parameters(get_argument_values)[:3] == ["type_def", "node", "variable_values"]


def test_strawberry_marks_default_resolvers_and_keeps_field_definitions(
    runtime: Runtime,
) -> None:
    schema = build_schema(runtime.settings, compiled=True)
    core = schema._schema
    assert isinstance(core, GraphQLSchema), "Strawberry's graphql-core schema moved"
    vehicle = core.type_map["Vehicle"]
    assert isinstance(vehicle, GraphQLObjectType)
    plain = vehicle.fields["formFactor"]
    assert getattr(plain.resolve, "_is_default", False), "default resolvers lost _is_default"
    assert plain.extensions[STRAWBERRY_DEFINITION].python_name == "form_factor"
    resolved = vehicle.fields["station"]  # an async resolver
    assert not getattr(resolved.resolve, "_is_default", False)


def test_our_schema_runs_only_per_document_extensions(runtime: Runtime) -> None:
    # operation.py skips the extensions it knows depend on the document only; any other one
    # makes it refuse to plan, and every request takes the full path.
    schema = build_schema(runtime.settings, compiled=True)
    names = {type(e).__name__ for e in schema.get_extensions()}
    assert names, "Strawberry's get_extensions() no longer lists the schema's extensions"
    assert names <= PER_DOCUMENT_EXTENSIONS, names - PER_DOCUMENT_EXTENSIONS


@pytest.fixture
async def getaround(runtime: Runtime, feed_server: tuple[FeedServer, str]) -> str:
    return await synced_conformance_provider(runtime, feed_server, "getaround-stavanger")


async def test_the_benchmark_query_is_planned_and_the_plan_answers_without_falling_back(
    runtime: Runtime, getaround: str, caplog: pytest.LogCaptureFixture
) -> None:
    vehicle = raw("getaround-stavanger", "vehicle_status")["data"]["vehicles"][0]
    variables = {"lat": vehicle["lat"], "lon": vehicle["lon"], "radius": 5000.0, "first": 20}
    schema = build_schema(runtime.settings, compiled=True)
    context = Context.of(runtime)
    full = await schema.execute(GRAPHQL_QUERY, variable_values=variables, context_value=context)
    assert full.errors is None and full.data and full.data["vehicles"]

    plans = OperationPlans(schema)
    with caplog.at_level(logging.ERROR, logger="graphql_schema"):
        plans.learn(GRAPHQL_QUERY, None, variables)
        plan = plans.get(GRAPHQL_QUERY, None)
        assert plan is not None, "the benchmark query is no longer planned"
        assert [r.response_key for r in plan.roots] == ["vehicles"]
        planned = await plan.execute(schema._schema, context, variables)
    assert caplog.records == [], [r.getMessage() for r in caplog.records]
    assert planned is not None, "the plan gave up: every request takes the full path"
    assert planned.data == full.data
