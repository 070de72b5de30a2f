"""The GraphQL HTTP endpoint: Strawberry's FastAPI router, with orjson and persisted queries."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from cross_web import HTTPException
from fastapi import Request, Response
from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.unset import UNSET, UnsetType

from app.persisted_queries import PersistedQueryError
from app.platform import metrics
from app.rest.web_assets import WebAssets
from graphql_schema import media
from graphql_schema.context import Context
from graphql_schema.errors import OPERATION_NOT_FOUND, assign_code, document_checked
from graphql_schema.observe import count_error, observe

log = logging.getLogger(__name__)


class TextFrameWebSocketAdapter(ASGIWebSocketAdapter):
    """Every protocol message as a WebSocket *text* frame. graphql-transport-ws messages are
    JSON text; browsers hand binary frames to a client as Blobs, which graphql-ws (behind
    Apollo, urql and Relay) rejects ("Message is missing the 'type' property"). Strawberry
    sends bytes when the view's ``encode_json`` returns bytes, as ours does for HTTP."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class KeepAliveTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with server pings: once the connection is acknowledged, a ``ping``
    every ``ws_keepalive_seconds`` (the protocol lets either side ping; clients answer
    ``pong``). Idle sockets then carry traffic, so mobile networks, NATs and proxies that drop
    silent connections keep them open, and a dead peer is noticed by the failed send.

    A document that cannot run (a syntax error, too deep, too many tokens, an unknown
    operation) is answered with an ``error`` message carrying our stable ``extensions.code``,
    as the same document gets over HTTP. Strawberry closes the whole socket (4400) for a
    syntax error or an unknown operation instead, which ends every other subscription on it
    and leaves the client with a close reason it cannot classify."""

    _pinger: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        interval = getattr(self.view, "ws_keepalive_seconds", 0.0)
        if self.connection_acknowledged and interval > 0 and self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_every(interval), name="ws-keepalive")

    async def _ping_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.send_message({"type": "ping", "payload": {"keepAlive": True}})
            except Exception:  # the socket is gone: the handler's own loop ends it
                return

    async def handle(self) -> None:
        connections = metrics.WEBSOCKET_CONNECTIONS.labels("graphql-transport-ws")
        connections.inc()
        try:
            await super().handle()
        finally:
            connections.dec()

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        running = metrics.SUBSCRIPTIONS.labels(metrics.operation_label(operation.operation_name))
        running.inc()
        try:
            await super().run_operation(operation)
        finally:
            running.dec()

    async def _handle_pre_execution_error(
        self, operation: Operation[Context, None], result: PreExecutionError
    ) -> None:
        assert result.errors
        for error in result.errors:
            assign_code(error)
        await operation.send_initial_errors(result.errors)

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await super().shutdown()


class MobilityGraphQLRouter(GraphQLRouter[Context, None]):
    graphql_transport_ws_handler_class = KeepAliveTransportWSHandler
    websocket_adapter_class = TextFrameWebSocketAdapter
    ws_keepalive_seconds: float = 15.0
    # GraphiQL from our own assets (app/rest/web_assets.py), not Strawberry's page, which loads
    # React and GraphiQL from a public CDN and stays blank without internet.
    web_assets: WebAssets | None = None

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Strawberry answers a malformed request with a plain-text reason; ours carry a
        stable ``extensions.code`` in a GraphQL error body, like every other error."""
        try:
            return await super().run(request, context, root_value)
        except HTTPException as exc:
            return _http_error(exc, request)

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        request_data = kwargs.get("request_data")
        if isinstance(request_data, GraphQLRequestData) and request_data.protocol != "http":
            # multipart or server-sent-event subscriptions: served over WebSocket only.
            raise HTTPException(400, SUBSCRIPTIONS_OVER_WEBSOCKET)
        return await super().execute_operation(*args, **kwargs)

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry lets a body that is JSON but no object (null, 5, "x") or not UTF-8 fail
        # later with an internal error; both are the client's mistake.
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError as exc:  # also raised for invalid UTF-8
            raise HTTPException(400, "Unable to parse request body as JSON") from exc
        if not isinstance(decoded, dict | list):
            raise HTTPException(400, _NOT_AN_OBJECT)
        return decoded

    async def get_sub_response(self, request: Request) -> Response:
        sub_response = await super().get_sub_response(request)
        # Strawberry's create_response does not see the request: the negotiated media type
        # travels on the per-request sub-response.
        setattr(
            sub_response,
            _WANTS_GRAPHQL_RESPONSE,
            media.prefers_graphql_response_json(request.headers.get("accept")),
        )
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        wanted = bool(getattr(sub_response, _WANTS_GRAPHQL_RESPONSE, False))
        status = sub_response.status_code or 200
        if isinstance(response_data, dict):
            shaped_status, body = media.shape(dict(response_data), wanted)
            status = max(status, shaped_status)
        else:  # a batch (off by default): one status cannot describe several results
            body = response_data  # type: ignore[assignment]
        response = Response(
            self.encode_json(body), status_code=status, media_type=media.content_type(wanted)
        )
        response.headers.raw.extend(
            (k, v) for k, v in sub_response.headers.raw if k != b"content-type"
        )
        if isinstance(response_data, dict) and "retry-after" not in response.headers:
            errors: list[dict[str, Any]] = list(response_data.get("errors") or ())  # type: ignore[arg-type]
            for error in errors:
                seconds = (error.get("extensions") or {}).get("retryAfterSeconds")
                if seconds is not None:  # a limit raised by a resolver (password attempts)
                    response.headers["Retry-After"] = str(seconds)
                    break
        return response

    def should_render_graphql_ide(self, request: Any) -> bool:
        # GraphiQL keeps its query in the address (/graphql?query=…) so a link or a reload
        # reopens it; Strawberry would execute that query for a browser and show raw JSON. A
        # browser's navigation gets the page; a client's GET (JSON types or curl's */*) still
        # runs the query, as GraphQL over HTTP asks.
        if (
            self.graphql_ide is not None
            and request.method == "GET"
            and request.query_params.get("query") is not None
        ):
            return media.asks_for_a_page(request.headers.get("accept"))
        return super().should_render_graphql_ide(request)

    async def render_graphql_ide(self, request: Any) -> Any:
        if self.web_assets is None:
            return await super().render_graphql_ide(request)
        return self.web_assets.graphiql_page()

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Credentials in ``connection_init``'s payload (``{"Authorization": "Bearer …"}``),
        for clients that cannot set headers on a websocket (browsers cannot). They serve
        exactly as the header does; a socket giving both must give the same. Only their
        shape is checked here: each operation resolves them afresh, with its usual codes."""
        params = context.connection_params or {}
        given = [v for k, v in params.items() if k.lower() == "authorization"]
        if not given:
            return _ACK
        if len(given) > 1 or not isinstance(given[0], str) or not 0 < len(given[0]) <= 4096:
            # The socket is closed with 4403 (the protocol's "Forbidden"); the payload below
            # is what our logs say, as the protocol has no way to carry it to the client.
            log.info("websocket refused: %s", _CONNECTION_PARAMS_HELP)
            raise ConnectionRejectionError(
                {"code": "INVALID_CONNECTION_PARAMS", "message": _CONNECTION_PARAMS_HELP}
            )
        if context.authorization and context.authorization != given[0]:
            log.info("websocket refused: two different credentials")
            raise ConnectionRejectionError(
                {
                    "code": "INVALID_CONNECTION_PARAMS",
                    "message": "the Authorization header and connection_init's Authorization "
                    "differ; send one of them",
                }
            )
        context.authorization = given[0]
        return _ACK

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        persisted = (request_data.extensions or {}).get("persistedQuery")
        resolved = None
        if persisted is not None:
            try:
                resolved = await context.persisted_queries.resolve(request_data.query, persisted)
            except PersistedQueryError as exc:
                count_error(exc.code)
                return _error(exc.code, exc.message)
            request_data = dataclasses.replace(request_data, query=resolved.query)
        started = time.perf_counter()
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        observe(
            request_data.query,
            request_data.operation_name,
            result.errors,
            time.perf_counter() - started,
        )
        if resolved is not None and document_checked(result):
            await context.persisted_queries.register(resolved, context.client_address)
        return result


_WANTS_GRAPHQL_RESPONSE = "_mobility_graphql_response_json"

_NOT_AN_OBJECT = 'the request body must be a JSON object such as {"query": "{ __typename }"}'
SUBSCRIPTIONS_OVER_WEBSOCKET = (
    "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql, not over HTTP"
)

# Strawberry's reasons for refusing a request, which it gives as plain text, to our codes (and
# the status the GraphQL-over-HTTP spec asks for where Strawberry's differs).
_HTTP_ERRORS: tuple[tuple[str, str, int | None], ...] = (
    ("Unable to parse request body as JSON", "INVALID_REQUEST_BODY", None),
    (_NOT_AN_OBJECT, "INVALID_REQUEST_BODY", None),
    ("The GraphQL operation's", "INVALID_REQUEST_BODY", None),  # query/variables not typed
    ("Unable to parse the multipart body", "INVALID_REQUEST_BODY", None),
    ("No GraphQL query found", "MISSING_QUERY", None),
    ("Unknown operation named", OPERATION_NOT_FOUND, None),
    ("Can't get GraphQL operation type", OPERATION_NOT_FOUND, None),
    ("mutations are not allowed when using GET", "MUTATION_OVER_GET", 405),
    ("subscriptions are not allowed", "SUBSCRIPTION_OVER_HTTP", None),
    (SUBSCRIPTIONS_OVER_WEBSOCKET, "SUBSCRIPTION_OVER_HTTP", None),
    ("only supports GET and POST", "METHOD_NOT_ALLOWED", None),
    ("Unsupported content type", "UNSUPPORTED_MEDIA_TYPE", 415),
    ("Batching is not enabled", "BATCHING_DISABLED", None),
    ("Too many operations", "BATCHING_DISABLED", None),
)


def _http_error(exc: HTTPException, request: Any) -> Response:
    code, status = "BAD_REQUEST", exc.status_code
    for needle, mapped, mapped_status in _HTTP_ERRORS:
        if needle in exc.reason:
            code, status = mapped, mapped_status or exc.status_code
            break
    message = exc.reason
    if code == "SUBSCRIPTION_OVER_HTTP":
        message = SUBSCRIPTIONS_OVER_WEBSOCKET
    headers = {"Allow": "POST"} if code == "MUTATION_OVER_GET" else None
    wanted = media.prefers_graphql_response_json(request.headers.get("accept"))
    count_error(code)
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=media.content_type(wanted),
        headers=headers,
    )


# A plain connection_ack (no payload).
_ACK = UnsetType()
_CONNECTION_PARAMS_HELP = (
    "connection_init's payload takes one Authorization entry, a string such as "
    '"Bearer <token or API key>"'
)


def _error(code: str, message: str) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code})])
