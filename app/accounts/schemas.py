"""What the accounts service hands out: the rider, and a signed-in session's tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from app.booking.eligibility import LicenceStatus
from app.models import User


@dataclass(frozen=True, slots=True)
class Rider:
    """A signed-in rider, as the API and booking see them (never the password hash)."""

    id: uuid.UUID
    email: str
    display_name: str | None
    birth_date: date | None
    licence_status: LicenceStatus

    @classmethod
    def from_user(cls, user: User) -> Rider:
        return cls(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            birth_date=user.birth_date,
            licence_status=LicenceStatus(user.licence_status),
        )


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuthSession:
    """What signing up, logging in and refreshing answer. The refresh token is shown here once:
    only its hash is stored."""

    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime
    rider: Rider
