"""The GraphQL HTTP endpoint: Strawberry's FastAPI router, with orjson and persisted queries."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import orjson
from graphql import GraphQLError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types import ExecutionResult

from app.persisted_queries import PersistedQueryError
from graphql_schema.context import Context


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


def _error(code: str, message: str) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code})])
