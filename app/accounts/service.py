"""Rider accounts: sign-up, login, sessions of rotating refresh tokens, licence status, and the
rider an access token (ours, or a trusted external identity provider's) names.

Services take the session first and flush; the caller's boundary commits. The one exception is
:func:`refresh_session`, which takes the session factory: when a used refresh token comes back,
the revocation of its family must be committed although the call itself fails.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import repository
from app.accounts.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidToken,
    PasswordAccountsDisabled,
    RefreshTokenExpired,
    RefreshTokenReused,
    RefreshTokenRevoked,
    UserNotFound,
)
from app.accounts.external import trusts_external, verify_external_token
from app.accounts.passwords import (
    hash_password_async,
    needs_rehash,
    verify_dummy_async,
    verify_password_async,
)
from app.accounts.schemas import AuthSession, Rider
from app.accounts.tokens import (
    REFRESH_PREFIX,
    issue_access_token,
    new_refresh_token,
    refresh_token_hash,
    utcnow,
    verify_access_token,
)
from app.booking.eligibility import LicenceStatus
from app.models import User
from app.platform.db import transaction
from app.platform.email_address import normalized_email
from app.platform.errors import InvalidInput
from app.platform.names import refuse_forbidden_characters
from app.platform.settings import Settings

log = logging.getLogger(__name__)

# 10 characters at least: length is what makes a password hard to guess (NIST SP 800-63B asks
# for 8 and no composition rules). At most 128: long enough for any passphrase or password
# manager, and a bound on what a request can make us hash.
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128
MAX_AGE_YEARS = 120
MAX_DISPLAY_NAME_LENGTH = 100
MAX_REFRESH_TOKEN_LENGTH = 200


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            code="INVALID_PASSWORD",
        )


def check_birth_date(birth_date: date, today: date) -> None:
    try:
        oldest = today.replace(year=today.year - MAX_AGE_YEARS)
    except ValueError:  # 29 February
        oldest = today.replace(year=today.year - MAX_AGE_YEARS, day=28)
    if not oldest <= birth_date <= today:
        raise InvalidInput(
            f"a birth date is in the past, at most {MAX_AGE_YEARS} years ago",
            code="INVALID_BIRTH_DATE",
        )


def normalized_display_name(display_name: str | None) -> str | None:
    if display_name is None or not display_name.strip():
        return None
    # NFC: one spelling of a name however the keyboard composed it.
    display_name = unicodedata.normalize("NFC", display_name.strip())
    if len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidInput(
            f"a display name has at most {MAX_DISPLAY_NAME_LENGTH} characters",
            code="INVALID_DISPLAY_NAME",
        )
    refuse_forbidden_characters(display_name, "a display name", code="INVALID_DISPLAY_NAME")
    return display_name


async def _new_session(
    session: AsyncSession,
    settings: Settings,
    user: User,
    now: datetime,
    family_id: uuid.UUID | None = None,
) -> AuthSession:
    """An access token and a refresh token; a new family unless one is being continued."""
    refresh = new_refresh_token()
    refresh_expires = now + timedelta(seconds=settings.refresh_token_ttl_seconds)
    await repository.insert_refresh_token(
        session,
        user_id=user.id,
        family_id=family_id or uuid.uuid4(),
        token_hash=refresh_token_hash(refresh),
        expires_at=refresh_expires,
    )
    access = issue_access_token(settings, user.id, now=now)
    return AuthSession(
        access_token=access.token,
        access_token_expires_at=access.expires_at,
        refresh_token=refresh,
        refresh_token_expires_at=refresh_expires,
        rider=Rider.from_user(user),
    )


def _require_password_accounts(settings: Settings) -> None:
    if not settings.password_accounts:
        raise PasswordAccountsDisabled(
            f"sign in with the identity provider ({settings.external_idp_issuer}): this service "
            "has no password accounts"
        )


async def sign_up(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    email: str,
    password: str,
    birth_date: date | None,
    display_name: str | None,
    now: datetime | None = None,
) -> AuthSession:
    """A new account, signed in. ``EMAIL_TAKEN`` when an account has this email in any case.
    The password is hashed before a database connection is taken (hashing waits its turn)."""
    _require_password_accounts(settings)
    now = now or utcnow()
    email = normalized_email(email)
    check_password(password)
    if birth_date is not None:
        check_birth_date(birth_date, now.date())
    name = normalized_display_name(display_name)
    password_hash = await hash_password_async(password, settings)
    async with transaction(sessions) as session:
        try:
            # The unique index on lower(email) decides, not a look-up first: two sign-ups with
            # one address at the same moment would both pass a look-up.
            user = await repository.insert_user(
                session,
                email=email,
                password_hash=password_hash,
                display_name=name,
                birth_date=birth_date,
            )
        except IntegrityError as exc:
            if "ux_users_email" not in str(exc.orig):
                raise
            raise EmailTaken("an account with this email exists: log in instead") from exc
        return await _new_session(session, settings, user, now)


async def log_in(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    email: str,
    password: str,
    now: datetime | None = None,
) -> AuthSession:
    """A new session. A wrong password and an unknown email are the same
    ``INVALID_CREDENTIALS``, answered in about the same time. No database connection is held
    while the password is checked."""
    _require_password_accounts(settings)
    now = now or utcnow()
    wrong = InvalidCredentials("wrong email or password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise wrong  # no password of ours is this long: nothing to hash, nothing to learn
    async with sessions() as session:
        user = await repository.user_by_email(session, email.strip())
    if user is None or user.password_hash is None:
        await verify_dummy_async(password, settings)
        raise wrong
    if not await verify_password_async(password, user.password_hash, settings):
        raise wrong
    new_hash = None
    if needs_rehash(user.password_hash, settings):
        # The cost settings changed since this hash was made: the password is at hand now.
        new_hash = await hash_password_async(password, settings)
    async with transaction(sessions) as session:
        if new_hash is not None:
            await repository.set_password_hash(session, user.id, new_hash)
        return await _new_session(session, settings, user, now)


async def refresh_session(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    refresh_token: str,
    now: datetime | None = None,
) -> AuthSession:
    """Trade a refresh token for a new access token and its successor (rotation).

    A refresh token works once. Presenting a used one again means two parties hold it (or a
    client replayed it): the whole family is revoked, the successor included, and the answer
    is ``REFRESH_TOKEN_REUSED``. Two concurrent refreshes with one token: one wins, the other
    is such a reuse.
    """
    _require_password_accounts(settings)
    now = now or utcnow()
    if not refresh_token.startswith(REFRESH_PREFIX) or len(refresh_token) > 200:
        raise InvalidRefreshToken("that is not a refresh token")
    token_hash = refresh_token_hash(refresh_token)
    async with transaction(sessions) as session:
        claimed = await repository.claim_refresh_token(session, token_hash, now)
        if claimed is not None:
            user = await repository.user_by_id(session, claimed.user_id)
            # Deleting a user deletes their tokens (ON DELETE CASCADE); checked all the same.
            if user is not None:
                return await _new_session(session, settings, user, now, claimed.family_id)
    # Refused: say why, in a transaction of its own that is committed before the error is
    # raised, because a reuse's revocation must stand although this call fails.
    error: InvalidRefreshToken
    async with transaction(sessions) as session:
        state = await repository.refresh_token_state(session, token_hash, now)
        if state is None:
            error = InvalidRefreshToken("unknown refresh token")
        elif state.used:
            if await repository.revoke_family(session, state.family_id, now):
                log.warning("a used refresh token came back: session %s revoked", state.family_id)
            error = RefreshTokenReused(
                "this refresh token was used before: the session is ended, log in again"
            )
        elif state.family_revoked:
            error = RefreshTokenRevoked("this session was ended: log in again")
        elif state.expired:
            error = RefreshTokenExpired("the refresh token has expired: log in again")
        else:
            error = InvalidRefreshToken("the refresh token could not be used: log in again")
    raise error


async def log_out(
    sessions: async_sessionmaker[AsyncSession], *, refresh_token: str, now: datetime | None = None
) -> bool:
    """End the session the refresh token belongs to (every token of its family). False when
    the token is unknown or its session was already ended. Access tokens already issued stay
    valid until they expire (minutes): they are not looked up per request."""
    if len(refresh_token) > MAX_REFRESH_TOKEN_LENGTH:
        return False
    async with transaction(sessions) as session:
        family_id = await repository.family_of(session, refresh_token_hash(refresh_token))
        if family_id is None:
            return False
        return await repository.revoke_family(session, family_id, now or utcnow()) > 0


async def set_licence_status(
    sessions: async_sessionmaker[AsyncSession],
    user_id: uuid.UUID,
    status: LicenceStatus,
    *,
    now: datetime | None = None,
) -> Rider:
    """Staff's decision on a rider's driving licence (the API allows it to ADMIN tokens only)."""
    async with transaction(sessions) as session:
        user = await repository.set_licence_status(session, user_id, status.value, now or utcnow())
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return Rider.from_user(user)


async def rider_for_token(session: AsyncSession, settings: Settings, token: str) -> Rider:
    """The rider a bearer token names: an access token of ours, or — when settings trust one —
    an external identity provider's token, whose first use creates the account."""
    if token.count(".") != 2:
        raise InvalidToken("not a token this API knows")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken("the token is not valid") from exc
    # The issuer only chooses which verification applies; each one checks it again.
    issuer = unverified.get("iss")
    if issuer == settings.jwt_issuer:
        if not settings.password_accounts:
            raise InvalidToken("this service accepts its identity provider's tokens only")
        user = await repository.user_by_id(session, verify_access_token(settings, token))
        if user is None:
            raise InvalidToken("the account of this token no longer exists")
    elif trusts_external(settings, issuer):
        user = await _external_user(session, await verify_external_token(settings, token))
    else:
        raise InvalidToken("the token's issuer is not trusted here")
    return Rider.from_user(user)


async def _external_user(session: AsyncSession, claims: dict[str, Any]) -> User:
    subject = f"{claims['iss']}|{claims['sub']}"
    user = await repository.user_by_external_subject(session, subject)
    if user is not None:
        return user
    raw_email = claims.get("email")
    if not isinstance(raw_email, str):
        raise InvalidToken("the identity provider's token carries no email")
    try:
        email = normalized_email(raw_email)
    except InvalidInput as exc:
        raise InvalidToken("the identity provider's token carries no usable email") from exc
    name = claims.get("name")
    user = await repository.insert_external_user(
        session,
        external_subject=subject,
        email=email,
        display_name=name.strip()[:MAX_DISPLAY_NAME_LENGTH] or None
        if isinstance(name, str)
        else None,
    )
    if user is not None:
        return user
    # Nothing inserted: a concurrent first request created this subject (it is there now),
    # or the email is another account's.
    user = await repository.user_by_external_subject(session, subject)
    if user is not None:
        return user
    # Not linked by email on purpose: that would hand a password account to whoever controls
    # the address at the identity provider.
    raise EmailTaken("an account with this email exists already: log in with its password")
