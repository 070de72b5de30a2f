"""Root mutation: provider administration, for staff tokens with the ADMIN role only.

Anyone else gets ``FORBIDDEN`` before any input is looked at. Each mutation is one transaction;
errors carry the admin service's codes (``PROVIDER_NOT_FOUND``, ``PROVIDER_EXISTS``,
``INVALID_PROVIDER_ID``, ``INVALID_PROVIDER_CONFIG``, ``INVALID_CREDENTIALS``). Feed overrides are
part of the config (validated by the adapter with it); ``setProviderOverrides`` replaces them
alone. Operator
credentials go in and never come out: a provider shows only which kind it has.
"""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app import provider_admin as admin
from app.platform.errors import InvalidInput, NotFound
from graphql_schema.accounts import AccountMutation
from graphql_schema.api_keys import ApiKeyMutation
from graphql_schema.booking import BookingAdminMutation, BookingMutation
from graphql_schema.context import Context
from graphql_schema.organisations import OrganisationMutation
from graphql_schema.policies import PolicyMutation
from graphql_schema.provider_types import Provider
from graphql_schema.transit_admin import TransitAdminMutation
from graphql_schema.webhooks import WebhookMutation

log = logging.getLogger(__name__)

Info = strawberry.Info[Context, None]


@strawberry.input(description="A new provider. `config` is the adapter's (see docs/adapters.md).")
class ProviderInput:
    id: strawberry.ID
    adapter: str = "gbfs"
    config: JSON
    name: str | None = None
    enabled: bool = True


@strawberry.input(description="Changes to a provider; fields left out stay as they are.")
class ProviderUpdateInput:
    name: str | None = None
    adapter: str | None = None
    config: JSON | None = None


@strawberry.input
class ApiKeyInput:
    header: str
    value: str


@strawberry.input
class OAuth2ClientCredentialsInput:
    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None


@strawberry.input(description="Exactly one kind of credentials for an operator's API.")
class OperatorCredentialsInput:
    bearer_token: str | None = None
    api_key: ApiKeyInput | None = None
    oauth2_client_credentials: OAuth2ClientCredentialsInput | None = None

    def to_kind_and_values(self) -> tuple[str, dict[str, Any]]:
        given: list[tuple[str, dict[str, Any]]] = []
        if self.bearer_token is not None:
            given.append(("bearer_token", {"token": self.bearer_token}))
        if self.api_key is not None:
            given.append(("api_key", {"header": self.api_key.header, "value": self.api_key.value}))
        if self.oauth2_client_credentials is not None:
            o = self.oauth2_client_credentials
            given.append(
                (
                    "oauth2_client_credentials",
                    {
                        "token_url": o.token_url,
                        "client_id": o.client_id,
                        "client_secret": o.client_secret,
                        "scope": o.scope,
                    },
                )
            )
        if len(given) != 1:
            raise InvalidInput(
                "give exactly one of bearerToken, apiKey, oauth2ClientCredentials",
                code="INVALID_CREDENTIALS",
            )
        return given[0]


def _config(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput("config must be a JSON object", code="INVALID_PROVIDER_CONFIG")
    return value


async def _provider(info: Info, slug: str) -> Provider:
    provider = await info.context.provider_admin.get(slug)
    if provider is None:
        raise NotFound(f"no provider {slug!r}", code="PROVIDER_NOT_FOUND")
    return Provider.from_model(provider, info.context.settings)


def _changed(info: Info) -> None:
    # Reference data and search's provider sets (enabled, private) are cached per process;
    # this one sees the change at once, the others within their few seconds.
    info.context.reference.invalidate()
    info.context.search.invalidate()


async def _changed_provider(info: Info, slug: str) -> Provider:
    """A changed provider as it now is, once this process's caches have let the old go."""
    _changed(info)
    return await _provider(info, slug)


@strawberry.type
class Mutation(
    AccountMutation,
    BookingMutation,
    BookingAdminMutation,
    OrganisationMutation,
    WebhookMutation,
    ApiKeyMutation,
    PolicyMutation,
    TransitAdminMutation,
):
    @strawberry.mutation(description="Add a provider (ADMIN). Its first sync is due at once.")
    async def add_provider(self, info: Info, input: ProviderInput) -> Provider:
        viewer = await info.context.require_admin()
        await info.context.provider_admin.add(
            slug=str(input.id),
            name=input.name,
            adapter=input.adapter,
            config=_config(input.config),
            enabled=input.enabled,
        )
        log.info("provider %s added by %s", input.id, viewer.name)
        return await _changed_provider(info, str(input.id))

    @strawberry.mutation(description="Change a provider's name, adapter or config (ADMIN).")
    async def update_provider(
        self, info: Info, id: strawberry.ID, input: ProviderUpdateInput
    ) -> Provider:
        viewer = await info.context.require_admin()
        changes = admin.ProviderUpdate(
            name=input.name,
            adapter=input.adapter,
            config=_config(input.config) if input.config is not None else None,
        )
        await info.context.provider_admin.update(str(id), changes)
        log.info("provider %s updated by %s", id, viewer.name)
        return await _changed_provider(info, str(id))

    @strawberry.mutation(
        description="Replace a provider's feed overrides, keeping the rest of its config "
        "(ADMIN); null removes them. Validated with the config as a whole (a bad one is "
        "INVALID_PROVIDER_CONFIG and nothing changes); they apply from its next sync "
        "(syncProvider makes that now). Format: docs/adapters.md."
    )
    async def set_provider_overrides(
        self, info: Info, id: strawberry.ID, overrides: JSON | None
    ) -> Provider:
        viewer = await info.context.require_admin()
        if overrides is not None and not isinstance(overrides, dict):
            raise InvalidInput("overrides must be a JSON object", code="INVALID_PROVIDER_CONFIG")
        await info.context.provider_admin.set_overrides(str(id), overrides or None)
        log.info("overrides of provider %s set by %s", id, viewer.name)
        return await _changed_provider(info, str(id))

    @strawberry.mutation(
        description="Enable or disable a provider (ADMIN). A disabled provider is not synced "
        "and its vehicles are not shown."
    )
    async def set_provider_enabled(self, info: Info, id: strawberry.ID, enabled: bool) -> Provider:
        viewer = await info.context.require_admin()
        await info.context.provider_admin.set_enabled(str(id), enabled)
        log.info("provider %s %s by %s", id, "enabled" if enabled else "disabled", viewer.name)
        return await _changed_provider(info, str(id))

    @strawberry.mutation(description="Delete a provider and all its data (ADMIN).")
    async def delete_provider(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        viewer = await info.context.require_admin()
        await info.context.provider_admin.delete(str(id))
        index = info.context.search.index
        if index is not None:
            try:
                await index.remove_provider(str(id))
            except Exception as exc:  # search hides it already; the next rebuild clears it
                log.warning("could not clear the index of deleted provider %s: %s", id, exc)
        log.info("provider %s deleted by %s", id, viewer.name)
        _changed(info)
        return id

    @strawberry.mutation(
        description="Sync a provider as soon as possible (ADMIN): the scheduler picks it up "
        "within a second, wherever syncs run; `health` then shows the outcome."
    )
    async def sync_provider(self, info: Info, id: strawberry.ID) -> Provider:
        await info.context.require_admin()
        if not await info.context.provider_admin.sync_now([str(id)]):
            raise NotFound(f"no provider {id!r}", code="PROVIDER_NOT_FOUND")
        return await _provider(info, str(id))

    @strawberry.mutation(
        description="Set the credentials the provider's adapter uses to call the operator "
        "(ADMIN); null removes them. They are stored server-side and never returned."
    )
    async def set_provider_credentials(
        self, info: Info, id: strawberry.ID, credentials: OperatorCredentialsInput | None
    ) -> Provider:
        viewer = await info.context.require_admin()
        kind, values = credentials.to_kind_and_values() if credentials else (None, None)
        await info.context.provider_admin.set_credentials(str(id), kind, values)
        # The kind only: never the values.
        log.info("credentials of provider %s set to %s by %s", id, kind, viewer.name)
        return await _provider(info, str(id))
