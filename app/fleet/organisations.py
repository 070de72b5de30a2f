"""Organisations, their members, cost centres and invitations.

Every function takes an :class:`OrgActor` already resolved for one organisation (the API does it
with ``Context.org_actor``) and touches nothing outside that organisation: an id of another
organisation's member, cost centre or invitation is "not found".
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.fleet.principal import OrgActor, OrgNotFound, Role
from app.models import CostCentre, Invitation, Organisation, OrganisationMember, User
from app.platform.email_address import normalized_email
from app.platform.errors import DomainError, InvalidInput
from app.platform.names import refuse_forbidden_characters
from app.staff_auth import Forbidden

__all__ = [
    "INVITATION_TTL",
    "InvitationInvalid",
    "accept_invitation",
    "add_cost_centre",
    "create_organisation",
    "invite_member",
    "members_of",
    "organisations_of",
    "remove_member",
    "set_member",
    "set_plan",
]

INVITATION_PREFIX = "mob_inv_"
INVITATION_TTL = timedelta(days=7)
# Invitations are emails we send on an organisation's word: a bound on how many a day, so an
# organisation cannot use us to mail strangers in bulk.
MAX_INVITATIONS_PER_DAY = 100
_CODE = re.compile(r"^[A-Za-z0-9._\-]{1,40}$")


class InvitationInvalid(DomainError):
    """Unknown, expired, revoked, already used, or for another email address."""

    code = "INVITATION_INVALID"


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 200:
        raise InvalidInput(f"{what} must be 1-200 characters", code="INVALID_NAME")
    # Names go into emails' subjects, CSV reports and logs (app/platform/names.py says what is
    # refused).
    refuse_forbidden_characters(value, what, code="INVALID_NAME")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)",
            code="INVALID_TIMEZONE",
        ) from None
    return value


def _require_admin(actor: OrgActor) -> None:
    actor.require_admin(
        api_keys="API keys cannot manage an organisation's members; sign in as an admin"
    )


async def create_organisation(
    session: AsyncSession, *, creator_id: uuid.UUID, name: str, timezone: str
) -> Organisation:
    """A new organisation; its creator is its first OWNER."""
    org = Organisation(name=_name(name, "an organisation's name"), timezone=_timezone(timezone))
    session.add(org)
    await session.flush()
    session.add(OrganisationMember(organisation_id=org.id, user_id=creator_id, role=Role.OWNER))
    await session.flush()
    return org


async def set_plan(
    session: AsyncSession, organisation_id: uuid.UUID, plan: str, known_plans: set[str]
) -> Organisation:
    """Staff: the organisation's plan (its API keys' rate limits)."""
    if plan not in known_plans:
        raise InvalidInput(
            f"unknown plan {plan!r} (known: {', '.join(sorted(known_plans))})", code="INVALID_PLAN"
        )
    org = await session.get(Organisation, organisation_id)
    if org is None:
        raise OrgNotFound(f"no organisation {organisation_id}")
    org.plan = plan
    await session.flush()
    return org


async def get_organisation(session: AsyncSession, actor: OrgActor) -> Organisation:
    org = await session.get(Organisation, actor.organisation_id)
    if org is None:
        raise OrgNotFound(f"no organisation {actor.organisation_id}")
    return org


async def cost_centres_of(session: AsyncSession, actor: OrgActor) -> list[CostCentre]:
    rows = await session.execute(
        select(CostCentre)
        .where(CostCentre.organisation_id == actor.organisation_id)
        .order_by(CostCentre.code)
    )
    return list(rows.scalars())


async def cost_centre_of(
    session: AsyncSession, organisation_id: uuid.UUID, cost_centre_id: uuid.UUID
) -> CostCentre:
    return await _in_organisation(
        session, CostCentre, cost_centre_id, organisation_id, "cost centre"
    )


async def add_cost_centre(
    session: AsyncSession, actor: OrgActor, *, code: str, name: str
) -> CostCentre:
    _require_admin(actor)
    code = code.strip()
    if not _CODE.match(code):
        raise InvalidInput(
            "a cost centre code is 1-40 letters, digits, '.', '_' or '-'",
            code="INVALID_COST_CENTRE",
        )
    centre = CostCentre(
        organisation_id=actor.organisation_id, code=code, name=_name(name, "a cost centre name")
    )
    session.add(centre)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise InvalidInput(
            f"cost centre {code!r} exists already", code="COST_CENTRE_EXISTS"
        ) from None
    return centre


async def members_of(
    session: AsyncSession, actor: OrgActor
) -> list[tuple[OrganisationMember, User]]:
    rows = await session.execute(
        select(OrganisationMember, User)
        .join(User, User.id == OrganisationMember.user_id)
        .where(OrganisationMember.organisation_id == actor.organisation_id)
        .order_by(OrganisationMember.created_at)
    )
    return [(m, u) for m, u in rows.all()]


async def organisations_of(
    session: AsyncSession, user_id: uuid.UUID
) -> list[tuple[Organisation, Role]]:
    """The organisations a rider belongs to, with their role in each, oldest membership
    first: one query."""
    rows = await session.execute(
        select(Organisation, OrganisationMember.role)
        .join(OrganisationMember, OrganisationMember.organisation_id == Organisation.id)
        .where(OrganisationMember.user_id == user_id)
        .order_by(OrganisationMember.created_at)
    )
    return [(org, Role(role)) for org, role in rows.all()]


async def member_of(
    session: AsyncSession, organisation_id: uuid.UUID, member_id: uuid.UUID
) -> OrganisationMember:
    return await _in_organisation(session, OrganisationMember, member_id, organisation_id, "member")


class _InOrganisation(Protocol):
    @property
    def organisation_id(self) -> uuid.UUID: ...


_Part = TypeVar("_Part", bound=_InOrganisation)


async def _in_organisation(
    session: AsyncSession,
    kind: type[_Part],
    part_id: uuid.UUID,
    organisation_id: uuid.UUID,
    what: str,
) -> _Part:
    """The ``kind`` row with this id if it belongs to the organisation: another organisation's
    is "not found" too, like one that does not exist."""
    part = await session.get(kind, part_id)
    if part is None or part.organisation_id != organisation_id:
        raise OrgNotFound(f"no {what} {part_id}")
    return part


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def invite_member(
    session: AsyncSession,
    actor: OrgActor,
    *,
    email: str,
    role: Role,
    cost_centre_id: uuid.UUID | None,
    now: datetime,
) -> tuple[Invitation, str]:
    """An invitation and its token (shown once: it goes to the invitee by email)."""
    _require_admin(actor)
    email = normalized_email(email)
    sent_today = await session.scalar(
        select(func.count())
        .select_from(Invitation)
        .where(
            Invitation.organisation_id == actor.organisation_id,
            Invitation.created_at > now - timedelta(days=1),
        )
    )
    if (sent_today or 0) >= MAX_INVITATIONS_PER_DAY:
        raise InvalidInput(
            f"an organisation can send at most {MAX_INVITATIONS_PER_DAY} invitations a day; "
            "try again tomorrow",
            code="TOO_MANY_INVITATIONS",
        )
    if role is Role.OWNER and actor.role is not Role.OWNER:
        raise Forbidden("only an OWNER can make someone an OWNER")
    if cost_centre_id is not None:
        await cost_centre_of(session, actor.organisation_id, cost_centre_id)
    token = INVITATION_PREFIX + secrets.token_urlsafe(32)
    invitation = Invitation(
        organisation_id=actor.organisation_id,
        email=email,
        role=role.value,
        cost_centre_id=cost_centre_id,
        token_hash=_token_hash(token),
        invited_by=actor.user_id,
        created_at=now,
        expires_at=now + INVITATION_TTL,
    )
    session.add(invitation)
    await session.flush()
    return invitation, token


async def accept_invitation(
    session: AsyncSession, *, user_id: uuid.UUID, token: str, now: datetime
) -> OrganisationMember:
    """The signed-in rider joins; the invitation must be for their email address."""
    invitation = (
        await session.execute(
            select(Invitation).where(Invitation.token_hash == _token_hash(token)).with_for_update()
        )
    ).scalar_one_or_none()
    user = await session.get(User, user_id)
    if (
        invitation is None
        or user is None
        or invitation.accepted_at is not None
        or invitation.revoked_at is not None
        or invitation.expires_at <= now
        or invitation.email.lower() != user.email.lower()
    ):
        # One answer for every reason: a token is not confirmed by guessing.
        raise InvitationInvalid("this invitation is not valid for you (used, expired, or another)")
    existing = (
        await session.execute(
            select(OrganisationMember).where(
                OrganisationMember.organisation_id == invitation.organisation_id,
                OrganisationMember.user_id == user_id,
            )
        )
    ).scalar_one_or_none()
    if existing is None:
        existing = OrganisationMember(
            organisation_id=invitation.organisation_id,
            user_id=user_id,
            role=invitation.role,
            cost_centre_id=invitation.cost_centre_id,
        )
        session.add(existing)
    invitation.accepted_at = now
    invitation.accepted_by = user_id
    await session.flush()
    return existing


async def _owners(session: AsyncSession, organisation_id: uuid.UUID) -> int:
    return int(
        (
            await session.execute(
                select(func.count())
                .select_from(OrganisationMember)
                .where(
                    OrganisationMember.organisation_id == organisation_id,
                    OrganisationMember.role == Role.OWNER.value,
                )
            )
        ).scalar_one()
    )


async def set_member(
    session: AsyncSession,
    actor: OrgActor,
    member_id: uuid.UUID,
    *,
    role: Role | None,
    cost_centre_id: uuid.UUID | None,
    clear_cost_centre: bool = False,
) -> OrganisationMember:
    _require_admin(actor)
    member = await member_of(session, actor.organisation_id, member_id)
    if role is not None and role is not Role(member.role):
        if Role.OWNER in (role, Role(member.role)) and actor.role is not Role.OWNER:
            raise Forbidden("only an OWNER can grant or take the OWNER role")
        if member.role == Role.OWNER.value and await _owners(session, member.organisation_id) == 1:
            raise InvalidInput("an organisation keeps at least one OWNER", code="LAST_OWNER")
        member.role = role.value
    if cost_centre_id is not None:
        await cost_centre_of(session, actor.organisation_id, cost_centre_id)
        member.cost_centre_id = cost_centre_id
    elif clear_cost_centre:
        member.cost_centre_id = None
    await session.flush()
    return member


async def remove_member(session: AsyncSession, actor: OrgActor, member_id: uuid.UUID) -> None:
    _require_admin(actor)
    member = await member_of(session, actor.organisation_id, member_id)
    if member.role == Role.OWNER.value:
        if actor.role is not Role.OWNER:
            raise Forbidden("only an OWNER can remove an OWNER")
        if await _owners(session, member.organisation_id) == 1:
            raise InvalidInput("an organisation keeps at least one OWNER", code="LAST_OWNER")
    await session.delete(member)
    await session.flush()
