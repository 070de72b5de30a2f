"""GraphQL hardening: document size, depth, aliases and cost, costly operations at once, and
what the API reveals of its schema (GraphiQL, introspection, suggestions).

Read by graphql_schema/schema.py (limits, ``introspection_enabled``, ``suggestions_enabled``),
app/main.py (``graphiql_enabled``), app/booking/quotes.py (``max_concurrent_costly_operations``,
the slots of app/admission.COSTLY). The switches default by ``environment``
(app/platform/settings/base.py), which this class inherits.
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class GraphQLSettings(MobilityBaseSettings):
    # GraphQL hardening.
    max_query_depth: int = 10
    max_aliases: int = 30
    # What one request's root fields may cost together (graphql_schema/cost.py): tripOptions
    # and usageReport cost 10, quote and rideEndCheck 3, any other field 1.
    max_query_cost: int = Field(default=30, ge=10)
    # Anonymous expensive operations (tripOptions) running at once per process; more wait for
    # a turn, holding no database connection, so cheap queries always find one. (usageReport
    # needs an organisation's credentials, and so a rate-limited caller.)
    max_concurrent_costly_operations: int = Field(default=4, ge=1)
    max_tokens: int = 2_000
    graphiql: bool | None = None  # None: on outside production
    # Schema introspection, and "Did you mean …?" suggestions in error messages (both map the
    # schema for a stranger). None: on outside production, off in it.
    graphql_introspection: bool | None = None
    graphql_suggestions: bool | None = None

    @property
    def introspection_enabled(self) -> bool:
        if self.graphql_introspection is not None:
            return self.graphql_introspection
        return self.environment != "production"

    @property
    def suggestions_enabled(self) -> bool:
        if self.graphql_suggestions is not None:
            return self.graphql_suggestions
        return self.environment != "production"

    @property
    def graphiql_enabled(self) -> bool:
        return self.environment != "production" if self.graphiql is None else self.graphiql
