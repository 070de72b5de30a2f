"""Sign-in: our own access and refresh tokens (signing key, issuer, lifetimes), whether riders
may have password accounts, and an external identity provider whose tokens are trusted.

Read by app/accounts/tokens.py (signing, verifying, which tokens are accepted),
app/accounts/service.py (issuer, refresh lifetime, password accounts),
app/accounts/external.py (the identity provider's keys) and app/booking/quotes.py (signs
offers with ``jwt_secret``). Password hashing and attempt limits:
app/platform/settings/passwords.py.
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class AccountSettings(MobilityBaseSettings):
    # --- Accounts (app/accounts) ---
    # Signs our own access tokens (HS256). Unset outside production: a per-process random key
    # (tokens then die with the process, fine for development and tests); production refuses
    # to start without one.
    jwt_secret: str | None = Field(default=None, repr=False)
    jwt_issuer: str = "mobility-aggregator"
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    # Trust an external identity provider's JWTs instead of (or as well as) ours: its issuer,
    # the JWKS URL its signing keys are published at, and the audience our API is registered as.
    # false: riders sign in only through that identity provider (signUp, logIn and
    # refreshSession are refused, and our own access tokens are not accepted).
    password_accounts: bool = True
    external_idp_issuer: str | None = None
    external_idp_jwks_url: str | None = None
    external_idp_audience: str | None = None
