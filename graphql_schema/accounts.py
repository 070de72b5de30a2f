"""Rider accounts in the API: ``me``, sign-up, login, refresh, logout, and staff's licence
decision.

``me`` is null for an anonymous caller (and for a staff token: staff are not riders) and an
error for a bad token (``INVALID_TOKEN``, or ``TOKEN_EXPIRED``: refresh and ask again), so that
a client never mistakes an expired session for being signed out. Every failure is a GraphQL
error with the service's code in ``extensions.code`` (docs/accounts.md lists them).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

import strawberry

from app import accounts
from app.accounts import AuthSession as AuthSessionResult
from app.accounts import Rider as RiderRecord
from app.booking.eligibility import LicenceStatus
from graphql_schema.context import Context

Info = strawberry.Info[Context, None]

# The domain's enum, exposed as it is (strawberry.enum registers it in place).
strawberry.enum(
    LicenceStatus,
    name="LicenceStatus",
    description="Staff's decision on the rider's driving licence; cars and mopeds need VERIFIED.",
)


@strawberry.type(description="A rider's account, as the rider sees it.")
class Rider:
    id: strawberry.ID
    email: str
    display_name: str | None
    birth_date: date | None
    licence_status: LicenceStatus

    @classmethod
    def from_domain(cls, rider: RiderRecord) -> Rider:
        return cls(
            id=strawberry.ID(str(rider.id)),
            email=rider.email,
            display_name=rider.display_name,
            birth_date=rider.birth_date,
            licence_status=rider.licence_status,
        )


@strawberry.type(
    description="A signed-in session. Send `accessToken` as `Authorization: Bearer <token>`; "
    "before it expires, trade `refreshToken` for a new pair with `refreshSession`. The refresh "
    "token works once and is shown only here: keep it secret."
)
class AuthSession:
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime
    rider: Rider

    @classmethod
    def from_domain(cls, result: AuthSessionResult) -> AuthSession:
        return cls(
            access_token=result.access_token,
            access_token_expires_at=result.access_token_expires_at,
            refresh_token=result.refresh_token,
            refresh_token_expires_at=result.refresh_token_expires_at,
            rider=Rider.from_domain(result.rider),
        )


@strawberry.input(description="A new rider account. The password has 10 to 128 characters.")
class SignUpInput:
    email: str
    password: str
    birth_date: date | None = None
    display_name: str | None = None


@strawberry.type
class AccountQuery:
    @strawberry.field(
        description="The signed-in rider; null when anonymous. An invalid or expired token is "
        "an error (INVALID_TOKEN / TOKEN_EXPIRED), not null."
    )
    async def me(self, info: Info) -> Rider | None:
        # A staff token or API key is no rider (null), but a forged one is an error.
        await info.context.check_credentials()
        rider = await info.context.rider()
        return Rider.from_domain(rider) if rider is not None else None


@strawberry.type
class AccountMutation:
    @strawberry.mutation(description="Create a rider account and sign in (EMAIL_TAKEN if used).")
    async def sign_up(self, info: Info, input: SignUpInput) -> AuthSession:
        result = await info.context.accounts.sign_up(
            client=info.context.client_address,
            email=input.email,
            password=input.password,
            birth_date=input.birth_date,
            display_name=input.display_name,
        )
        return AuthSession.from_domain(result)

    @strawberry.mutation(description="Sign in. Wrong email or password: INVALID_CREDENTIALS.")
    async def log_in(self, info: Info, email: str, password: str) -> AuthSession:
        result = await info.context.accounts.log_in(
            client=info.context.client_address, email=email, password=password
        )
        return AuthSession.from_domain(result)

    @strawberry.mutation(
        description="Trade a refresh token for a new session; the old token stops working. "
        "Presenting a used one again ends the whole session (REFRESH_TOKEN_REUSED)."
    )
    async def refresh_session(self, info: Info, refresh_token: str) -> AuthSession:
        result = await info.context.accounts.refresh_session(refresh_token=refresh_token)
        return AuthSession.from_domain(result)

    @strawberry.mutation(
        description="End the session this refresh token belongs to. False when it was unknown "
        "or already ended. Access tokens already issued run until they expire."
    )
    async def log_out(self, info: Info, refresh_token: str) -> bool:
        return await info.context.accounts.log_out(refresh_token=refresh_token)

    @strawberry.mutation(description="Record staff's decision on a rider's licence (ADMIN).")
    async def set_licence_status(
        self, info: Info, user_id: strawberry.ID, status: LicenceStatus
    ) -> Rider:
        await info.context.require_admin()
        try:
            wanted = uuid.UUID(str(user_id))
        except ValueError:
            raise accounts.UserNotFound(f"no user {user_id!r}") from None
        rider = await info.context.accounts.set_licence_status(wanted, status)
        return Rider.from_domain(rider)
