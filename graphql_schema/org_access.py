"""How the organisation areas of the API (organisations, API keys, policies, reports, webhooks,
B2B booking) name what they act on, without telling an outsider what exists.

An id that is not a UUID cannot name anything of ours: it is ``NOT_FOUND`` like an unknown one.
An item reached by its own id (an API key, a webhook endpoint or delivery) is ``NOT_FOUND``,
naming only the item, both when it does not exist and when the caller is no member of its
organisation and no key of it: neither its existence nor its organisation is told to an
outsider. An insider short of the right (a member without the role: ``FORBIDDEN``; a key
without the scope: ``MISSING_SCOPE``) is told so: it knows the organisation already.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection

import strawberry

from app.fleet.access import ADMINS
from app.fleet.principal import OrgActor, OrgNotFound, Role, Scope
from graphql_schema.context import Context

__all__ = ["actor_for_item", "admin_or_key", "optional_org_uuid", "org_uuid"]


def org_uuid(raw: strawberry.ID, what: str) -> uuid.UUID:
    """``raw`` as the UUID of an organisation's ``what`` (``organisation``, ``member``...)."""
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise OrgNotFound(f"no {what} {raw}") from None


def optional_org_uuid(raw: strawberry.ID | None, what: str) -> uuid.UUID | None:
    """:func:`org_uuid` of an optional argument: None when it was left out."""
    return None if raw is None else org_uuid(raw, what)


async def admin_or_key(ctx: Context, organisation_id: strawberry.ID) -> OrgActor:
    """The caller acting for the organisation: an OWNER or ADMIN member, or one of its API
    keys (what a key may then do is the service's rule)."""
    return await ctx.org_actor(org_uuid(organisation_id, "organisation"), roles=ADMINS)


async def actor_for_item(
    ctx: Context,
    item_id: uuid.UUID,
    what: str,
    organisation_of: Callable[[uuid.UUID], Awaitable[uuid.UUID | None]],
    *,
    roles: Collection[Role] | None = None,
    scope: Scope | None = None,
) -> OrgActor:
    """The caller acting for the organisation the item belongs to (``organisation_of`` finds
    it), with one of ``roles`` or, for an API key, ``scope``; an outsider gets ``NOT_FOUND``
    naming the item (the module's docstring)."""
    # Who is calling is settled first: an anonymous caller learns nothing about ids.
    if await ctx.api_key() is None:
        await ctx.require_rider()
    organisation_id = await organisation_of(item_id)
    if organisation_id is None:
        raise OrgNotFound(f"no {what} {item_id}")
    try:
        return await ctx.org_actor(organisation_id, roles=roles, scope=scope)
    except OrgNotFound:
        raise OrgNotFound(f"no {what} {item_id}") from None
