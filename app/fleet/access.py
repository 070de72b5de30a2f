"""Resolving who acts for an organisation, and whether they may.

A caller of another organisation (or of none) gets :class:`OrgNotFound` for everything of an
organisation: its existence is not confirmed. A member whose role is not enough gets
``FORBIDDEN`` (they know the organisation already); an API key without the scope gets
``MISSING_SCOPE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import Unauthenticated
from app.fleet.principal import ApiKeyPrincipal, OrgActor, OrgNotFound, Role, Scope
from app.models import OrganisationMember
from app.platform.errors import InvalidInput
from app.staff_auth import Forbidden

__all__ = ["ADMINS", "BOOKERS", "actor_for", "memberships_of"]

ADMINS = frozenset({Role.OWNER, Role.ADMIN})
BOOKERS = frozenset({Role.OWNER, Role.ADMIN, Role.BOOKER})


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[OrganisationMember]:
    rows = await session.execute(
        select(OrganisationMember)
        .where(OrganisationMember.user_id == user_id)
        .order_by(OrganisationMember.created_at)
    )
    return list(rows.scalars())


async def actor_for(
    session: AsyncSession,
    *,
    rider_id: uuid.UUID | None,
    api_key: ApiKeyPrincipal | None,
    organisation_id: uuid.UUID | None,
    roles: Collection[Role] | None = None,
    scope: Scope | None = None,
) -> OrgActor:
    """Who acts for ``organisation_id`` (None: the key's organisation, or the member's only
    one). ``roles``: the member roles allowed (None: any member); ``scope``: what a key needs.
    """
    if api_key is not None:
        if organisation_id is not None and organisation_id != api_key.organisation_id:
            raise OrgNotFound(f"no organisation {organisation_id}")
        if scope is not None:
            api_key.require_scope(scope)
        return OrgActor(api_key.organisation_id, api_key=api_key)
    if rider_id is None:
        raise Unauthenticated("sign in, or use an API key")
    if organisation_id is None:
        mine = await memberships_of(session, rider_id)
        if len(mine) != 1:
            raise InvalidInput(
                f"give organisationId: you belong to {len(mine)} organisations",
                code="ORGANISATION_REQUIRED",
            )
        member: OrganisationMember | None = mine[0]
    else:
        member = (
            await session.execute(
                select(OrganisationMember).where(
                    OrganisationMember.organisation_id == organisation_id,
                    OrganisationMember.user_id == rider_id,
                )
            )
        ).scalar_one_or_none()
    if member is None:
        raise OrgNotFound(f"no organisation {organisation_id}")
    role = Role(member.role)
    if roles is not None and role not in roles:
        needed = ", ".join(sorted(r.value for r in roles))
        raise Forbidden(f"this needs one of these roles in the organisation: {needed}")
    return OrgActor(member.organisation_id, user_id=rider_id, role=role)
