"""The schema object, with its hardening on by default."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import strawberry
from graphql import ASTValidationRule, GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_limit
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit
from strawberry.schema.config import StrawberryConfig

from app.platform.settings import Settings, get_settings
from graphql_schema.cost import cost_limit
from graphql_schema.execution import CompiledExecutionContext, OneLaneExecutionContext
from graphql_schema.input_guard import NoNulInStrings
from graphql_schema.mutation import Mutation
from graphql_schema.query import Query
from graphql_schema.rate_limits import RateLimitedSchema
from graphql_schema.scalars import SCALAR_MAP
from graphql_schema.subscription import Subscription


class StreamSafeParserCache(ParserCache):
    """Strawberry's ParserCache parses in its ``on_parse`` hook, outside the ``try`` that turns
    a syntax error into a pre-execution error. ``execute`` (HTTP) copes; ``stream`` (every
    operation on a websocket) lets the error escape, and the socket handler then sends a bare
    ``complete``: the client never learns why. A document that does not parse is left for
    Strawberry to parse again inside that ``try``, so both transports answer with the error."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


def build_schema(settings: Settings, *, compiled: bool = True) -> strawberry.Schema:
    """``compiled=False`` executes through graphql-core alone (tests compare the two)."""
    # The depth and alias rules are built once: ValidationCache keys on the rule classes, and
    # QueryDepthLimiter / MaxAliasesLimiter build new ones per instance, so as per-request
    # extensions they would make every request miss the cache and re-validate.
    limits: list[type[ASTValidationRule]] = [
        depth_limit(settings.max_query_depth, None),
        alias_limit(settings.max_aliases),
        cost_limit(settings.max_query_cost),
        NoNulInStrings,
    ]
    if not settings.introspection_enabled:
        limits.append(NoSchemaIntrospectionCustomRule)
    schema = RateLimitedSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        execution_context_class=CompiledExecutionContext if compiled else OneLaneExecutionContext,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
            lambda: AddValidationRules(limits),
            lambda: StreamSafeParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
        ],
    )
    schema.hide_suggestions = not settings.suggestions_enabled
    return schema


# For `python -m graphql_schema.export`; limits don't change the SDL.
schema = build_schema(get_settings())
