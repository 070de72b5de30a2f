"""Rate limits on GraphQL operations of authenticated callers (API keys and riders).

Every operation is charged once, wherever it runs: ``RateLimitedSchema`` charges in
``execute`` (Strawberry's HTTP view, and the fast path's full execution) and in ``stream``
(websocket operations: each one on a socket is charged); the fast path (graphql_schema/fast_http.py)
charges before an operation plan runs, since plans bypass the schema. It is not a schema
extension on purpose: an extension that acts per request makes ``OperationPlans`` refuse every
document, which would slow anonymous search to pay for a check it never needs.

Anonymous callers are never charged here, and for them the check is one attribute test.
Over the limit: a ``RATE_LIMITED`` error with ``extensions.retryAfterSeconds`` and, over HTTP,
a ``Retry-After`` header.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from graphql import GraphQLError
from strawberry.schema.schema import StreamResult
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from app.platform.errors import DomainError
from app.platform.redis import RedisClient
from app.rate_limit import RateLimited, Subject, api_key_subject, rider_subject, take
from graphql_schema.context import Context
from graphql_schema.errors import MobilitySchema
from graphql_schema.input_guard import refuse_variables

__all__ = ["RateLimitedSchema", "charge", "charged", "retry_after_headers"]

# The context whose operation the fast path has charged already, while it runs the operation
# through the full schema: that execution must not charge it a second time.
_charged: ContextVar[Context | None] = ContextVar("mobility_rate_limit_charged", default=None)


@contextlib.contextmanager
def charged(context: Context) -> Iterator[None]:
    token = _charged.set(context)
    try:
        yield
    finally:
        _charged.reset(token)


def _redis_of(context: Context) -> tuple[RedisClient, str] | None:
    # The context carries no Redis client of its own; the booking service's is the runtime's.
    try:
        bookings = context.bookings
    except RuntimeError:  # a context built without services (tests): nothing to limit with
        return None
    return bookings.redis, bookings.keys.prefix


async def _subject(context: Context) -> Subject | None:
    try:
        principal = await context.api_key()
        if principal is not None:
            return api_key_subject(principal, context.settings)
        rider = await context.rider()
    except DomainError:
        # A credential that does not check out: the fields that need it refuse it; a search
        # with it is served as anonymous (uncharged), as before.
        return None
    return rider_subject(rider.id, context.settings) if rider is not None else None


def _limited(retry_after_seconds: int) -> GraphQLError:
    error = RateLimited(retry_after_seconds)
    return GraphQLError(
        error.message,
        extensions={"code": error.code, "retryAfterSeconds": retry_after_seconds},
        original_error=error,
    )


async def charge(context: Context) -> ExecutionResult | None:
    """Charge the context's caller one operation: None when it may run, else the answer to
    give (a ``RATE_LIMITED`` error). Call only when ``context.authorization`` is set."""
    if _charged.get() is context or not context.settings.rate_limits_enabled:
        return None
    redis = _redis_of(context)
    subject = await _subject(context) if redis is not None else None
    if redis is None or subject is None:
        return None
    decision = await take(redis[0], redis[1], subject)
    if decision.allowed:
        return None
    if context.response is not None:  # Strawberry's view merges these into its response
        context.response.headers["Retry-After"] = str(decision.retry_after_seconds)
    return ExecutionResult(data=None, errors=[_limited(decision.retry_after_seconds)])


def retry_after_headers(result: ExecutionResult) -> list[tuple[bytes, bytes]]:
    for error in result.errors or ():
        extensions = error.extensions or {}
        if extensions.get("code") == RateLimited.code:
            return [(b"retry-after", str(extensions.get("retryAfterSeconds", 1)).encode())]
    return []


async def _refused(result: ExecutionResult) -> StreamResult:
    # The websocket handler treats a first PreExecutionError as "operation refused".
    yield PreExecutionError(data=None, errors=result.errors)


async def _admit(
    variable_values: dict[str, Any] | None, context_value: Any | None
) -> ExecutionResult | None:
    """The refusal of an operation before it runs (variables too large or deep, a credentialed
    caller over its rate limit), or None to run it: the same for HTTP and websockets."""
    refused = refuse_variables(variable_values)
    if refused is None and isinstance(context_value, Context) and context_value.authorization:
        refused = await charge(context_value)
    return refused


class RateLimitedSchema(MobilitySchema):
    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        refused = await _admit(variable_values, context_value)
        if refused is not None:
            return refused
        if allowed_operation_types is not None:
            # ``execute`` serves HTTP only (websocket operations go through ``stream``), and
            # subscriptions are served over WebSocket: executed as a query, a subscription
            # field has no value and fails with an internal error.
            allowed_operation_types = set(allowed_operation_types) - {OperationType.SUBSCRIPTION}
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> StreamResult:
        # Only the variables and the context matter here; the rest goes on as it came.
        refused = await _admit(variable_values, context_value)
        if refused is not None:
            return _refused(refused)
        return await super().stream(query, variable_values, context_value, *args, **kwargs)
