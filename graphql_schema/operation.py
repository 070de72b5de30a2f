"""Whole-operation plans for documents already executed successfully.

After ``graphql_schema/execution.py`` the remaining cost of a nearby search was GraphQL's own
scaffolding around its single root field: Strawberry's execution wrapper and extension hooks,
graphql-core's executor, field collection, awaitable plumbing (docs/performance.md). For a query
text that has already been parsed, validated and executed without errors, this module keeps a
plan: the operation's root fields, the compiled completion of each, and nothing else. Executing
the plan still uses graphql-core for what carries semantics (variable coercion, argument
coercion, the resolve info the resolver sees) and the resolvers themselves; it skips only what is
the same for every execution of that text.

Scope, by construction: query operations whose root fields are registered in ``FAST_ROOTS`` and
whose selections compile, in documents without directives. The plan answers only successful
executions: any error (a variable that does not coerce, a resolver that raises, a value a plan
cannot complete) returns ``None`` and the caller executes the request through the full schema,
which produces exactly its own errors. Resolvers in ``FAST_ROOTS`` only read, so running one
twice is safe. Schema extensions other than the known, per-document ones are a reason to refuse.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLField,
    GraphQLObjectType,
    OperationDefinitionNode,
    OperationType,
    parse,
)
from graphql.execution.collect_fields import collect_fields
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.types import ExecutionResult

from graphql_schema.execution import CompiledExecutionContext, has_directives

log = logging.getLogger(__name__)

# Root fields whose resolvers only read: safe to run again when a plan gives up.
FAST_ROOTS = frozenset(
    {"vehicles", "vehiclesConnection", "vehicle", "stations", "geofencingZones", "providers"}
)
_MAX_PLANS = 256
# Extensions whose effect depends only on the document (parsing, validation, caches) or only on
# errors, which plans never produce: skipping them for a learned document changes nothing.
PER_DOCUMENT_EXTENSIONS = frozenset(
    {
        "MaskUnexpectedErrors",
        "MaxTokensLimiter",
        "AddValidationRules",
        "ParserCache",
        "StreamSafeParserCache",  # graphql_schema/schema.py
        "ValidationCache",
    }
)


@dataclass(frozen=True, slots=True)
class _Root:
    response_key: str
    field_def: GraphQLField
    field_details: Any  # graphql-core FieldDetailsList
    complete: Any  # context -> completer
    non_null: bool


@dataclass(frozen=True, slots=True)
class OperationPlan:
    document: DocumentNode
    operation_name: str | None
    query_type: GraphQLObjectType
    roots: tuple[_Root, ...]

    async def execute(
        self, schema: Any, context: Any, variables: dict[str, Any] | None
    ) -> ExecutionResult | None:
        executor = CompiledExecutionContext.build(
            schema,
            self.document,
            None,
            context,
            variables,
            self.operation_name,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
        )
        if isinstance(executor, list):
            return None  # variables do not coerce: the full path reports it
        data: dict[str, Any] = {}
        try:
            for root in self.roots:
                nodes = [fd.node for fd in root.field_details]
                info = executor.build_resolve_info(
                    root.field_def,
                    nodes,
                    self.query_type,
                    Path(None, root.response_key, self.query_type.name),
                )
                args = get_argument_values(root.field_def, nodes[0], executor.variable_values)
                value = root.field_def.resolve(None, info, **args)  # type: ignore[misc]
                if optimized_is_awaitable(value):
                    value = await value
                if value is None:
                    if root.non_null:
                        return None
                    data[root.response_key] = None
                else:
                    data[root.response_key] = root.complete(context)(value)
        except Exception:  # the full path will raise the same and report it properly
            return None
        return ExecutionResult(data=data, errors=None)


class OperationPlans:
    """Plans by (query text, operation name), learned from successful executions."""

    def __init__(self, schema: Any) -> None:
        self._schema = schema
        self._gql = schema._schema
        self._plans: OrderedDict[tuple[str, str | None], OperationPlan | None] = OrderedDict()

    def get(self, query: str, operation_name: str | None) -> OperationPlan | None:
        return self._plans.get((query, operation_name))

    def knows(self, query: str, operation_name: str | None) -> bool:
        return (query, operation_name) in self._plans

    def learn(self, query: str, operation_name: str | None, variables: Any) -> None:
        """Called after ``query`` executed without errors; remembers a plan or a refusal."""
        key = (query, operation_name)
        try:
            plan = self._compile(query, operation_name, variables)
        except Exception:  # a planning bug must cost speed, never an answer
            log.exception("could not plan an operation; it keeps the full execution path")
            plan = None
        self._plans[key] = plan
        if len(self._plans) > _MAX_PLANS:
            self._plans.popitem(last=False)

    def _compile(
        self, query: str, operation_name: str | None, variables: Any
    ) -> OperationPlan | None:
        if {type(e).__name__ for e in self._schema.get_extensions()} - PER_DOCUMENT_EXTENSIONS:
            return None  # an extension that may act per request: every request goes through it
        document = parse(query)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is not None:
            operations = [o for o in operations if o.name and o.name.value == operation_name]
        if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
            return None
        if any(has_directives(d.selection_set, {}) or d.directives for d in operations):
            return None
        if any(
            has_directives(getattr(d, "selection_set", None), {}) or getattr(d, "directives", None)
            for d in document.definitions
            if not isinstance(d, OperationDefinitionNode)
        ):
            return None
        executor = CompiledExecutionContext.build(
            self._gql, document, None, None, variables, operation_name
        )
        if not isinstance(executor, CompiledExecutionContext):
            return None
        query_type = self._gql.query_type
        collected = collect_fields(
            self._gql, executor.fragments, executor.variable_values, query_type, operations[0]
        )
        if collected.new_defer_usages:
            return None
        roots = []
        for response_key, field_details in collected.grouped_field_set.items():
            name = field_details[0].node.name.value
            field_def = query_type.fields.get(name)
            if name not in FAST_ROOTS or field_def is None or field_def.resolve is None:
                return None
            compiled = executor._compile_type(field_def.type, field_details)
            if compiled is None:
                return None
            complete, non_null = compiled
            roots.append(_Root(response_key, field_def, field_details, complete, non_null))
        return OperationPlan(document, operation_name, query_type, tuple(roots))
