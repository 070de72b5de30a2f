"""GraphQL operations counted for /metrics: each answer over HTTP by operation name, root field
and type (``mobility_graphql_operation_duration_seconds``) and each error by its stable code
(``mobility_graphql_errors_total``), whichever path served it (the fast path or Strawberry's
view).

Every label is bounded whatever a client sends: the operation name only if the operator
listed it (app/platform/metrics.py), the root field only if the schema has it at the root of
that operation type, else ``other``.

The type and the root field come from the document's text, not a parse: the fast path's
compiled plans answer without parsing, and a parse only for a label would cost more than the
search. A small scanner reads the top level of the document (strings, block strings and
comments skipped) up to the definition the operation name selects; its answer is cached per
document. A document longer than :data:`MAX_SCANNED_CHARS` is not scanned (type ``unknown``,
field ``other``): a client must not make the counting cost more than the answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache

import strawberry
from graphql import GraphQLError

from app.platform import metrics
from app.platform.metrics import OperationType

__all__ = [
    "MAX_SCANNED_CHARS",
    "count_error",
    "describe",
    "know_root_fields",
    "know_schema",
    "observe",
]

MAX_SCANNED_CHARS = 16_384
# Documents up to this size are remembered (the few a client sends over and over).
_CACHED_DOCUMENT_CHARS = 8192

_KEYWORDS: dict[str, OperationType] = {
    "query": "query",
    "mutation": "mutation",
    "subscription": "subscription",
}
# The schema's root fields per operation type (know_root_fields, from the app factory).
_root_fields: dict[str, frozenset[str]] = {}


def know_root_fields(fields: Mapping[str, frozenset[str]]) -> None:
    """The root fields a ``field`` label may name, per operation type."""
    _root_fields.clear()
    _root_fields.update(fields)


def know_schema(schema: strawberry.Schema) -> None:
    """The root fields of ``schema`` (graphql-core's schema behind Strawberry's; the fast path
    relies on it too, and tests/graphql/test_fast_path_canary.py watches it)."""
    core = schema._schema
    roots = (
        ("query", core.query_type),
        ("mutation", core.mutation_type),
        ("subscription", core.subscription_type),
    )
    know_root_fields({kind: frozenset(t.fields) for kind, t in roots if t is not None})


def observe(
    query: str | None,
    operation_name: object,
    errors: Sequence[GraphQLError] | None,
    seconds: float,
) -> None:
    name = operation_name if isinstance(operation_name, str) else None
    kind, named, field = describe(query, name) if query else ("query", name, None)
    outcome = "error" if errors else "ok"
    known = field is not None and field in _root_fields.get(kind, frozenset())
    metrics.GRAPHQL_OPERATIONS.labels(
        metrics.operation_label(named), field if known else "other", kind, outcome
    ).observe(seconds)
    for error in errors or ():
        count_error((error.extensions or {}).get("code"))


def count_error(code: object) -> None:
    metrics.GRAPHQL_ERRORS.labels(metrics.error_code_label(code)).inc()


def describe(
    document: str, operation_name: str | None
) -> tuple[OperationType, str | None, str | None]:
    """The type, name and first root field of the operation ``operation_name`` picks
    (without one: the first operation, whose name the document may give)."""
    if len(document) > MAX_SCANNED_CHARS:
        return "unknown", operation_name, None
    if len(document) <= _CACHED_DOCUMENT_CHARS:
        return _cached_description(document, operation_name)
    return _description(document, operation_name)


@lru_cache(maxsize=1024)
def _cached_description(
    document: str, operation_name: str | None
) -> tuple[OperationType, str | None, str | None]:
    return _description(document, operation_name)


def _description(
    document: str, operation_name: str | None
) -> tuple[OperationType, str | None, str | None]:
    for keyword, name, field in _definitions(document):
        if keyword == "fragment":
            continue
        if operation_name is None or name == operation_name:
            return _KEYWORDS.get(keyword, "query"), name, field
    return "query", operation_name, None


def _definitions(document: str) -> Iterator[tuple[str, str | None, str | None]]:
    """(keyword, name, first root field) of each top-level definition, one at a time: the
    words before each ``{`` at depth 0, and the first field name inside it."""
    words: list[str] = []
    depth = 0
    pending: tuple[str, str | None] | None = None  # a definition whose first field is next
    i, n = 0, len(document)
    while i < n:
        c = document[i]
        if c == "#":  # a comment runs to the end of the line
            end = document.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c == '"':
            i = _skip_string(document, i)
            continue
        if c == "(":
            i = _skip_parens(document, i)
            continue
        if c == "{":
            if depth == 0:
                keyword = words[0] if words else "query"
                name = words[1] if len(words) > 1 and words[0] in _KEYWORDS else None
                pending = (keyword, name)
                words = []
            depth += 1
        elif c == "}":
            depth = max(depth - 1, 0)
            if depth == 0 and pending is not None:  # a selection set without a field
                yield pending[0], pending[1], None
                pending = None
        elif c.isalpha() or c == "_":
            start = i
            while i < n and (document[i].isalnum() or document[i] == "_"):
                i += 1
            word = document[start:i]
            if depth == 0:
                words.append(word)
            elif depth == 1 and pending is not None:
                # `alias: field`: the field is the name after the colon.
                j = i
                while j < n and document[j] in " \t\r\n,":
                    j += 1
                if j < n and document[j] == ":":
                    i = j + 1
                    continue
                yield pending[0], pending[1], word
                pending = None
            continue
        elif c == "." and depth == 1 and pending is not None and document.startswith("...", i):
            yield pending[0], pending[1], None  # a fragment spread first: no field to name
            pending = None
        i += 1


def _skip_string(document: str, i: int) -> int:
    if document.startswith('"""', i):
        end = document.find('"""', i + 3)
        while end > 0 and document[end - 1] == "\\":  # an escaped \"""
            end = document.find('"""', end + 3)
        return len(document) if end < 0 else end + 3
    i += 1
    while i < len(document):
        if document[i] == "\\":
            i += 2
            continue
        if document[i] in '"\n':
            return i + 1
        i += 1
    return i


def _skip_parens(document: str, i: int) -> int:
    """Past the variable definitions or arguments ``( ... )`` (they may hold strings and
    default objects)."""
    level = 0
    while i < len(document):
        c = document[i]
        if c == '"':
            i = _skip_string(document, i)
            continue
        if c == "#":
            end = document.find("\n", i)
            i = len(document) if end < 0 else end + 1
            continue
        if c == "(":
            level += 1
        elif c == ")":
            level -= 1
            if level == 0:
                return i + 1
        i += 1
    return i
