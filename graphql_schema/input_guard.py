"""Strings no part of the service can hold: the NUL character (U+0000).

PostgreSQL's text cannot store it, so a NUL that reaches a query fails it with an internal
error instead of telling the client what was wrong. It is refused here, once for every field
and transport, as the client's mistake (``INVALID_CHARACTERS``): in the document's literals by
a validation rule (cached with the document), and in the variables before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import GraphQLError, StringValueNode, ValidationRule
from strawberry.types import ExecutionResult

__all__ = ["INVALID_CHARACTERS", "NoNulInStrings", "refuse_variables"]

INVALID_CHARACTERS = "INVALID_CHARACTERS"
_NUL = "\x00"
_MESSAGE = "strings may not contain the NUL character (U+0000)"


class NoNulInStrings(ValidationRule):
    def enter_string_value(self, node: StringValueNode, *_args: Any) -> None:
        if _NUL in node.value:
            self.report_error(GraphQLError(_MESSAGE, node, extensions={"code": INVALID_CHARACTERS}))


def _has_nul(value: object, depth: int = 0) -> bool:
    if isinstance(value, str):
        return _NUL in value
    if depth > 64:  # variables nest as deep as input types do; far less than this
        return False
    if isinstance(value, Mapping):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def refuse_variables(variables: Mapping[str, Any] | None) -> ExecutionResult | None:
    """The answer for variables holding a NUL anywhere, or None when they may run."""
    if not variables or not _has_nul(variables):
        return None
    error = GraphQLError(f"variables: {_MESSAGE}", extensions={"code": INVALID_CHARACTERS})
    return ExecutionResult(data=None, errors=[error])
