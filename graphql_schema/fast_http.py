"""The common GraphQL request, answered without the generic web stack.

Almost every request a map client sends is the same: ``POST /graphql`` with a JSON object
holding a query (or a persisted-query hash) and variables. For that request this middleware
does what Strawberry's view does (parse, resolve the persisted query, execute the same schema
with the same context, format the result the same way) without FastAPI's routing, dependency
solving and the view's generic request handling, which cost as much as the search itself.

Anything else (GraphiQL, GET, multipart, batches, malformed bodies, subscriptions over POST)
is handed to the FastAPI app unchanged, with the body replayed, so its behaviour and its error
answers stay exactly Strawberry's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from app.persisted_queries import PersistedQueryError
from graphql_schema import media, rate_limits
from graphql_schema.context import Context, client_address, header
from graphql_schema.errors import document_checked
from graphql_schema.input_guard import refuse_variables
from graphql_schema.observe import count_error, observe

log = logging.getLogger(__name__)

_ALLOWED = frozenset({OperationType.QUERY, OperationType.MUTATION})
_JSON_HEADERS = [(b"content-type", media.content_type(False).encode())]
_GRAPHQL_RESPONSE_HEADERS = [(b"content-type", media.content_type(True).encode())]


class GraphQLFastPath:
    def __init__(self, app: ASGIApp, *, path: str = "/graphql") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != self.path
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        # The body's size is capped at the edge (app/platform/edge.py), before this reads it.
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        result = await self._execute(scope, body)
        if result is None:
            await self.app(scope, _replay(body), send)
            return
        accept = header(scope["headers"], b"accept")
        await _respond(send, result, media.prefers_graphql_response_json(accept))

    async def _execute(self, scope: Scope, body: bytes) -> ExecutionResult | None:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        query = data.get("query")
        variables = data.get("variables")
        operation_name = data.get("operationName")
        extensions = data.get("extensions")
        if (
            (query is not None and not isinstance(query, str))
            or (variables is not None and not isinstance(variables, dict))
            or (operation_name is not None and not isinstance(operation_name, str))
            or (extensions is not None and not isinstance(extensions, dict))
        ):
            return None
        runtime = scope["app"].state.runtime
        context = Context.of(
            runtime,
            authorization=header(scope["headers"], b"authorization"),
            client_address=client_address(scope),
        )
        persisted = (extensions or {}).get("persistedQuery")
        resolved = None
        if persisted is not None:
            try:
                resolved = await context.persisted_queries.resolve(query, persisted)
            except PersistedQueryError as exc:
                count_error(exc.code)
                error = GraphQLError(exc.message, extensions={"code": exc.code})
                return ExecutionResult(data=None, errors=[error])
            query = resolved.query
        if query is None:
            return None
        started = time.perf_counter()
        result = await self._run(scope, context, query, variables, operation_name, extensions)
        if result is not None:
            observe(query, operation_name, result.errors, time.perf_counter() - started)
        if result is not None and resolved is not None and document_checked(result):
            await context.persisted_queries.register(resolved, context.client_address)
        return result

    async def _run(
        self,
        scope: Scope,
        context: Context,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        extensions: dict[str, Any] | None,
    ) -> ExecutionResult | None:
        # Plans bypass the schema, which refuses such variables and charges everywhere else
        # (graphql_schema/rate_limits.py).
        refused_input = refuse_variables(variables)
        if refused_input is not None:
            return refused_input
        if context.authorization:
            refused = await rate_limits.charge(context)
            if refused is not None:
                return refused
        state = scope["app"].state
        schema, plans = state.graphql_schema, state.operation_plans
        plan = plans.get(query, operation_name)
        if plan is not None:
            planned: ExecutionResult | None = await plan.execute(schema._schema, context, variables)
            if planned is not None:
                return planned
        try:
            # Charged above already. (A request handed to the view below is charged there
            # again; only requests that are no query or mutation at all take that way.)
            with rate_limits.charged(context):
                result: ExecutionResult = await schema.execute(
                    query,
                    variable_values=variables,
                    context_value=context,
                    operation_name=operation_name,
                    allowed_operation_types=_ALLOWED,
                    operation_extensions=extensions,
                )
        except (MissingQueryError, InvalidOperationTypeError, CannotGetOperationTypeError):
            return None  # raised before anything ran: the view gives its own answer
        if not result.errors and not plans.knows(query, operation_name):
            plans.learn(query, operation_name, variables)
        return result


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _respond(send: Send, result: ExecutionResult, graphql_response: bool) -> None:
    # The shape Strawberry's view gives a single result (graphql_schema/http.py).
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    extra = rate_limits.retry_after_headers(result) if result.errors else []
    status, body = media.shape(payload, graphql_response) if result.errors else (200, payload)
    content_type = _GRAPHQL_RESPONSE_HEADERS if graphql_response else _JSON_HEADERS
    await _send_json(send, status, body, extra, content_type)


async def _send_json(
    send: Send,
    status: int,
    payload: object,
    extra: list[tuple[bytes, bytes]] | None = None,
    content_type: list[tuple[bytes, bytes]] = _JSON_HEADERS,
) -> None:
    body = orjson.dumps(payload)
    headers = [*content_type, (b"content-length", str(len(body)).encode()), *(extra or ())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
