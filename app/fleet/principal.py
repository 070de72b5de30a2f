"""Who is acting for an organisation: a member (a rider account with a role in it) or one of
its API keys. The API resolves the caller to an :class:`OrgActor` once per operation; services
take the actor and check its permission (:meth:`OrgActor.require_admin`,
:meth:`OrgActor.require_admin_or_scope`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from app.platform.errors import DomainError
from app.staff_auth import Forbidden

__all__ = [
    "ApiKeyPrincipal",
    "MissingScope",
    "OrgActor",
    "OrgNotFound",
    "Role",
    "Scope",
]


class Role(StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    BOOKER = "BOOKER"
    RIDER = "RIDER"


class Scope(StrEnum):
    VEHICLES_READ = "vehicles:read"
    BOOKINGS_WRITE = "bookings:write"
    REPORTS_READ = "reports:read"
    WEBHOOKS_MANAGE = "webhooks:manage"


#: Why a member without the OWNER or ADMIN role is refused, unless the check says otherwise.
ADMIN_ROLE_NEEDED = "this needs the OWNER or ADMIN role in the organisation"


class OrgNotFound(DomainError):
    """The organisation (or something in it) does not exist *for this caller*: the same answer
    whether it does not exist at all or belongs to someone else."""

    code = "NOT_FOUND"


class MissingScope(DomainError):
    code = "MISSING_SCOPE"


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    """A valid (not revoked, not expired) API key, as the request presented it."""

    key_id: uuid.UUID
    organisation_id: uuid.UUID
    scopes: frozenset[Scope]
    # The organisation's plan, for its rate limits.
    plan: str = "STANDARD"

    def require_scope(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise MissingScope(f"this API key lacks the {scope.value} scope")


@dataclass(frozen=True, slots=True)
class OrgActor:
    """Someone acting for ``organisation_id``: exactly one of ``user_id`` (with its ``role``)
    or ``api_key`` is set."""

    organisation_id: uuid.UUID
    user_id: uuid.UUID | None = None
    role: Role | None = None
    api_key: ApiKeyPrincipal | None = None

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)

    def require_admin(self, *, api_keys: str, members: str = ADMIN_ROLE_NEEDED) -> None:
        """Only a member with the OWNER or ADMIN role: an API key is refused with ``api_keys``
        (what to do instead), another member with ``members``."""
        if self.api_key is not None:
            raise Forbidden(api_keys)
        if not self.is_admin:
            raise Forbidden(members)

    def require_admin_or_scope(self, scope: Scope, *, members: str = ADMIN_ROLE_NEEDED) -> None:
        """An API key holding ``scope``, or a member with the OWNER or ADMIN role (another member
        is refused with ``members``)."""
        if self.api_key is not None:
            self.api_key.require_scope(scope)
        elif not self.is_admin:
            raise Forbidden(members)
