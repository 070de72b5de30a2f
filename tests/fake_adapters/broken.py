"""ScooterCo adapters with one deliberate defect each: the contract kit must catch every one.

Each is registered under its own entry point (``tests/fake_adapters/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

import httpx
import orjson

from adapters.base import FetchContext
from adapters.dto import Snapshot
from adapters.http import FeedCache
from tests.fake_adapters.scooterco import ScooterCoAdapter


class CrashingConfig(ScooterCoAdapter):
    """Trusts its config: a missing or mistyped option raises KeyError / TypeError."""

    name: ClassVar[str] = "fake-crashing-config"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CrashingConfig:
        return cls(config["url"] + "", config.get("api_key"))


class LeaksTransportErrors(ScooterCoAdapter):
    """Lets httpx and JSON errors escape, ignores Retry-After and the size cap."""

    name: ClassVar[str] = "fake-leaky-errors"

    async def fetch_snapshot(self, ctx: FetchContext) -> Snapshot:
        response = await ctx.http.get(self.url)
        response.raise_for_status()
        return self._parse(orjson.loads(response.content))


class OwnHttpClient(ScooterCoAdapter):
    """Makes its own HTTP client: the deployment's timeouts and the kit's faults never reach it."""

    name: ClassVar[str] = "fake-own-client"

    async def fetch_snapshot(self, ctx: FetchContext) -> Snapshot:
        async with httpx.AsyncClient() as client:
            return await super().fetch_snapshot(FetchContext(http=client, cache=FeedCache()))


class MalformedSnapshot(ScooterCoAdapter):
    """Returns a snapshot the sync cannot trust: a duplicated vehicle, a naive timestamp, a
    dangling vehicle type, a latitude out of range."""

    name: ClassVar[str] = "fake-malformed"

    async def fetch_snapshot(self, ctx: FetchContext) -> Snapshot:
        snapshot = await super().fetch_snapshot(ctx)
        first, second, *rest = snapshot.vehicles
        snapshot.vehicles = [
            replace(first, last_reported=datetime(2025, 6, 1, 12, 0)),
            replace(second, lat=second.lat + 100.0, vehicle_type_id="no-such-model"),
            *rest,
            first,
        ]
        return snapshot


class Nondeterministic(ScooterCoAdapter):
    """Rotates its vehicle list on every fetch: the same data never gives the same snapshot."""

    name: ClassVar[str] = "fake-nondeterministic"

    def __init__(self, url: str, api_key: str | None = None) -> None:
        super().__init__(url, api_key)
        self.fetches = 0

    async def fetch_snapshot(self, ctx: FetchContext) -> Snapshot:
        snapshot = await super().fetch_snapshot(ctx)
        self.fetches += 1
        turn = self.fetches % len(snapshot.vehicles)
        snapshot.vehicles = snapshot.vehicles[turn:] + snapshot.vehicles[:turn]
        return snapshot


class Misnamed(ScooterCoAdapter):
    """Works, but its ``name`` is not the name it is registered under."""

    name: ClassVar[str] = "scooterco"
