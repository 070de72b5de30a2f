"""The account operations as the API calls them: one object over the process's sessions,
settings and Redis (app/runtime.py builds it). Kept apart from app/accounts/service.py because
the throttle it applies depends on the rate limiter (app/rate_limit.py), which itself reads
riders' tokens through the accounts package."""

from __future__ import annotations

from datetime import date
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import throttle
from app.accounts.schemas import AuthSession
from app.accounts.service import log_in, log_out, refresh_session, set_licence_status, sign_up
from app.platform.redis import RedisClient
from app.platform.settings import Settings

__all__ = ["Accounts"]


class Accounts:
    """The account operations over the process's sessions, settings and Redis, as the API
    calls them: each opens its own transactions (the caller holds no session), and the
    password attempts of a client address and an account are throttled here
    (app/accounts/throttle.py) before any password is hashed or checked."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        redis: RedisClient,
        redis_prefix: str,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._redis = redis
        self._prefix = redis_prefix
        self.refresh_session = partial(refresh_session, sessions, settings)
        self.log_out = partial(log_out, sessions)
        self.set_licence_status = partial(set_licence_status, sessions)

    async def sign_up(
        self,
        *,
        client: str | None,
        email: str,
        password: str,
        birth_date: date | None,
        display_name: str | None,
    ) -> AuthSession:
        """:func:`sign_up`, once the client address is within its attempts."""
        await throttle.admit_sign_up(self._redis, self._prefix, self._settings, client=client)
        return await sign_up(
            self._sessions,
            self._settings,
            email=email,
            password=password,
            birth_date=birth_date,
            display_name=display_name,
        )

    async def log_in(self, *, client: str | None, email: str, password: str) -> AuthSession:
        """:func:`log_in`, once the client address and the account are within their attempts."""
        await throttle.admit_log_in(
            self._redis, self._prefix, self._settings, email=email, client=client
        )
        return await log_in(self._sessions, self._settings, email=email, password=password)
