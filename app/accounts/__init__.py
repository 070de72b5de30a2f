"""Rider accounts (issue 5): passwords, our tokens, an external identity provider's tokens, and
the service over users and refresh tokens. No GraphQL here (graphql_schema/accounts.py)."""

from app.accounts.errors import (
    AccountsMisconfigured,
    EmailTaken,
    IdentityProviderUnavailable,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidToken,
    RefreshTokenExpired,
    RefreshTokenReused,
    RefreshTokenRevoked,
    TokenExpired,
    Unauthenticated,
    UserNotFound,
)
from app.accounts.passwords import hash_password, needs_rehash, verify_password
from app.accounts.schemas import AccessToken, AuthSession, Rider
from app.accounts.service import (
    log_in,
    log_out,
    refresh_session,
    rider_for_token,
    set_licence_status,
    sign_up,
)
from app.accounts.tokens import check_settings, issue_access_token, verify_access_token

__all__ = [
    "AccessToken",
    "AccountsMisconfigured",
    "AuthSession",
    "EmailTaken",
    "IdentityProviderUnavailable",
    "InvalidCredentials",
    "InvalidRefreshToken",
    "InvalidToken",
    "RefreshTokenExpired",
    "RefreshTokenReused",
    "RefreshTokenRevoked",
    "Rider",
    "TokenExpired",
    "Unauthenticated",
    "UserNotFound",
    "check_settings",
    "hash_password",
    "issue_access_token",
    "log_in",
    "log_out",
    "needs_rehash",
    "refresh_session",
    "rider_for_token",
    "set_licence_status",
    "sign_up",
    "verify_access_token",
    "verify_password",
]
