"""Organisations as the API manages them: each change one transaction of its own, each read one
short session, side effects (the invitation email) after the commit. The rules are in
app/fleet/organisations.py, which tests call with a session of their own."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import transaction
from app.fleet import organisations as orgs
from app.fleet.principal import OrgActor, Role
from app.mail import MailOutcome, send_invitation
from app.models import CostCentre, Invitation, Organisation, OrganisationMember, User
from app.settings import Settings

__all__ = ["NewInvitation", "OrganisationAdmin"]


@dataclass(frozen=True, slots=True)
class NewInvitation:
    invitation: Invitation
    token: str  # shown this once
    mail: MailOutcome


class OrganisationAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    async def get(self, actor: OrgActor) -> Organisation:
        async with self._sessions() as session:
            return await orgs.get_organisation(session, actor)

    async def of_rider(self, user_id: uuid.UUID) -> list[tuple[Organisation, Role]]:
        """The organisations a rider belongs to, with their role in each, oldest membership
        first: one query."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(Organisation, OrganisationMember.role)
                .join(OrganisationMember, OrganisationMember.organisation_id == Organisation.id)
                .where(OrganisationMember.user_id == user_id)
                .order_by(OrganisationMember.created_at)
            )
            return [(org, Role(role)) for org, role in rows.all()]

    async def cost_centres(self, actor: OrgActor) -> list[CostCentre]:
        async with self._sessions() as session:
            return await orgs.cost_centres_of(session, actor)

    async def members(self, actor: OrgActor) -> list[tuple[OrganisationMember, User]]:
        async with self._sessions() as session:
            return await orgs.members_of(session, actor)

    async def create(self, *, creator_id: uuid.UUID, name: str, timezone: str) -> Organisation:
        async with transaction(self._sessions) as session:
            return await orgs.create_organisation(
                session, creator_id=creator_id, name=name, timezone=timezone
            )

    async def add_cost_centre(self, actor: OrgActor, *, code: str, name: str) -> CostCentre:
        async with transaction(self._sessions) as session:
            return await orgs.add_cost_centre(session, actor, code=code, name=name)

    async def invite(
        self,
        actor: OrgActor,
        *,
        email: str,
        role: Role,
        cost_centre_id: uuid.UUID | None,
        now: datetime,
    ) -> NewInvitation:
        """The invitation, committed, then emailed: it exists whatever becomes of the email,
        and the caller holds the token either way."""
        async with transaction(self._sessions) as session:
            invitation, token = await orgs.invite_member(
                session, actor, email=email, role=role, cost_centre_id=cost_centre_id, now=now
            )
            org = await orgs.get_organisation(session, actor)
        mail = await send_invitation(
            self._settings,
            to=invitation.email,
            organisation=org.name,
            role=invitation.role,
            token=token,
            expires_at=invitation.expires_at,
        )
        return NewInvitation(invitation, token, mail)

    async def accept(
        self, *, user_id: uuid.UUID, token: str, now: datetime
    ) -> tuple[Organisation, Role]:
        """The organisation joined and the role in it."""
        async with transaction(self._sessions) as session:
            member = await orgs.accept_invitation(session, user_id=user_id, token=token, now=now)
            org = await session.get(Organisation, member.organisation_id)
            assert org is not None  # the membership's foreign key
            return org, Role(member.role)

    async def update_member(
        self,
        actor: OrgActor,
        member_id: uuid.UUID,
        *,
        role: Role | None,
        cost_centre_id: uuid.UUID | None,
        clear_cost_centre: bool,
    ) -> tuple[OrganisationMember, User]:
        async with transaction(self._sessions) as session:
            member = await orgs.set_member(
                session,
                actor,
                member_id,
                role=role,
                cost_centre_id=cost_centre_id,
                clear_cost_centre=clear_cost_centre,
            )
            user = await session.get(User, member.user_id)
            assert user is not None  # the membership's foreign key
            return member, user

    async def set_plan(
        self, organisation_id: uuid.UUID, plan: str, known: Collection[str]
    ) -> Organisation:
        async with transaction(self._sessions) as session:
            return await orgs.set_plan(session, organisation_id, plan, set(known))

    async def remove_member(self, actor: OrgActor, member_id: uuid.UUID) -> None:
        async with transaction(self._sessions) as session:
            await orgs.remove_member(session, actor, member_id)
