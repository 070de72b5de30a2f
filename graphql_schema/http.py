"""The GraphQL HTTP endpoint: Strawberry's FastAPI router, with orjson and persisted queries."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from graphql import GraphQLError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from app.persisted_queries import PersistedQueryError
from graphql_schema.context import Context


class MobilityGraphQLRouter(GraphQLRouter[Context, None]):
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
