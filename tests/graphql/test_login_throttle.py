"""Password guessing is throttled per client address and per account before any hash is
computed, and hashing runs a bounded number at a time without holding database connections
(app/accounts/throttle.py, app/accounts/passwords.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.accounts import passwords
from app.main import create_app
from app.runtime import Runtime

LOG_IN = "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }"
SIGN_UP = "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }"
PASSWORD = "correct horse battery"


class Clients:
    """The app over ASGI, as seen from any client address."""

    def __init__(self, runtime: Runtime, *, fast_path: bool = True) -> None:
        self.app = create_app(runtime.settings, fast_path=fast_path)
        self.app.state.runtime = runtime
        self.last: httpx.Response | None = None

    async def post(self, address: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        transport = httpx.ASGITransport(app=self.app, client=(address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.post("/graphql", json={"query": query, "variables": variables})
        self.last = response
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture(params=[True, False], ids=["fast-path", "strawberry-view"])
async def clients(runtime: Runtime, request: pytest.FixtureRequest) -> AsyncIterator[Clients]:
    yield Clients(runtime, fast_path=request.param)


class HashSpy:
    """Counts password verifications and the most that ran at once."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0, pool: Any = None
    ) -> None:
        self.calls = 0
        self.running = 0
        self.peak = 0
        # Database connections checked out as each hash ends (all logins have read their
        # account by then): what the logins waiting for a hashing slot hold.
        self.connections_while_hashing: list[int] = []
        self._lock = threading.Lock()
        real = passwords.verify_password

        def spied(password: str, stored: str, settings: Any) -> bool:
            with self._lock:
                self.calls += 1
                self.running += 1
                self.peak = max(self.peak, self.running)
            try:
                time.sleep(delay)
                if pool is not None:
                    self.connections_while_hashing.append(pool.checkedout())
                return real(password, stored, settings)
            finally:
                with self._lock:
                    self.running -= 1

        monkeypatch.setattr(passwords, "verify_password", spied)


def _code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors")
    return errors[0]["extensions"]["code"] if errors else None


async def _sign_up(clients: Clients, email: str, address: str = "198.51.100.1") -> None:
    body = await clients.post(address, SIGN_UP, {"i": {"email": email, "password": PASSWORD}})
    assert _code(body) is None, body


async def test_one_account_guessed_from_one_address(
    runtime: Runtime, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "password_attempts_per_account", (5, 0.001))
    await _sign_up(clients, "ada@example.org")
    spy = HashSpy(monkeypatch)
    codes = [
        _code(
            await clients.post("203.0.113.7", LOG_IN, {"e": "ada@example.org", "p": f"guess {i}"})
        )
        for i in range(12)
    ]
    assert codes[:5] == ["INVALID_CREDENTIALS"] * 5
    assert codes[5:] == ["RATE_LIMITED"] * 7
    assert spy.calls == 5, "a refused attempt costs no hash"
    # The right password is refused too while the account's bucket is empty, with a retry time.
    body = await clients.post("203.0.113.8", LOG_IN, {"e": "ADA@example.org", "p": PASSWORD})
    assert _code(body) == "RATE_LIMITED"
    seconds = body["errors"][0]["extensions"]["retryAfterSeconds"]
    assert seconds >= 1
    assert clients.last is not None and clients.last.headers["retry-after"] == str(seconds)


async def test_one_address_guessing_many_accounts(
    runtime: Runtime, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "password_attempts_per_address", (8, 0.001))
    spy = HashSpy(monkeypatch)
    codes = [
        _code(await clients.post("203.0.113.9", LOG_IN, {"e": f"u{i}@example.org", "p": "x" * 12}))
        for i in range(12)
    ]
    assert codes == ["INVALID_CREDENTIALS"] * 8 + ["RATE_LIMITED"] * 4
    assert spy.calls == 8  # unknown emails cost a (dummy) hash each; the refused ones none
    # Another address is not held back.
    other = await clients.post("203.0.113.10", LOG_IN, {"e": "u0@example.org", "p": "x" * 12})
    assert _code(other) == "INVALID_CREDENTIALS"


async def test_hashing_runs_a_bounded_number_at_once_and_holds_no_connection(
    runtime: Runtime, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    emails = [f"r{i}@example.org" for i in range(12)]
    for i, email in enumerate(emails):
        await _sign_up(clients, email, address=f"198.51.100.{i + 10}")
    spy = HashSpy(monkeypatch, delay=0.2, pool=runtime.engine.pool)
    bodies = await asyncio.gather(
        *(
            clients.post(f"192.0.2.{i + 1}", LOG_IN, {"e": email, "p": PASSWORD})
            for i, email in enumerate(emails)
        )
    )
    assert all(_code(b) is None for b in bodies), bodies
    assert spy.calls == len(emails)
    assert spy.peak <= runtime.settings.password_hash_concurrency
    # Twelve logins waiting on two hashing slots held about twelve connections before.
    assert max(spy.connections_while_hashing) <= 2, spy.connections_while_hashing
