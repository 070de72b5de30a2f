"""Our own tokens: HS256 access tokens (short-lived JWTs) and opaque refresh tokens.

An access token is verified without a database read of the token itself (its signature and
``exp`` say it is good); the rider it names is still read, so a licence status changed by staff
shows at once. A refresh token is random, shown once, stored only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import jwt

from app.accounts.errors import AccountsMisconfigured, InvalidToken, TokenExpired
from app.accounts.schemas import AccessToken
from app.platform.settings import Settings

ALGORITHM = "HS256"
ACCESS_TYPE = "access"
REFRESH_PREFIX = "mob_rt_"
# RFC 7518 §3.2: an HS256 key at least as long as the hash output (32 bytes).
MIN_SECRET_LENGTH = 32

# Without a configured secret (development, tests) tokens are signed with a key that lives as
# long as this process: restarting signs everyone out, which is fine there and never in
# production (check_settings refuses that).
_PROCESS_SECRET = secrets.token_bytes(32)


def check_settings(settings: Settings) -> None:
    """Refuse settings the accounts service cannot run safely with; called at start-up."""
    if settings.jwt_secret is None:
        if settings.environment == "production":
            raise AccountsMisconfigured(
                "MOBILITY_JWT_SECRET is required in production: without it every process "
                "would sign tokens with its own random key"
            )
    elif len(settings.jwt_secret) < MIN_SECRET_LENGTH:
        raise AccountsMisconfigured(
            f"MOBILITY_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters"
        )
    external = (
        settings.external_idp_issuer,
        settings.external_idp_jwks_url,
        settings.external_idp_audience,
    )
    if any(v is not None for v in external) and not all(external):
        # Without an audience any token the provider issued for any application would do.
        raise AccountsMisconfigured(
            "an external identity provider needs all of MOBILITY_EXTERNAL_IDP_ISSUER, "
            "MOBILITY_EXTERNAL_IDP_JWKS_URL and MOBILITY_EXTERNAL_IDP_AUDIENCE"
        )
    if not settings.password_accounts and not all(external):
        raise AccountsMisconfigured(
            "MOBILITY_PASSWORD_ACCOUNTS=false needs an external identity provider "
            "(MOBILITY_EXTERNAL_IDP_*): nobody could sign in"
        )
    if settings.external_idp_issuer == settings.jwt_issuer:
        raise AccountsMisconfigured("the external identity provider's issuer must not be ours")


def _signing_key(settings: Settings) -> bytes:
    check_settings(settings)
    if settings.jwt_secret is None:
        return _PROCESS_SECRET
    return settings.jwt_secret.encode()


def utcnow() -> datetime:
    return datetime.now(UTC)


def issue_access_token(
    settings: Settings, user_id: uuid.UUID, *, now: datetime | None = None
) -> AccessToken:
    """``now`` is the clock (tests mint expired tokens with a past one)."""
    issued = (now or utcnow()).replace(microsecond=0)
    expires = issued + timedelta(seconds=settings.access_token_ttl_seconds)
    claims = {
        "sub": str(user_id),
        "iss": settings.jwt_issuer,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "typ": ACCESS_TYPE,
    }
    return AccessToken(jwt.encode(claims, _signing_key(settings), algorithm=ALGORITHM), expires)


def verify_access_token(settings: Settings, token: str) -> uuid.UUID:
    """The user id an access token of ours names. ``TOKEN_EXPIRED`` only for a token whose
    signature is good (PyJWT checks the signature before ``exp``); anything else wrong with
    it is ``INVALID_TOKEN``."""
    try:
        claims = jwt.decode(
            token,
            _signing_key(settings),
            # Exactly one algorithm: a token must not choose how it is verified.
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "iss", "iat", "exp", "typ"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("the access token has expired: refresh it") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("the access token is not valid") from exc
    if claims.get("typ") != ACCESS_TYPE:
        raise InvalidToken("not an access token")
    try:
        return uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise InvalidToken("the access token is not valid") from exc


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
