"""Compiled completion of lists: the GraphQL hot path without per-field dispatch.

graphql-core completes every field of every object through the same generic machinery: a
resolve-info object, a resolver call, an awaitable check and a completion step per field.
For a 50-vehicle answer with ten fields that is hundreds of dynamic calls, and it is where the
GraphQL path lost to a plain JSON endpoint (docs/performance.md).

For a validated operation, the shape of a list's items is fixed by the selection set. This
module turns that selection, once per document, into a plan: for each response key, how to read
the value (a plain attribute, or a synchronous relation from the reference snapshot) and how to
serialise it (the schema's own scalar and enum serialisers). The plan builds the same dicts
graphql-core would.

Semantics are kept by construction: a selection is only compiled when every field in it is a
plain attribute or a registered pure relation, with no arguments, no directives, no deferral and
no abstract types; anything else goes through graphql-core unchanged. Whenever a plan meets
something it does not decide by itself (a null in a non-null position, a value a scalar refuses
to serialise, any exception), it abandons the list and graphql-core completes it from scratch,
producing exactly its own errors. Plan steps only read, so running the list twice is safe.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from keyword import iskeyword
from math import isfinite
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    InlineFragmentNode,
    SelectionSetNode,
    is_leaf_type,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_schema.types import FAST_RELATIONS

log = logging.getLogger(__name__)

STRAWBERRY_DEFINITION = "strawberry-definition"
_MAX_PLANS = 512

Complete = Callable[[Any], Any]


class _Fallback(Exception):
    """The plan cannot decide this value by itself: let graphql-core complete the list."""


# Plans keyed by the identity of the field nodes (ParserCache hands out the same document for
# the same query text). Each entry keeps its nodes alive, so an id cannot be reused while the
# entry exists; None records "not compilable".
_plans: OrderedDict[tuple[Any, ...], tuple[tuple[FieldNode, ...], Any]] = OrderedDict()


class OneLaneExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Root fields one after another, for queries as for mutations (graphql-core runs a query's
    root fields concurrently). Each root resolver takes at most one database connection and
    gives it back before the next starts, so one request holds at most one connection at a
    time however many aliases it sends; an expensive field is bounded per request by the query
    cost budget (graphql_schema/cost.py) and per process by its admission gate."""

    def execute_root_grouped_field_set(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: Any,
        serially: bool,
        position_context: Any,
    ) -> Any:
        return super().execute_root_grouped_field_set(
            root_type, root_value, grouped_field_set, True, position_context
        )


class CompiledExecutionContext(OneLaneExecutionContext):
    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if type(result) is list:
            plan = self._list_plan(return_type, field_details_list)
            if plan is not None:
                try:
                    return plan(result)
                except Exception:  # _Fallback, or anything the generic path must report
                    pass
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    # -- planning ----------------------------------------------------------------------------

    def _list_plan(self, return_type: GraphQLList[Any], field_details_list: Any) -> Any:
        nodes = tuple(fd.node for fd in field_details_list)
        key = (return_type, *map(id, nodes))
        cached = _plans.get(key)
        if cached is not None:
            _plans.move_to_end(key)
            return self._bind(cached[1])
        try:
            template = self._compile_list(return_type, field_details_list)
        except Exception:  # a planning bug must cost speed, never an answer
            log.exception("could not compile a plan; graphql-core completes this selection")
            template = None
        _plans[key] = (nodes, template)
        if len(_plans) > _MAX_PLANS:
            _plans.popitem(last=False)
        return self._bind(template)

    def _bind(self, template: Any) -> Any:
        # Templates are context-free so they can be cached across requests; relation steps
        # need this request's context, bound here.
        return None if template is None else template(self.context_value)

    def _compilable_here(self, field_details_list: Any) -> bool:
        if self.middleware_manager is not None and self.middleware_manager.middlewares:
            return False  # field middleware must see every field: nothing may be skipped
        for fd in field_details_list:
            if fd.defer_usage is not None or fd.fragment_variable_values is not None:
                return False
            if fd.node.directives or has_directives(fd.node.selection_set, self.fragments):
                return False  # @include/@skip/@defer/@stream depend on variables or streaming
        return True

    def _compile_list(self, return_type: GraphQLList[Any], field_details_list: Any) -> Any:
        if not self._compilable_here(field_details_list):
            return None
        item = self._compile_type(return_type.of_type, field_details_list)
        if item is None:
            return None
        complete_item, item_non_null = item

        def template(context: Any) -> Callable[[list[Any]], list[Any]]:
            complete = complete_item(context)

            def run(values: list[Any]) -> list[Any]:
                out: list[Any] = []
                append = out.append
                for value in values:
                    if value is None:
                        if item_non_null:
                            raise _Fallback
                        append(None)
                    else:
                        append(complete(value))
                return out

            return run

        return template

    def _compile_type(
        self, graphql_type: Any, field_details_list: Any
    ) -> tuple[Callable[[Any], Complete], bool] | None:
        """(context -> completer, non-null?) for values of this type, or None."""
        non_null = isinstance(graphql_type, GraphQLNonNull)
        inner = graphql_type.of_type if non_null else graphql_type
        if is_leaf_type(inner):
            leaf = _leaf_serializer(inner)
            return (lambda _context: leaf), non_null
        if isinstance(inner, GraphQLObjectType):
            obj = self._compile_object(inner, field_details_list)
            return (obj, non_null) if obj is not None else None
        if isinstance(inner, GraphQLList):
            template = self._compile_list(inner, field_details_list)
            return (template, non_null) if template is not None else None
        return None  # interfaces and unions: resolve_type is graphql-core's business

    def _compile_object(
        self, object_type: GraphQLObjectType, field_details_list: Any
    ) -> Callable[[Any], Complete] | None:
        if object_type.is_type_of is not None:
            return None
        collected = self.collect_subfields(object_type, field_details_list)
        if collected.new_defer_usages:
            return None
        steps: list[_Step] = []
        for response_key, sub_fields in collected.grouped_field_set.items():
            node = sub_fields[0].node
            name = node.name.value
            if name == "__typename":
                steps.append(_Step(response_key, None, None, None, True, object_type.name))
                continue
            field_def = object_type.fields.get(name)
            if field_def is None or field_def.args or node.arguments:
                return None  # arguments need coercion: graphql-core's job
            completion = self._compile_type(field_def.type, sub_fields)
            if completion is None:
                return None
            complete, non_null = completion
            attribute = _attribute(field_def)
            relation = FAST_RELATIONS.get((object_type.name, name))
            if attribute is None and relation is None:
                return None
            leaf = field_def.type.of_type if non_null else field_def.type
            steps.append(
                _Step(
                    response_key,
                    attribute,
                    relation if attribute is None else None,
                    complete,
                    non_null,
                    None,
                    _leaf_kind(leaf) if is_leaf_type(leaf) else None,
                )
            )
        return _generate_object(steps)


@dataclass(frozen=True, slots=True)
class _Step:
    """One response key of an object selection: where its value comes from and how it is
    completed."""

    key: str
    attribute: str | None  # read as ``source.<attribute>`` (Strawberry's default resolver)
    relation: Callable[[Any, Any], Any] | None  # or computed from (source, context)
    complete: Callable[[Any], Complete] | None  # context -> completer of a non-null value
    non_null: bool
    typename: str | None = None  # the constant answer of __typename
    leaf: str | None = None  # "str", "float", "bool", "int": values checked inline


def _generate_object(steps: list[_Step]) -> Callable[[Any], Complete]:
    """Python source for one selection's completion, compiled once per selection: attribute
    reads, type checks and the dict literal inline, the way graphql-jit generates JavaScript.

    Per value it decides exactly what the generic steps decided: a null in a non-null position
    or a value its serialiser refuses raises ``_Fallback``; a plain value of the scalar's own
    Python type passes unchanged; anything else goes through the schema's serialiser.
    """
    lines = ["def bind(context, " + ", ".join(f"c{i}, r{i}" for i in range(len(steps))) + "):"]
    for i, step in enumerate(steps):
        if step.relation is not None:
            lines.append(f"    get{i} = r{i}")
        if step.complete is not None:
            lines.append(f"    done{i} = c{i}(context)")
    lines.append("    def run(source):")
    for i, step in enumerate(steps):
        if step.typename is not None:
            continue
        read = f"source.{step.attribute}" if step.attribute else f"get{i}(source, context)"
        lines.append(f"        v{i} = {read}")
        lines.append(f"        if v{i} is None:")
        lines.append("            raise Fallback" if step.non_null else "            pass")
        check = _INLINE_CHECKS.get(step.leaf or "")
        if check is not None:
            lines.append(f"        elif not ({check.format(v=f'v{i}')}):")
        else:
            lines.append("        else:")
        lines.append(f"            v{i} = done{i}(v{i})")
    entries = ", ".join(
        f"{step.key!r}: {step.typename!r}" if step.typename is not None else f"{step.key!r}: v{i}"
        for i, step in enumerate(steps)
    )
    lines.append(f"        return {{{entries}}}")
    lines.append("    return run")
    namespace: dict[str, Any] = {"Fallback": _Fallback, "isfinite": isfinite}
    # Safe to compile: the source holds only Python identifiers checked by _attribute, numbered
    # locals and response keys written as repr() literals; values are passed in, never spliced.
    exec(compile("\n".join(lines), "<compiled selection>", "exec"), namespace)
    bind = namespace["bind"]
    args: list[Any] = []
    for step in steps:
        args.extend((step.complete or _no_completion, step.relation))

    def template(context: Any) -> Complete:
        return bind(context, *args)  # type: ignore[no-any-return]

    return template


def _no_completion(_context: Any) -> None:
    return None


# Values that need no serialisation, by scalar: what each built-in serialiser returns
# unchanged. Everything else (ints for a Float, enum members, custom scalars) is serialised.
_INLINE_CHECKS = {
    "str": "type({v}) is str",
    "float": "type({v}) is float and isfinite({v})",
    "bool": "type({v}) is bool",
    "int": "type({v}) is int and -2147483648 <= {v} <= 2147483647",
}


def _leaf_kind(leaf_type: Any) -> str | None:
    if isinstance(leaf_type, GraphQLEnumType):
        return None
    return {"String": "str", "ID": "str", "Float": "float", "Boolean": "bool", "Int": "int"}.get(
        leaf_type.name
    )


def _attribute(field_def: Any) -> str | None:
    """The attribute Strawberry's default resolver reads for this field, if it has one."""
    definition = (field_def.extensions or {}).get(STRAWBERRY_DEFINITION)
    if definition is None or not getattr(field_def.resolve, "_is_default", False):
        return None
    name = definition.python_name
    usable = isinstance(name, str) and name.isidentifier() and not iskeyword(name)
    return name if usable else None


def _leaf_serializer(leaf_type: Any) -> Complete:
    """The type's own serializer, short-circuited for the values that need no work: a float
    that is finite, a string, a boolean, an int in range, a member of the enum."""
    serialize = leaf_type.serialize

    def checked(value: Any) -> Any:
        serialized = serialize(value)
        if serialized is None:
            raise _Fallback  # graphql-core reports this as an error
        return serialized

    if isinstance(leaf_type, GraphQLEnumType):
        names = {v.value: name for name, v in leaf_type.values.items()}

        def enum(value: Any) -> Any:
            name = names.get(value)
            return name if name is not None else checked(value)

        return enum
    if leaf_type is GraphQLFloat or leaf_type.name == "Float":
        return lambda v: v if type(v) is float and isfinite(v) else checked(v)
    if leaf_type.name in ("String", "ID"):
        return lambda v: v if type(v) is str else checked(v)
    if leaf_type.name == "Boolean":
        return lambda v: v if type(v) is bool else checked(v)
    if leaf_type.name == "Int":
        return lambda v: v if type(v) is int and _INT_MIN <= v <= _INT_MAX else checked(v)
    return checked


_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def has_directives(selection_set: SelectionSetNode | None, fragments: Any) -> bool:
    if selection_set is None:
        return False
    stack: list[Iterable[Any]] = [selection_set.selections]
    seen: set[str] = set()
    while stack:
        for selection in stack.pop():
            if selection.directives:
                return True
            if isinstance(selection, FieldNode | InlineFragmentNode):
                if selection.selection_set is not None:
                    stack.append(selection.selection_set.selections)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                details = fragments.get(name)
                if details is None or name in seen:
                    continue
                seen.add(name)
                # graphql-core keeps FragmentDetails(definition, ...) per fragment name.
                fragment = getattr(details, "definition", details)
                if fragment.directives:
                    return True
                stack.append(fragment.selection_set.selections)
    return False
