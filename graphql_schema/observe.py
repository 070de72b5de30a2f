"""GraphQL operations counted for /metrics: each answer over HTTP by operation name and type
(``mobility_graphql_operation_duration_seconds``) and each error by its stable code
(``mobility_graphql_errors_total``), whichever path served it (the fast path or Strawberry's
view).

The type comes from the document's text, not a parse: the fast path's compiled plans answer
without parsing, and a parse only for a label would cost more than the search. A small
scanner reads the top level of the document (strings, block strings and comments skipped) for
the definition the operation name selects; its answer is cached per document.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from graphql import GraphQLError

from app.platform import metrics
from app.platform.metrics import OperationType

__all__ = ["describe", "observe", "operation_type"]

_KEYWORDS: dict[str, OperationType] = {
    "query": "query",
    "mutation": "mutation",
    "subscription": "subscription",
}


def observe(
    query: str | None,
    operation_name: str | None,
    errors: Sequence[GraphQLError] | None,
    seconds: float,
) -> None:
    kind, name = describe(query, operation_name) if query else ("query", operation_name)
    outcome = "error" if errors else "ok"
    metrics.GRAPHQL_OPERATIONS.labels(metrics.operation_label(name), kind, outcome).observe(seconds)
    for error in errors or ():
        code = (error.extensions or {}).get("code")
        metrics.GRAPHQL_ERRORS.labels(metrics.error_code_label(code)).inc()


# Documents up to this size are remembered (the few a client sends over and over); a larger
# one is scanned each time, so the cache holds at most 1,024 times this.
_CACHED_DOCUMENT_CHARS = 8192


def operation_type(document: str, operation_name: str | None) -> OperationType:
    return describe(document, operation_name)[0]


def describe(document: str, operation_name: str | None) -> tuple[OperationType, str | None]:
    """The type and name of the operation ``operation_name`` picks (without one: the first
    operation, whose name the document may give); ``query`` for the shorthand ``{ ... }`` and
    for anything the scanner cannot place."""
    if len(document) <= _CACHED_DOCUMENT_CHARS:
        return _cached_description(document, operation_name)
    return _description(document, operation_name)


@lru_cache(maxsize=1024)
def _cached_description(
    document: str, operation_name: str | None
) -> tuple[OperationType, str | None]:
    return _description(document, operation_name)


def _description(document: str, operation_name: str | None) -> tuple[OperationType, str | None]:
    for keyword, name in _top_level_definitions(document):
        if keyword == "fragment":
            continue
        if operation_name is None or name == operation_name:
            return _KEYWORDS.get(keyword, "query"), name
    return "query", operation_name


def _top_level_definitions(document: str) -> list[tuple[str, str | None]]:
    """(keyword, name) of each top-level definition: the words before each ``{`` at depth 0."""
    out: list[tuple[str, str | None]] = []
    words: list[str] = []
    depth = 0
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
        if c in "{(":
            if depth == 0 and c == "{":
                keyword = words[0] if words else "query"
                name = words[1] if len(words) > 1 and words[0] in _KEYWORDS else None
                out.append((keyword, name))
                words = []
            depth += 1 if c == "{" else 0
            if c == "(":
                i = _skip_parens(document, i)
                continue
        elif c == "}":
            depth = max(depth - 1, 0)
        elif depth == 0 and (c.isalpha() or c == "_"):
            start = i
            while i < n and (document[i].isalnum() or document[i] == "_"):
                i += 1
            words.append(document[start:i])
            continue
        i += 1
    return out


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
    """Past the variable definitions ``( ... )`` (they may hold strings and default objects)."""
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
