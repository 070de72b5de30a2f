"""The sync pipeline: adapter snapshot -> one PostGIS transaction -> Redis index -> delta channel.

A failing feed never loses data: the previous snapshot stays, the provider is marked stale with
the error, and the other providers' syncs go on. A Redis failure after the database commit marks
the provider's index for a rebuild from PostGIS on its next sync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from redis.exceptions import RedisError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.base import AdapterConfigError, AdapterError, FetchContext, load_adapter
from adapters.dto import Finding, Snapshot
from adapters.http import FeedCache
from app.db import transaction
from app.models import Vehicle
from app.settings import Settings
from app.vehicle_index import VehicleDoc, VehicleIndex
from providers import repository
from providers.merge import (
    PRICING_PLANS,
    REGIONS,
    STATIONS,
    VEHICLE_TYPES,
    VEHICLES,
    ZONES,
    MergeOutcome,
    merge_table,
)
from providers.rows import build_rows, rule_json

log = logging.getLogger(__name__)

MAX_STORED_FINDINGS = 200
Progress = Callable[[str], None]


class ProviderNotFound(LookupError):
    pass


@dataclass(slots=True)
class SyncReport:
    provider_id: str
    ok: bool
    error: str | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    duration_seconds: float = 0.0
    delta_messages: int = 0
    index_updated: bool = False

    @property
    def error_count(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warning_count(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")


def _now() -> datetime:
    return datetime.now(UTC)


class SyncEngine:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        index: VehicleIndex,
        http: httpx.AsyncClient,
        settings: Settings,
    ) -> None:
        self.sessions = sessions
        self.index = index
        self.http = http
        self.settings = settings
        self._caches: dict[str, FeedCache] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._index_dirty: set[str] = set()

    def _lock(self, provider_id: str) -> asyncio.Lock:
        return self._locks.setdefault(provider_id, asyncio.Lock())

    async def sync(self, provider_id: str, *, progress: Progress | None = None) -> SyncReport:
        """One full sync of one provider. Never raises for feed problems: see the report."""
        say = progress or (lambda _msg: None)
        async with self._lock(provider_id):
            return await self._sync_locked(provider_id, say)

    async def _sync_locked(self, provider_id: str, say: Progress) -> SyncReport:
        started = time.perf_counter()
        async with transaction(self.sessions) as session:
            provider = await repository.get(session, provider_id)
            if provider is None:
                raise ProviderNotFound(provider_id)
            adapter_name, config = provider.adapter, dict(provider.config)
            run = await repository.start_run(session, provider_id, _now())
            run_id = run.id

        report = SyncReport(provider_id=provider_id, ok=False)
        try:
            adapter = load_adapter(adapter_name, config)
            say(f"fetching feeds ({adapter_name})")
            cache = self._caches.setdefault(provider_id, FeedCache())
            ctx = FetchContext(
                http=self.http,
                cache=cache,
                preferred_language=str(config.get("language") or self.settings.preferred_language),
            )
            async with asyncio.timeout(self.settings.sync_deadline_seconds):
                snapshot = await adapter.fetch_snapshot(ctx)
        except (AdapterError, AdapterConfigError, TimeoutError) as exc:
            message = str(exc) or "sync deadline exceeded"
            if isinstance(exc, TimeoutError):
                message = f"sync deadline of {self.settings.sync_deadline_seconds:g}s exceeded"
            return await self._fail(report, run_id, message, started)
        except Exception as exc:  # an adapter bug must not stop the other providers
            log.exception("adapter %s crashed for provider %s", adapter_name, provider_id)
            return await self._fail(report, run_id, f"adapter error: {exc!r}", started)

        say(
            f"fetched {len(snapshot.vehicles)} vehicles, {len(snapshot.stations)} stations, "
            f"{len(snapshot.zones)} zones; merging"
        )
        rows = build_rows(provider_id, snapshot)
        report.findings = [*snapshot.findings, *rows.findings]
        try:
            outcomes = await self._merge(provider_id, run_id, snapshot, rows, report)
        except (asyncpg.PostgresError, OSError) as exc:
            log.exception("merge failed for provider %s", provider_id)
            return await self._fail(report, run_id, f"database error: {exc}", started)

        vehicles = outcomes["vehicles"]
        report.counts = {name: o.counts() for name, o in outcomes.items()}
        report.ok = True
        say("updating the search index")
        await self._update_index(provider_id, rows.vehicle_docs, vehicles, report)
        report.duration_seconds = time.perf_counter() - started
        return report

    async def _merge(
        self, provider_id: str, run_id: int, snap: Snapshot, rows: Any, report: SyncReport
    ) -> dict[str, MergeOutcome]:
        outcomes: dict[str, MergeOutcome] = {}
        async with transaction(self.sessions) as session:
            conn = await session.connection()
            # SQLAlchemy opens the driver-level transaction lazily, on the first statement;
            # open it now so the COPY and the staging tables below run inside it.
            await conn.execute(text("SELECT 1"))
            raw = await conn.get_raw_connection()
            pg: asyncpg.Connection = raw.driver_connection
            outcomes["vehicle_types"] = await merge_table(
                pg, VEHICLE_TYPES, provider_id, rows.vehicle_types
            )
            outcomes["pricing_plans"] = await merge_table(
                pg, PRICING_PLANS, provider_id, rows.pricing_plans
            )
            outcomes["stations"] = await merge_table(pg, STATIONS, provider_id, rows.stations)
            outcomes["vehicles"] = await merge_table(pg, VEHICLES, provider_id, rows.vehicles)
            outcomes["zones"] = await merge_table(pg, ZONES, provider_id, rows.zones)
            outcomes["regions"] = await merge_table(pg, REGIONS, provider_id, rows.regions)
            findings = report.findings
            await repository.record_success(
                session,
                provider_id=provider_id,
                run_id=run_id,
                at=_now(),
                counts={name: o.counts() for name, o in outcomes.items()},
                findings=[asdict(f) for f in findings[:MAX_STORED_FINDINGS]],
                error_count=report.error_count,
                warning_count=report.warning_count,
                provider_values={
                    "gbfs_version": snap.version,
                    "system_info": asdict(snap.system),
                    "global_rules": [rule_json(provider_id, r) for r in snap.global_rules],
                    "ttl_seconds": snap.min_ttl,
                },
            )
        return outcomes

    async def _update_index(
        self,
        provider_id: str,
        docs: dict[str, VehicleDoc],
        vehicles: MergeOutcome,
        report: SyncReport,
    ) -> None:
        created = [docs[i] for i in vehicles.created]
        updated = [docs[i] for i in vehicles.updated]
        try:
            if provider_id in self._index_dirty:
                await self.index.rebuild_provider(provider_id, list(docs.values()))
                self._index_dirty.discard(provider_id)
            else:
                await self.index.apply(provider_id, [*created, *updated], vehicles.removed)
            report.index_updated = True
            report.delta_messages = await self.index.publish_delta(
                provider_id, created, updated, vehicles.removed
            )
        except (RedisError, OSError) as exc:
            # PostGIS has the truth; search falls back to it, and the next sync rebuilds.
            log.warning("redis index update failed for %s: %s", provider_id, exc)
            self._index_dirty.add(provider_id)

    async def _fail(
        self, report: SyncReport, run_id: int, message: str, started: float
    ) -> SyncReport:
        report.ok = False
        report.error = message
        async with transaction(self.sessions) as session:
            await repository.record_failure(
                session, provider_id=report.provider_id, run_id=run_id, error=message, at=_now()
            )
        report.duration_seconds = time.perf_counter() - started
        log.warning("sync of %s failed: %s", report.provider_id, message)
        return report

    async def rebuild_index(self, provider_id: str) -> int:
        """Rebuild one provider's index entries from PostGIS. Returns the vehicles indexed."""
        async with self.sessions() as session:
            docs = await load_vehicle_docs(session, provider_id)
        await self.index.rebuild_provider(provider_id, docs)
        self._index_dirty.discard(provider_id)
        return len(docs)


async def load_vehicle_docs(session: AsyncSession, provider_id: str) -> list[VehicleDoc]:
    from geoalchemy2.functions import ST_X, ST_Y

    rows = await session.execute(
        select(Vehicle, ST_Y(Vehicle.geom), ST_X(Vehicle.geom)).where(
            Vehicle.provider_id == provider_id
        )
    )
    docs: list[VehicleDoc] = []
    for v, lat, lon in rows:
        docs.append(
            VehicleDoc(
                id=v.id,
                provider_id=v.provider_id,
                form_factor=v.form_factor,
                propulsion_type=v.propulsion_type,
                lat=float(lat),
                lon=float(lon),
                is_reserved=v.is_reserved,
                is_disabled=v.is_disabled,
                vehicle_type_id=v.vehicle_type_id,
                pricing_plan_id=v.pricing_plan_id,
                station_id=v.station_id,
                current_range_meters=v.current_range_meters,
                current_fuel_percent=v.current_fuel_percent,
                rental_uris=v.rental_uris,
                last_reported=v.last_reported,
            )
        )
    return docs
