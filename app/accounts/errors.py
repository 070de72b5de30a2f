"""The accounts service's errors: stable codes the API passes through as ``extensions.code``."""

from __future__ import annotations

from app.platform.errors import DomainError, InvalidInput, NotFound


class Unauthenticated(DomainError):
    """No usable credentials. The subclasses say what is wrong with the ones that came, so a
    client can tell "refresh your access token" from "sign in again"."""

    code = "UNAUTHENTICATED"


class InvalidToken(Unauthenticated):
    code = "INVALID_TOKEN"


class TokenExpired(Unauthenticated):
    """The access token was valid and has run out: get a new one with the refresh token."""

    code = "TOKEN_EXPIRED"


class InvalidCredentials(Unauthenticated):
    # One code for an unknown email and a wrong password: the answer must not tell which.
    code = "INVALID_CREDENTIALS"


class InvalidRefreshToken(Unauthenticated):
    code = "INVALID_REFRESH_TOKEN"


class RefreshTokenExpired(InvalidRefreshToken):
    code = "REFRESH_TOKEN_EXPIRED"


class RefreshTokenRevoked(InvalidRefreshToken):
    """Its session was ended: by logging out, or because a token of it was reused."""

    code = "REFRESH_TOKEN_REVOKED"


class RefreshTokenReused(InvalidRefreshToken):
    """A refresh token was presented a second time: someone else may hold a copy, so its
    whole session (every token of the family) has been revoked."""

    code = "REFRESH_TOKEN_REUSED"


class PasswordAccountsDisabled(DomainError):
    """This deployment signs riders in through its identity provider only."""

    code = "PASSWORD_ACCOUNTS_DISABLED"


class EmailTaken(InvalidInput):
    code = "EMAIL_TAKEN"


class UserNotFound(NotFound):
    code = "USER_NOT_FOUND"


class IdentityProviderUnavailable(DomainError):
    """The external identity provider's signing keys could not be fetched (and none are
    cached): not the client's fault, worth retrying."""

    code = "IDP_UNAVAILABLE"


class AccountsMisconfigured(RuntimeError):
    """Settings the accounts service cannot run with. Raised at start-up, never to a client."""
