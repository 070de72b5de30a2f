"""Passwords: the cost of hashing them, hashes computed at once, and how many attempts a client
address and an account get.

Read by app/accounts/passwords.py (argon2 cost, concurrency) and app/accounts/throttle.py
(attempt limits).
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class PasswordSettings(MobilityBaseSettings):
    # Password hashing (argon2id). Tests lower the cost; the defaults are argon2-cffi's.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    # Password hashes computed at once per process (app/accounts/passwords.py): each takes
    # argon2_memory_kib of memory and a core for its duration.
    password_hash_concurrency: int = Field(default=2, ge=1)
    # Password attempts (log-ins and sign-ups) per client address, and log-ins per account:
    # [burst, per_second] token buckets in Redis (app/accounts/throttle.py). An app retries a
    # mistyped password a few times; a person does not sign up every minute.
    password_attempts_per_address: tuple[float, float] = (20, 1 / 6)
    password_attempts_per_account: tuple[float, float] = (10, 1 / 30)
