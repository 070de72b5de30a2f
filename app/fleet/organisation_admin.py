"""Organisations as the API manages them: each change one transaction of its own, each read one
short session, side effects (the invitation email) after the commit. The rules are in
app/fleet/organisations.py, which tests call with a session of their own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.fleet import organisations as orgs
from app.fleet.principal import OrgActor, Role
from app.models import Invitation, Organisation, OrganisationMember, User
from app.platform.db import in_session, in_transaction, transaction
from app.platform.mail import InvitationEmail, MailOutcome, send_invitation
from app.platform.settings import Settings

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
        self.get = in_session(sessions, orgs.get_organisation)
        self.of_rider = in_session(sessions, orgs.organisations_of)
        self.cost_centres = in_session(sessions, orgs.cost_centres_of)
        self.members = in_session(sessions, orgs.members_of)
        self.create = in_transaction(sessions, orgs.create_organisation)
        self.add_cost_centre = in_transaction(sessions, orgs.add_cost_centre)
        self.remove_member = in_transaction(sessions, orgs.remove_member)
        self.set_plan = in_transaction(sessions, orgs.set_plan)

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
            InvitationEmail(
                to=invitation.email,
                organisation=org.name,
                role=invitation.role,
                token=token,
                expires_at=invitation.expires_at,
            ),
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
