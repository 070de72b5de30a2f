"""The schema object, with its hardening on by default."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from app.settings import Settings, get_settings
from graphql_schema.errors import MaskUnexpectedErrors, MobilitySchema
from graphql_schema.query import Query
from graphql_schema.scalars import SCALAR_MAP


def build_schema(settings: Settings) -> strawberry.Schema:
    return MobilitySchema(
        query=Query,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[
            MaskUnexpectedErrors,
            lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
            lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
            lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
        ],
    )


# For `strawberry export-schema graphql_schema.schema:schema`; limits don't change the SDL.
schema = build_schema(get_settings())
