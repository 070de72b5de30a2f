"""The GraphQL HTTP endpoint: Strawberry's FastAPI router, with orjson and persisted queries."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any

import orjson
from graphql import GraphQLError
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from app.persisted_queries import PersistedQueryError
from graphql_schema.context import Context

log = logging.getLogger(__name__)


class KeepAliveTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with server pings: once the connection is acknowledged, a ``ping``
    every ``ws_keepalive_seconds`` (the protocol lets either side ping; clients answer
    ``pong``). Idle sockets then carry traffic, so mobile networks, NATs and proxies that drop
    silent connections keep them open, and a dead peer is noticed by the failed send."""

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

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await super().shutdown()


class MobilityGraphQLRouter(GraphQLRouter[Context, None]):
    graphql_transport_ws_handler_class = KeepAliveTransportWSHandler
    ws_keepalive_seconds: float = 15.0

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
        if persisted is not None:
            try:
                query = await context.persisted_queries.resolve(request_data.query, persisted)
            except PersistedQueryError as exc:
                return _error(exc.code, exc.message)
            request_data = dataclasses.replace(request_data, query=query)
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )


# A plain connection_ack (no payload).
_ACK = UnsetType()
_CONNECTION_PARAMS_HELP = (
    "connection_init's payload takes one Authorization entry, a string such as "
    '"Bearer <token or API key>"'
)


def _error(code: str, message: str) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code})])
