"""Every GraphQL error gets a stable ``extensions.code``; unexpected errors are masked.

Both happen in ``MobilitySchema.process_errors``, which Strawberry calls for parse, validation
and execution errors alike, on every transport. (A schema extension's ``on_operation`` would not
do: it does not see parse errors when ``ParserCache`` is on, and over a websocket it runs only
after the results were sent.)
"""

from __future__ import annotations

import logging
import re

import strawberry
from graphql.error import GraphQLError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError

from app.platform.errors import DomainError
from app.rate_limit import RateLimited

log = logging.getLogger(__name__)

INTERNAL = "INTERNAL_SERVER_ERROR"
OPERATION_NOT_FOUND = "OPERATION_NOT_FOUND"

# graphql-core and Strawberry's limiters report without codes; classify by their wording.
_GRAPHQL_CODES = (
    # "Syntax Error: Document contains more than N tokens", not any message with "more than"
    # in it (a string argument quoted in a validation error, say).
    ("Document contains more than", "TOO_MANY_TOKENS"),
    ("Syntax Error", "GRAPHQL_PARSE_FAILED"),
    ("exceeds maximum operation depth", "QUERY_TOO_DEEP"),
    ("aliases found", "TOO_MANY_ALIASES"),
    ("Variable '$", "BAD_USER_INPUT"),
)


def error_code(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, DomainError):
        return original.code
    if isinstance(original, CannotGetOperationTypeError):
        # No operation of the requested name (or several and none named): the client's
        # document, not our failure.
        return OPERATION_NOT_FOUND
    if isinstance(original, InvalidOperationTypeError):
        return "OPERATION_TYPE_NOT_ALLOWED"  # e.g. a mutation over GET
    if original is None or isinstance(original, GraphQLError):
        if error.path is not None:
            # Raised while executing a field (e.g. a value that does not serialize): ours.
            return INTERNAL
        for needle, code in _GRAPHQL_CODES:
            if needle in error.message:
                return code
        return "GRAPHQL_VALIDATION_FAILED"
    return INTERNAL


def document_checked(result: ExecutionResult) -> bool:
    """Whether this result's document parsed and validated against the schema (whatever
    happened when it ran): a pre-execution error is neither, and a request refused for its
    caller (rate limited) or its variables (graphql_schema/input_guard.py) never got as far as
    validating."""
    if isinstance(result, PreExecutionError):
        return False
    return not any(
        (e.extensions or {}).get("code") in _REFUSED_BEFORE_VALIDATION for e in result.errors or ()
    )


_REFUSED_BEFORE_VALIDATION = frozenset({"RATE_LIMITED", "INVALID_CHARACTERS"})


def assign_code(error: GraphQLError) -> str:
    code = (error.extensions or {}).get("code") or error_code(error)
    extensions = {**(error.extensions or {}), "code": code}
    if isinstance(error.original_error, RateLimited):
        # Wherever it was raised (a per-caller limit, password attempts): when to try again.
        extensions["retryAfterSeconds"] = error.original_error.retry_after_seconds
    error.extensions = extensions
    return str(code)


_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class MobilitySchema(strawberry.Schema):
    # Set from MOBILITY_GRAPHQL_SUGGESTIONS: "Did you mean 'x'?" names fields of the schema
    # to whoever guesses, so production leaves it out (introspection being off there too).
    hide_suggestions: bool = False

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Every error gets its code; an unexpected one is logged whole and replaced, in the
        result's own list, by "Unexpected error.". Strawberry calls this for every result on
        every transport (HTTP, each websocket message, each subscription event) before it is
        sent: one place, so no transport can leak an exception's text (SQL, hosts, paths)."""
        for index, error in enumerate(errors):
            if self.hide_suggestions and error.path is None:
                error.message = _SUGGESTION.sub("", error.message)
            if assign_code(error) == INTERNAL:
                log.error("unexpected error at %s", error.path, exc_info=error.original_error)
                errors[index] = _masked(error)


def _masked(error: GraphQLError) -> GraphQLError:
    if assign_code(error) != INTERNAL:
        return error
    return GraphQLError(
        "Unexpected error.",
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": INTERNAL},
    )
