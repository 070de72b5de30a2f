"""The accounts service against the real database: passwords, sessions, tokens, external IdP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import accounts
from app.accounts import external, passwords
from app.accounts.external import JwksCache, verify_external_token
from app.accounts.tokens import ALGORITHM
from app.booking.eligibility import LicenceStatus
from app.models import RefreshToken, User
from app.platform.db import transaction
from app.platform.errors import InvalidInput
from app.platform.settings import Settings
from app.runtime import Runtime
from providers.simulators.feed_server import serve_in_background
from tests.conftest import make_settings

PASSWORD = "correct horse battery"
IDP_ISSUER = "https://idp.example.test/"
IDP_AUDIENCE = "mobility-api"


# --- helpers -------------------------------------------------------------------------------


async def sign_up(
    runtime: Runtime,
    email: str = "ada@example.com",
    *,
    password: str = PASSWORD,
    birth_date: date | None = date(1990, 5, 17),
    display_name: str | None = "Ada",
    now: datetime | None = None,
    settings: Settings | None = None,
) -> accounts.AuthSession:
    return await accounts.sign_up(
        runtime.sessions,
        settings or runtime.settings,
        email=email,
        password=password,
        birth_date=birth_date,
        display_name=display_name,
        now=now,
    )


async def log_in(
    runtime: Runtime, email: str, password: str, settings: Settings | None = None
) -> accounts.AuthSession:
    return await accounts.log_in(
        runtime.sessions, settings or runtime.settings, email=email, password=password
    )


async def refresh(
    runtime: Runtime, token: str, now: datetime | None = None
) -> accounts.AuthSession:
    return await accounts.refresh_session(
        runtime.sessions, runtime.settings, refresh_token=token, now=now
    )


async def rider_for(runtime: Runtime, token: str, settings: Settings | None = None) -> Any:
    async with transaction(runtime.sessions) as session:
        return await accounts.rider_for_token(session, settings or runtime.settings, token)


async def user_row(runtime: Runtime, user_id: uuid.UUID) -> User:
    async with runtime.sessions() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user


async def family_rows(runtime: Runtime, user_id: uuid.UUID) -> list[RefreshToken]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(RefreshToken)
            .where(RefreshToken.user_id == user_id)
            .order_by(RefreshToken.created_at)
        )
        return list(rows)


# --- passwords -----------------------------------------------------------------------------


def test_password_hash_is_argon2id_with_the_configured_cost_and_verifies() -> None:
    settings = make_settings(argon2_time_cost=2, argon2_memory_kib=2048)
    stored = accounts.hash_password(PASSWORD, settings)
    assert stored.startswith("$argon2id$")
    assert "m=2048,t=2," in stored
    assert accounts.verify_password(PASSWORD, stored, settings)
    assert not accounts.verify_password(PASSWORD + "!", stored, settings)
    assert not accounts.verify_password(PASSWORD, "not a hash", settings)


def test_a_hash_made_with_other_parameters_needs_rehash() -> None:
    cheap = make_settings(argon2_time_cost=1, argon2_memory_kib=1024)
    dearer = make_settings(argon2_time_cost=2, argon2_memory_kib=1024)
    stored = accounts.hash_password(PASSWORD, cheap)
    assert not accounts.needs_rehash(stored, cheap)
    assert accounts.needs_rehash(stored, dearer)


def test_passwords_are_compared_after_unicode_normalisation() -> None:
    settings = make_settings()
    composed, decomposed = "caf\u00e9-passw0rd", "cafe\u0301-passw0rd"
    assert composed != decomposed
    assert accounts.verify_password(
        decomposed, accounts.hash_password(composed, settings), settings
    )


# --- sign-up and login ---------------------------------------------------------------------


async def test_sign_up_then_log_in_gives_a_session_whose_token_names_the_rider(
    runtime: Runtime,
) -> None:
    signed_up = await sign_up(runtime, "Ada@Example.com", display_name="  Ada L.  ")
    rider = signed_up.rider
    assert (rider.email, rider.display_name, rider.birth_date, rider.licence_status) == (
        "Ada@Example.com",
        "Ada L.",
        date(1990, 5, 17),
        LicenceStatus.UNVERIFIED,
    )
    assert signed_up.refresh_token.startswith("mob_rt_")

    logged_in = await log_in(runtime, "ada@EXAMPLE.com", PASSWORD)
    assert logged_in.rider == rider
    assert logged_in.refresh_token != signed_up.refresh_token
    for session in (signed_up, logged_in):
        assert await rider_for(runtime, session.access_token) == rider

    # Only hashes are stored: neither the password nor a refresh token appears in a row.
    user = await user_row(runtime, rider.id)
    assert user.password_hash is not None and PASSWORD not in user.password_hash
    tokens = await family_rows(runtime, rider.id)
    assert len(tokens) == 2
    assert len({t.family_id for t in tokens}) == 2  # two logins, two sessions
    assert {bytes(t.token_hash) for t in tokens} == {
        accounts.tokens.refresh_token_hash(s.refresh_token) for s in (signed_up, logged_in)
    }


async def test_access_token_carries_the_documented_claims(runtime: Runtime) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    session = await sign_up(runtime, now=now)
    claims = jwt.decode(
        session.access_token, options={"verify_signature": False}, algorithms=[ALGORITHM]
    )
    ttl = runtime.settings.access_token_ttl_seconds
    assert claims == {
        "sub": str(session.rider.id),
        "iss": runtime.settings.jwt_issuer,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl,
        "typ": "access",
    }
    assert session.access_token_expires_at == now + timedelta(seconds=ttl)
    assert jwt.get_unverified_header(session.access_token)["alg"] == "HS256"


async def test_duplicate_email_in_another_case_is_email_taken(runtime: Runtime) -> None:
    await sign_up(runtime, "ada@example.com")
    with pytest.raises(accounts.EmailTaken) as caught:
        await sign_up(runtime, "ADA@example.COM", password="another password")
    assert caught.value.code == "EMAIL_TAKEN"
    async with runtime.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM users"))).scalar_one() == 1


async def test_concurrent_sign_ups_with_one_email_create_one_account(runtime: Runtime) -> None:
    emails = ["bo@example.com", "BO@example.com", "Bo@Example.com", "bo@EXAMPLE.COM"]
    results = await asyncio.gather(*(sign_up(runtime, e) for e in emails), return_exceptions=True)
    won = [r for r in results if isinstance(r, accounts.AuthSession)]
    lost = [r for r in results if isinstance(r, accounts.EmailTaken)]
    assert (len(won), len(lost)) == (1, len(emails) - 1), results
    async with runtime.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM users"))).scalar_one() == 1


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("email", "not-an-email", "INVALID_EMAIL"),
        ("email", "a@b", "INVALID_EMAIL"),
        ("email", "two words@example.com", "INVALID_EMAIL"),
        ("email", "x" * 250 + "@example.com", "INVALID_EMAIL"),
        ("password", "x" * 9, "INVALID_PASSWORD"),
        ("password", "x" * 129, "INVALID_PASSWORD"),
        ("birth_date", datetime.now(UTC).date() + timedelta(days=1), "INVALID_BIRTH_DATE"),
        ("birth_date", date(datetime.now(UTC).year - 121, 1, 1), "INVALID_BIRTH_DATE"),
        ("display_name", "x" * 101, "INVALID_DISPLAY_NAME"),
    ],
)
async def test_sign_up_refuses_bad_input(
    runtime: Runtime, field: str, value: object, code: str
) -> None:
    values: dict[str, Any] = {
        "email": "ok@example.com",
        "password": PASSWORD,
        "birth_date": date(1990, 1, 1),
        "display_name": None,
    }
    values[field] = value
    with pytest.raises(InvalidInput) as caught:
        await accounts.sign_up(runtime.sessions, runtime.settings, **values)
    assert caught.value.code == code
    async with runtime.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM users"))).scalar_one() == 0


async def test_password_length_bounds_are_inclusive(runtime: Runtime) -> None:
    shortest, longest = "s" * 10, "l" * 128
    await sign_up(runtime, "short@example.com", password=shortest)
    await sign_up(runtime, "long@example.com", password=longest)
    assert (await log_in(runtime, "short@example.com", shortest)).rider.email == (
        "short@example.com"
    )
    assert (await log_in(runtime, "long@example.com", longest)).rider.email == "long@example.com"


async def test_wrong_password_and_unknown_email_are_the_same_error(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_up(runtime, "ada@example.com")
    dummy_checks: list[str] = []
    real_dummy = passwords.verify_dummy

    def counting_dummy(password: str, settings: Settings) -> None:
        dummy_checks.append(password)
        real_dummy(password, settings)

    monkeypatch.setattr("app.accounts.passwords.verify_dummy", counting_dummy)
    errors = []
    for email, password in [
        ("ada@example.com", "wrong password!"),
        ("nobody@example.com", PASSWORD),
        ("ada@example.com", "x" * 500),
    ]:
        with pytest.raises(accounts.InvalidCredentials) as caught:
            await log_in(runtime, email, password)
        errors.append((caught.value.code, caught.value.message))
    assert errors == [("INVALID_CREDENTIALS", "wrong email or password")] * 3
    # The unknown email still cost a password verification (against the dummy hash).
    assert dummy_checks == [PASSWORD]


async def test_log_in_rehashes_a_password_hashed_with_old_parameters(runtime: Runtime) -> None:
    session = await sign_up(runtime)
    before = (await user_row(runtime, session.rider.id)).password_hash
    assert before is not None and ",t=1," in before
    dearer = make_settings(argon2_time_cost=2, argon2_memory_kib=1024)
    await log_in(runtime, "ada@example.com", PASSWORD, settings=dearer)
    after = (await user_row(runtime, session.rider.id)).password_hash
    assert after is not None and ",t=2," in after
    assert accounts.verify_password(PASSWORD, after, dearer)
    # Once rehashed, logging in under the same parameters leaves the hash alone.
    await log_in(runtime, "ada@example.com", PASSWORD, settings=dearer)
    assert (await user_row(runtime, session.rider.id)).password_hash == after


# --- access tokens -------------------------------------------------------------------------


async def test_expired_access_token_is_token_expired(runtime: Runtime) -> None:
    session = await sign_up(runtime)
    ttl = runtime.settings.access_token_ttl_seconds
    minted = accounts.issue_access_token(
        runtime.settings, session.rider.id, now=datetime.now(UTC) - timedelta(seconds=ttl + 5)
    )
    assert minted.expires_at < datetime.now(UTC)
    with pytest.raises(accounts.TokenExpired) as caught:
        await rider_for(runtime, minted.token)
    assert caught.value.code == "TOKEN_EXPIRED"
    # One that expires later is fine: the clock, not the token, made the difference.
    fresh = accounts.issue_access_token(
        runtime.settings, session.rider.id, now=datetime.now(UTC) - timedelta(seconds=ttl - 30)
    )
    assert (await rider_for(runtime, fresh.token)).id == session.rider.id


def _tampered(token: str) -> str:
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["sub"] = str(uuid.uuid4())
    forged = jwt.encode(claims, "x" * 32, algorithm="HS256").split(".")[1]
    return ".".join([header, forged, signature])


async def test_tampered_foreign_or_malformed_tokens_are_invalid(runtime: Runtime) -> None:
    session = await sign_up(runtime)
    rider_id = str(session.rider.id)
    now = datetime.now(UTC)
    base = {
        "sub": rider_id,
        "iss": runtime.settings.jwt_issuer,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "typ": "access",
    }
    expired_then_tampered = _tampered(
        accounts.issue_access_token(
            runtime.settings, session.rider.id, now=now - timedelta(days=1)
        ).token
    )
    candidates = {
        "tampered payload": _tampered(session.access_token),
        "signature cut": session.access_token[:-4],
        "other secret": jwt.encode(base, "another-secret-of-32-characters!!", algorithm="HS256"),
        "alg none": jwt.encode(base, "", algorithm="none"),
        "unknown issuer": jwt.encode({**base, "iss": "someone-else"}, "z" * 32, algorithm="HS256"),
        "expired and tampered": expired_then_tampered,
        "not a jwt": "hello",
        "three dots of junk": "a.b.c",
    }
    for name, token in candidates.items():
        with pytest.raises(accounts.InvalidToken) as caught:
            await rider_for(runtime, token)
        assert caught.value.code == "INVALID_TOKEN", name


async def test_wrong_typ_signed_with_our_key_is_invalid(runtime: Runtime) -> None:
    session = await sign_up(runtime)
    key = accounts.tokens._signing_key(runtime.settings)
    claims = jwt.decode(session.access_token, key, algorithms=[ALGORITHM])
    assert (await rider_for(runtime, jwt.encode(claims, key, algorithm=ALGORITHM))).id == (
        session.rider.id
    )
    not_access = jwt.encode({**claims, "typ": "id"}, key, algorithm=ALGORITHM)
    with pytest.raises(accounts.InvalidToken):
        await rider_for(runtime, not_access)


async def test_token_of_a_deleted_account_is_invalid(runtime: Runtime) -> None:
    session = await sign_up(runtime)
    async with transaction(runtime.sessions) as s:
        await s.execute(text("DELETE FROM users"))
    with pytest.raises(accounts.InvalidToken):
        await rider_for(runtime, session.access_token)


# --- refresh tokens ------------------------------------------------------------------------


async def test_refresh_rotates_and_the_successor_stays_in_the_family(runtime: Runtime) -> None:
    first = await sign_up(runtime)
    second = await refresh(runtime, first.refresh_token)
    third = await refresh(runtime, second.refresh_token)
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert third.rider == first.rider
    assert (await rider_for(runtime, third.access_token)).id == first.rider.id
    rows = await family_rows(runtime, first.rider.id)
    assert len(rows) == 3 and len({r.family_id for r in rows}) == 1
    assert [r.used_at is not None for r in rows] == [True, True, False]
    assert all(r.revoked_at is None for r in rows)


async def test_reusing_a_used_refresh_token_revokes_the_whole_family(runtime: Runtime) -> None:
    first = await sign_up(runtime)
    other_session = await log_in(runtime, "ada@example.com", PASSWORD)
    successor = await refresh(runtime, first.refresh_token)

    with pytest.raises(accounts.RefreshTokenReused) as caught:
        await refresh(runtime, first.refresh_token)
    assert caught.value.code == "REFRESH_TOKEN_REUSED"
    # The revocation was committed although the call failed: the successor is dead too.
    with pytest.raises(accounts.RefreshTokenRevoked) as revoked:
        await refresh(runtime, successor.refresh_token)
    assert revoked.value.code == "REFRESH_TOKEN_REVOKED"
    by_hash = {bytes(r.token_hash): r for r in await family_rows(runtime, first.rider.id)}
    family = by_hash[_hash(first.refresh_token)].family_id
    assert by_hash[_hash(successor.refresh_token)].family_id == family
    assert all(r.revoked_at is not None for r in by_hash.values() if r.family_id == family)
    assert by_hash[_hash(other_session.refresh_token)].revoked_at is None
    # Another session of the same rider (another device) is not affected.
    assert (await refresh(runtime, other_session.refresh_token)).rider.id == first.rider.id


def _hash(token: str) -> bytes:
    return accounts.tokens.refresh_token_hash(token)


async def test_concurrent_refreshes_with_one_token_let_exactly_one_win(runtime: Runtime) -> None:
    for round_ in range(5):
        session = await sign_up(runtime, f"racer{round_}@example.com")
        results = await asyncio.gather(
            *(refresh(runtime, session.refresh_token) for _ in range(4)), return_exceptions=True
        )
        won = [r for r in results if isinstance(r, accounts.AuthSession)]
        reused = [r for r in results if isinstance(r, accounts.RefreshTokenReused)]
        assert (len(won), len(reused)) == (1, 3), results
        rows = await family_rows(runtime, session.rider.id)
        # One successor was issued; the losers' reuse then ended the session.
        assert len(rows) == 2
        assert all(r.revoked_at is not None for r in rows)


async def test_expired_refresh_token_is_refresh_token_expired(runtime: Runtime) -> None:
    ttl = runtime.settings.refresh_token_ttl_seconds
    issued_at = datetime.now(UTC) - timedelta(seconds=ttl + 1)
    session = await sign_up(runtime, now=issued_at)
    assert session.refresh_token_expires_at < datetime.now(UTC)
    with pytest.raises(accounts.RefreshTokenExpired) as caught:
        await refresh(runtime, session.refresh_token)
    assert caught.value.code == "REFRESH_TOKEN_EXPIRED"
    # Just before its expiry the same token still works.
    fresh = await sign_up(runtime, "fresh@example.com", now=issued_at)
    renewed = await refresh(
        runtime, fresh.refresh_token, now=issued_at + timedelta(seconds=ttl - 1)
    )
    assert renewed.rider.email == "fresh@example.com"


async def test_unknown_or_malformed_refresh_token_is_invalid(runtime: Runtime) -> None:
    for token in ["mob_rt_" + "A" * 43, "not-a-refresh-token", "mob_rt_" + "x" * 300]:
        with pytest.raises(accounts.InvalidRefreshToken) as caught:
            await refresh(runtime, token)
        assert caught.value.code == "INVALID_REFRESH_TOKEN"


async def test_log_out_ends_the_family_and_is_idempotent(runtime: Runtime) -> None:
    first = await sign_up(runtime)
    successor = await refresh(runtime, first.refresh_token)
    # Any token of the family names the session, even the used one.
    assert await accounts.log_out(runtime.sessions, refresh_token=first.refresh_token)
    with pytest.raises(accounts.RefreshTokenRevoked):
        await refresh(runtime, successor.refresh_token)
    assert not await accounts.log_out(runtime.sessions, refresh_token=successor.refresh_token)
    assert not await accounts.log_out(runtime.sessions, refresh_token="mob_rt_unknown")


# --- licence status ------------------------------------------------------------------------


async def test_set_licence_status_changes_the_rider_and_unknown_user_is_not_found(
    runtime: Runtime,
) -> None:
    session = await sign_up(runtime)
    before = datetime.now(UTC)
    rider = await accounts.set_licence_status(
        runtime.sessions, session.rider.id, LicenceStatus.VERIFIED
    )
    assert rider.licence_status is LicenceStatus.VERIFIED
    assert rider == session.rider.__class__(
        id=session.rider.id,
        email=session.rider.email,
        display_name=session.rider.display_name,
        birth_date=session.rider.birth_date,
        licence_status=LicenceStatus.VERIFIED,
    )
    user = await user_row(runtime, session.rider.id)
    assert user.licence_status == "VERIFIED"
    assert user.licence_updated_at is not None and user.licence_updated_at >= before
    # The next request with the same access token sees the new status.
    assert (await rider_for(runtime, session.access_token)).licence_status is (
        LicenceStatus.VERIFIED
    )
    with pytest.raises(accounts.UserNotFound) as caught:
        await accounts.set_licence_status(runtime.sessions, uuid.uuid4(), LicenceStatus.REJECTED)
    assert caught.value.code == "USER_NOT_FOUND"


# --- settings ------------------------------------------------------------------------------


def test_production_without_a_jwt_secret_refuses_to_start() -> None:
    production = make_settings(environment="production", jwt_secret=None)
    with pytest.raises(accounts.AccountsMisconfigured, match="MOBILITY_JWT_SECRET"):
        accounts.check_settings(production)
    # The app itself refuses to be built with it, before serving anything.
    from app.main import create_app

    with pytest.raises(accounts.AccountsMisconfigured, match="MOBILITY_JWT_SECRET"):
        create_app(production)
    # Nor does it sign anything with a throwaway key.
    with pytest.raises(accounts.AccountsMisconfigured):
        accounts.issue_access_token(production, uuid.uuid4())
    with pytest.raises(accounts.AccountsMisconfigured, match="at least 32"):
        accounts.check_settings(make_settings(environment="production", jwt_secret="short"))
    accounts.check_settings(make_settings(environment="production", jwt_secret="s" * 32))
    accounts.check_settings(make_settings(environment="development", jwt_secret=None))


def test_tokens_signed_with_the_configured_secret_verify_across_processes() -> None:
    settings = make_settings(environment="production", jwt_secret="k" * 40)
    user_id = uuid.uuid4()
    token = accounts.issue_access_token(settings, user_id).token
    # What another process with the same settings computes: HS256 over the configured secret.
    claims = jwt.decode(token, "k" * 40, algorithms=["HS256"], issuer=settings.jwt_issuer)
    assert claims["sub"] == str(user_id)
    assert accounts.verify_access_token(settings, token) == user_id


def test_a_partial_external_idp_configuration_refuses_to_start() -> None:
    with pytest.raises(accounts.AccountsMisconfigured, match="AUDIENCE"):
        accounts.check_settings(
            make_settings(
                external_idp_issuer=IDP_ISSUER, external_idp_jwks_url="http://127.0.0.1/jwks"
            )
        )
    with pytest.raises(accounts.AccountsMisconfigured, match="must not be ours"):
        accounts.check_settings(
            make_settings(
                external_idp_issuer="mobility-aggregator",
                external_idp_jwks_url="http://127.0.0.1/jwks",
                external_idp_audience=IDP_AUDIENCE,
            )
        )


# --- external identity provider ------------------------------------------------------------


@lru_cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@lru_cache
def ec_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(kid: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "RS256"
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "ES256"
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class IdentityProvider:
    """A local identity provider: a real HTTP server publishing a JWKS, and a token minter."""

    base_url: str = ""
    keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    requests: int = 0

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    def add_key(
        self, kid: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, publish: bool
    ) -> None:
        self.keys[kid] = key
        if publish:
            self.published.append(kid)

    async def jwks(self, request: Request) -> Response:
        self.requests += 1
        return JSONResponse({"keys": [public_jwk(k, self.keys[k]) for k in self.published]})

    def token(self, kid: str = "rsa-1", **overrides: Any) -> str:
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": IDP_ISSUER,
            "aud": IDP_AUDIENCE,
            "sub": "user-42",
            "email": "grace@idp.example.com",
            "name": "Grace",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.keys[kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})

    def settings(self, **overrides: Any) -> Settings:
        return make_settings(
            external_idp_issuer=IDP_ISSUER,
            external_idp_jwks_url=self.jwks_url,
            external_idp_audience=IDP_AUDIENCE,
            **overrides,
        )


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.add_key("rsa-1", rsa_key("one"), publish=True)
    provider.add_key("ec-1", ec_key("one"), publish=True)
    app = Starlette(routes=[Route("/.well-known/jwks.json", provider.jwks)])
    async with serve_in_background(app) as base_url:
        provider.base_url = base_url
        yield provider


async def test_external_token_creates_the_rider_once_and_then_finds_it(
    runtime: Runtime, idp: IdentityProvider
) -> None:
    settings = idp.settings()
    first = await rider_for(runtime, idp.token(), settings)
    assert (first.email, first.display_name, first.birth_date, first.licence_status) == (
        "grace@idp.example.com",
        "Grace",
        None,
        LicenceStatus.UNVERIFIED,
    )
    again = await rider_for(runtime, idp.token("ec-1"), settings)  # ES256, same subject
    assert again == first
    user = await user_row(runtime, first.id)
    assert user.external_subject == f"{IDP_ISSUER}|user-42"
    assert user.password_hash is None
    # The keys were fetched once for both tokens.
    assert idp.requests == 1
    # An external-only account has no password to log in with.
    with pytest.raises(accounts.InvalidCredentials):
        await log_in(runtime, "grace@idp.example.com", "anything at all")


async def test_concurrent_first_uses_of_an_external_identity_create_one_account(
    runtime: Runtime, idp: IdentityProvider
) -> None:
    settings = idp.settings()
    token = idp.token(sub="new-subject")
    riders = await asyncio.gather(*(rider_for(runtime, token, settings) for _ in range(5)))
    assert len({r.id for r in riders}) == 1
    async with runtime.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM users"))).scalar_one() == 1


async def test_external_tokens_with_wrong_claims_or_keys_are_refused(
    runtime: Runtime, idp: IdentityProvider
) -> None:
    settings = idp.settings()
    idp.add_key("rsa-unlisted", rsa_key("unlisted"), publish=False)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    hs256_with_public_key = jwt.encode(
        {"iss": IDP_ISSUER, "aud": IDP_AUDIENCE, "sub": "x", "exp": 2_000_000_000},
        "public-key-as-hmac-secret-000000",
        algorithm="HS256",
        headers={"kid": "rsa-1"},
    )
    cases: dict[str, tuple[str, str]] = {
        "wrong audience": (idp.token(aud="another-api"), "INVALID_TOKEN"),
        "no audience": (idp.token(aud=None), "INVALID_TOKEN"),
        # Another issuer is not even looked at: it is neither ours nor the trusted provider.
        "wrong issuer": (idp.token(iss="https://evil.example.test/"), "INVALID_TOKEN"),
        "expired": (
            idp.token(exp=int(long_ago.timestamp()), iat=int(long_ago.timestamp())),
            "TOKEN_EXPIRED",
        ),
        "unknown kid": (idp.token("rsa-unlisted"), "INVALID_TOKEN"),
        "HS256": (hs256_with_public_key, "INVALID_TOKEN"),
        "no email": (idp.token(sub="no-mail", email=None), "INVALID_TOKEN"),
    }
    for name, (token, code) in cases.items():
        with pytest.raises(accounts.Unauthenticated) as caught:
            await rider_for(runtime, token, settings)
        assert caught.value.code == code, name
    async with runtime.sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM users"))).scalar_one() == 0
    # The same provider's token is not trusted by a deployment that does not configure it.
    with pytest.raises(accounts.InvalidToken):
        await rider_for(runtime, idp.token(), make_settings())


async def test_external_identity_with_the_email_of_a_password_account_is_not_linked(
    runtime: Runtime, idp: IdentityProvider
) -> None:
    await sign_up(runtime, "Grace@idp.example.com")
    with pytest.raises(accounts.EmailTaken):
        await rider_for(runtime, idp.token(), idp.settings())


async def test_jwks_is_cached_and_refetched_for_an_unknown_kid_at_most_once_a_minute(
    idp: IdentityProvider,
) -> None:
    settings = idp.settings()
    clock = [1000.0]
    cache = JwksCache(idp.jwks_url, ttl_seconds=600, clock=lambda: clock[0])

    async def verify(token: str) -> dict[str, Any]:
        return await verify_external_token(settings, token, cache)

    assert (await verify(idp.token()))["sub"] == "user-42"
    assert (await verify(idp.token("ec-1")))["sub"] == "user-42"
    assert idp.requests == 1

    # The provider rotates in a new key. Within a minute of the last fetch, the unknown kid is
    # refused without asking the provider again (made-up kids cannot make us hammer it).
    idp.add_key("rsa-2", rsa_key("two"), publish=True)
    clock[0] += 30
    for _ in range(3):
        with pytest.raises(accounts.InvalidToken):
            await verify(idp.token("rsa-2"))
    assert idp.requests == 1
    # A minute after the last fetch, an unknown kid fetches once and finds the new key.
    clock[0] += 31
    assert (await verify(idp.token("rsa-2")))["sub"] == "user-42"
    assert idp.requests == 2
    # Right after that fetch, a made-up kid is refused without another one.
    with pytest.raises(accounts.InvalidToken):
        await verify(_with_kid(idp.token(), "made-up"))
    assert idp.requests == 2
    # After the TTL the set is fetched again even for known kids.
    clock[0] += 600
    await verify(idp.token())
    assert idp.requests == 3


def _with_kid(token: str, kid: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, rsa_key("one"), algorithm="RS256", headers={"kid": kid})


async def test_unreachable_jwks_is_idp_unavailable_and_old_keys_keep_working(
    idp: IdentityProvider,
) -> None:
    settings = idp.settings()
    clock = [0.0]
    cache = JwksCache(idp.jwks_url, ttl_seconds=60, clock=lambda: clock[0])
    await verify_external_token(settings, idp.token(), cache)
    # The provider's endpoint goes away: cached keys keep serving after the TTL.
    cache.url = idp.base_url + "/gone"
    clock[0] += 120
    assert (await verify_external_token(settings, idp.token(), cache))["sub"] == "user-42"
    # With no keys at all, the answer says the provider is unavailable (not the token's fault).
    empty = JwksCache(idp.base_url + "/gone", clock=lambda: clock[0])
    with pytest.raises(accounts.IdentityProviderUnavailable) as caught:
        await verify_external_token(settings, idp.token(), empty)
    assert caught.value.code == "IDP_UNAVAILABLE"


def test_the_process_wide_jwks_cache_is_one_per_url() -> None:
    a = external.jwks_cache_for("http://127.0.0.1:1/a")
    assert external.jwks_cache_for("http://127.0.0.1:1/a") is a
    assert external.jwks_cache_for("http://127.0.0.1:1/b") is not a
