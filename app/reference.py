"""Reference data (providers, vehicle types, pricing plans) cached in process.

These tables are small and change only when a provider syncs, while every search result points
into them: reading them per request would cost more than the search. The cache reloads whole
tables after ``ttl_seconds``, at once when a sync in this process changed them, and when a
result refers to an id it does not hold yet (a provider or plan added since the last load).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import PricingPlan, Provider, VehicleType

# A reload for a missing id happens at most this often, so ids that simply do not exist (a
# dangling reference in a feed) cannot make every request reload.
_MISS_RELOAD_INTERVAL = 0.5


@dataclass(slots=True)
class ReferenceData:
    providers: dict[str, Provider]
    vehicle_types: dict[str, VehicleType]
    pricing_plans: dict[str, PricingPlan]
    loaded_at: float
    # API objects built from the rows above, memoised for as long as this snapshot is used.
    views: dict[tuple[str, str], Any] = field(default_factory=dict)

    def holds(
        self, providers: Iterable[str], types: Iterable[str | None], plans: Iterable[str | None]
    ) -> bool:
        return (
            all(p in self.providers for p in providers)
            and all(t is None or t in self.vehicle_types for t in types)
            and all(p is None or p in self.pricing_plans for p in plans)
        )


class ReferenceCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_seconds: float) -> None:
        self._sessions = sessions
        self._ttl = ttl_seconds
        self._data: ReferenceData | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._data = None

    async def current(self) -> ReferenceData:
        data = self._data
        if data is not None and time.monotonic() - data.loaded_at < self._ttl:
            return data
        return await self._reload(data)

    async def covering(
        self,
        providers: Iterable[str] = (),
        types: Iterable[str | None] = (),
        plans: Iterable[str | None] = (),
    ) -> ReferenceData:
        """Reference data that holds these ids, if they exist at all."""
        providers, types, plans = list(providers), list(types), list(plans)
        data = await self.current()
        if data.holds(providers, types, plans):
            return data
        if time.monotonic() - data.loaded_at < _MISS_RELOAD_INTERVAL:
            return data
        return await self._reload(data)

    async def _reload(self, seen: ReferenceData | None) -> ReferenceData:
        async with self._lock:
            if self._data is not None and self._data is not seen:
                return self._data  # another request reloaded while we waited
            async with self._sessions() as session:
                providers = {p.id: p for p in await session.scalars(select(Provider))}
                types = {t.id: t for t in await session.scalars(select(VehicleType))}
                plans = {p.id: p for p in await session.scalars(select(PricingPlan))}
            self._data = ReferenceData(providers, types, plans, time.monotonic())
            return self._data
