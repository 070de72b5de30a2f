"""An organisation's API keys in the API: create (shown once), list, rotate, revoke; and the
scope check of API keys on the search fields.

Keys are managed by the organisation's OWNER and ADMIN members only; an API key gets
``FORBIDDEN``, anyone outside the organisation ``NOT_FOUND`` (for a key id too, whether it
exists or not).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry

from app.fleet import api_key_admin as admin
from app.fleet.access import ADMINS
from app.fleet.principal import OrgActor, Scope
from app.records import ApiKeyRecord
from graphql_schema.context import Context
from graphql_schema.org_access import actor_for_item, admin_or_key, org_uuid

__all__ = ["ApiKey", "ApiKeyMutation", "ApiKeyQuery", "NewApiKey"]

Info = strawberry.Info[Context, None]

strawberry.enum(
    Scope,
    name="ApiKeyScope",
    description="What an API key may do: VEHICLES_READ is `vehicles:read`, and so on.",
)


@strawberry.type(description="An organisation's API key. Its secret is never shown again.")
class ApiKey:
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(
        description="The key's first characters (e.g. `mob_live_ab12cd`), to tell keys apart."
    )
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = strawberry.field(
        description="When it was last used, to the minute."
    )
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: ApiKeyRecord) -> ApiKey:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            prefix=row.prefix,
            scopes=[Scope(s) for s in row.scopes if s in Scope._value2member_map_],
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(
    description="A new API key and its secret. The secret is shown this once: it is stored "
    "only as a hash and cannot be retrieved later. Send it as `Authorization: Bearer <secret>`."
)
class NewApiKey:
    api_key: ApiKey
    secret: str


async def _admin_of_key(info: Info, id: strawberry.ID) -> tuple[uuid.UUID, OrgActor]:
    """The key's id, and the caller as an admin of its organisation. Unknown key, or a key
    of an organisation the caller is not in: the same ``NOT_FOUND``, naming only the key."""
    ctx = info.context
    key_id = org_uuid(id, "API key")
    actor = await actor_for_item(ctx, key_id, "API key", ctx.api_keys.organisation_of, roles=ADMINS)
    return key_id, actor


def _live(info: Info) -> bool:
    return info.context.settings.environment == "production"


@strawberry.type
class ApiKeyQuery:
    @strawberry.field(description="An organisation's API keys, newest first (OWNER or ADMIN).")
    async def api_keys(self, info: Info, organisation_id: strawberry.ID) -> list[ApiKey]:
        actor = await admin_or_key(info.context, organisation_id)
        return [ApiKey.from_row(k) for k in await info.context.api_keys.of_organisation(actor)]


@strawberry.type
class ApiKeyMutation:
    @strawberry.mutation(
        description="A new API key (OWNER or ADMIN), acting for the organisation within its "
        "scopes. `mob_live_` keys in production, `mob_test_` elsewhere."
    )
    async def create_api_key(
        self,
        info: Info,
        organisation_id: strawberry.ID,
        name: str,
        scopes: list[Scope],
        expires_at: datetime | None = None,
    ) -> NewApiKey:
        actor = await admin_or_key(info.context, organisation_id)
        row, secret = await info.context.api_keys.create(
            actor, name=name, scopes=scopes, expires_at=expires_at, live=_live(info)
        )
        return NewApiKey(api_key=ApiKey.from_row(row), secret=secret)

    @strawberry.mutation(
        description="A replacement for a key, with the same name and scopes (OWNER or ADMIN). "
        "The old key keeps working for `overlapSeconds` (default 86400, at most 604800; 0 "
        "stops it now) so integrations can switch without downtime."
    )
    async def rotate_api_key(
        self, info: Info, id: strawberry.ID, overlap_seconds: int | None = None
    ) -> NewApiKey:
        key_id, actor = await _admin_of_key(info, id)
        overlap = admin.DEFAULT_OVERLAP_SECONDS if overlap_seconds is None else overlap_seconds
        row, secret = await info.context.api_keys.rotate(actor, key_id, overlap)
        return NewApiKey(api_key=ApiKey.from_row(row), secret=secret)

    @strawberry.mutation(description="Stop a key now (OWNER or ADMIN): its next request fails.")
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> ApiKey:
        key_id, actor = await _admin_of_key(info, id)
        return ApiKey.from_row(await info.context.api_keys.revoke(actor, key_id))
