"""Organisations in the API: create one, invite members, give them roles and cost centres.

Anything of an organisation is visible to its members (members' list to its admins) and to its
API keys; anyone else gets ``NOT_FOUND`` as if it did not exist.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import strawberry

from app.fleet.access import ADMINS
from app.fleet.principal import OrgActor, Role
from app.platform.errors import InvalidInput
from app.rate_limit import plan_limits
from app.records import CostCentreRecord, MemberRecord, OrganisationRecord, UserRecord
from app.staff_auth import Forbidden
from graphql_schema.context import Context
from graphql_schema.org_access import admin_or_key, org_uuid

Info = strawberry.Info[Context, None]

strawberry.enum(Role, name="OrganisationRole", description="A member's role in an organisation.")


@strawberry.type
class CostCentre:
    id: strawberry.ID
    code: str
    name: str

    @classmethod
    def from_row(cls, row: CostCentreRecord) -> CostCentre:
        return cls(id=strawberry.ID(str(row.id)), code=row.code, name=row.name)


@strawberry.type(name="OrganisationMember")
class OrganisationMemberType:
    id: strawberry.ID
    user_id: strawberry.ID
    email: str
    display_name: str | None
    role: Role
    cost_centre_id: strawberry.ID | None

    @classmethod
    def from_rows(cls, member: MemberRecord, user: UserRecord) -> OrganisationMemberType:
        return cls(
            id=strawberry.ID(str(member.id)),
            user_id=strawberry.ID(str(user.id)),
            email=user.email,
            display_name=user.display_name,
            role=Role(member.role),
            cost_centre_id=strawberry.ID(str(member.cost_centre_id))
            if member.cost_centre_id
            else None,
        )


@strawberry.type
class Organisation:
    id: strawberry.ID
    name: str
    timezone: str
    plan: str
    my_role: Role | None = strawberry.field(
        description="Your role in it; null when you act through an API key."
    )

    @classmethod
    def from_row(cls, row: OrganisationRecord, actor: OrgActor) -> Organisation:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            timezone=row.timezone,
            plan=row.plan,
            my_role=actor.role,
        )

    @strawberry.field
    async def cost_centres(self, info: Info) -> list[CostCentre]:
        actor = await info.context.org_actor(uuid.UUID(str(self.id)))
        return [
            CostCentre.from_row(c) for c in await info.context.organisations.cost_centres(actor)
        ]

    @strawberry.field(description="Its members (OWNER and ADMIN only).")
    async def members(self, info: Info) -> list[OrganisationMemberType]:
        actor = await info.context.org_actor(uuid.UUID(str(self.id)), roles=ADMINS)
        if actor.api_key is not None:
            raise Forbidden("an organisation's members are shown to its admins only")
        rows = await info.context.organisations.members(actor)
        return [OrganisationMemberType.from_rows(m, u) for m, u in rows]


@strawberry.type
class Invitation:
    id: strawberry.ID
    email: str
    role: Role
    expires_at: datetime


@strawberry.type(
    description="An invitation and its token, shown once. It is emailed to the invitee when a "
    "mail server is configured; otherwise, or if sending failed, pass the token on yourself."
)
class NewInvitation:
    invitation: Invitation
    token: str
    email_sent: bool
    email_error: str | None = strawberry.field(
        description="Why the email was not sent (no secret in it)."
    )


@strawberry.type
class OrganisationQuery:
    @strawberry.field(description="An organisation you belong to (or your API key's).")
    async def organisation(self, info: Info, id: strawberry.ID) -> Organisation:
        actor = await info.context.org_actor(org_uuid(id, "organisation"))
        return Organisation.from_row(await info.context.organisations.get(actor), actor)

    @strawberry.field(description="The organisations you are a member of.")
    async def my_organisations(self, info: Info) -> list[Organisation]:
        rider = await info.context.require_rider()
        return [
            Organisation.from_row(org, OrgActor(org.id, user_id=rider.id, role=role))
            for org, role in await info.context.organisations.of_rider(rider.id)
        ]


@strawberry.type
class OrganisationMutation:
    @strawberry.mutation(description="A new organisation; you become its OWNER.")
    async def create_organisation(
        self, info: Info, name: str, timezone: str = "UTC"
    ) -> Organisation:
        rider = await info.context.require_rider()
        org = await info.context.organisations.create(
            creator_id=rider.id, name=name, timezone=timezone
        )
        return Organisation.from_row(org, OrgActor(org.id, rider.id, Role.OWNER))

    @strawberry.mutation(description="A cost centre (OWNER or ADMIN).")
    async def add_cost_centre(
        self, info: Info, organisation_id: strawberry.ID, code: str, name: str
    ) -> CostCentre:
        actor = await admin_or_key(info.context, organisation_id)
        return CostCentre.from_row(
            await info.context.organisations.add_cost_centre(actor, code=code, name=name)
        )

    @strawberry.mutation(
        description="Invite someone by email (OWNER or ADMIN). The token is shown once; it is "
        "valid for 7 days and only for that email address's account."
    )
    async def invite_member(
        self,
        info: Info,
        organisation_id: strawberry.ID,
        email: str,
        role: Role,
        cost_centre_id: strawberry.ID | None = None,
    ) -> NewInvitation:
        actor = await admin_or_key(info.context, organisation_id)
        centre = org_uuid(cost_centre_id, "cost centre") if cost_centre_id else None
        new = await info.context.organisations.invite(
            actor, email=email, role=role, cost_centre_id=centre, now=datetime.now(UTC)
        )
        invitation, token, mail = new.invitation, new.token, new.mail
        return NewInvitation(
            invitation=Invitation(
                id=strawberry.ID(str(invitation.id)),
                email=invitation.email,
                role=Role(invitation.role),
                expires_at=invitation.expires_at,
            ),
            token=token,
            email_sent=mail.sent,
            email_error=mail.error,
        )

    @strawberry.mutation(description="Join the organisation that invited you.")
    async def accept_invitation(self, info: Info, token: str) -> Organisation:
        rider = await info.context.require_rider()
        org, role = await info.context.organisations.accept(
            user_id=rider.id, token=token, now=datetime.now(UTC)
        )
        return Organisation.from_row(org, OrgActor(org.id, user_id=rider.id, role=role))

    @strawberry.mutation(description="Change a member's role or cost centre (OWNER or ADMIN).")
    async def update_member(
        self,
        info: Info,
        organisation_id: strawberry.ID,
        member_id: strawberry.ID,
        role: Role | None = None,
        cost_centre_id: strawberry.ID | None = None,
        clear_cost_centre: bool = False,
    ) -> OrganisationMemberType:
        actor = await admin_or_key(info.context, organisation_id)
        if cost_centre_id is not None and clear_cost_centre:
            raise InvalidInput("give costCentreId or clearCostCentre, not both")
        member, user = await info.context.organisations.update_member(
            actor,
            org_uuid(member_id, "member"),
            role=role,
            cost_centre_id=org_uuid(cost_centre_id, "cost centre") if cost_centre_id else None,
            clear_cost_centre=clear_cost_centre,
        )
        return OrganisationMemberType.from_rows(member, user)

    @strawberry.mutation(
        description="Staff (ADMIN): an organisation's plan, which sets its API keys' rate "
        "limits (MOBILITY_RATE_LIMIT_PLANS)."
    )
    async def set_organisation_plan(
        self, info: Info, organisation_id: strawberry.ID, plan: str
    ) -> Organisation:
        await info.context.require_admin()
        known = set(plan_limits(info.context.settings))
        org = await info.context.organisations.set_plan(
            org_uuid(organisation_id, "organisation"), plan, known
        )
        return Organisation.from_row(org, OrgActor(org.id))

    @strawberry.mutation(description="Remove a member (OWNER or ADMIN).")
    async def remove_member(
        self, info: Info, organisation_id: strawberry.ID, member_id: strawberry.ID
    ) -> strawberry.ID:
        actor = await admin_or_key(info.context, organisation_id)
        await info.context.organisations.remove_member(actor, org_uuid(member_id, "member"))
        return member_id
