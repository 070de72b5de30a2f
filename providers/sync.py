"""The sync pipeline: adapter snapshot -> one PostGIS transaction -> Redis index -> delta channel.

A failing feed never loses data: the previous snapshot stays, the provider is marked stale with
the error, and the other providers' syncs go on. A Redis failure after the database commit marks
the provider's index for a rebuild from PostGIS on its next sync.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.base import AdapterConfigError, AdapterError, FetchContext, load_adapter
from adapters.credentials import OperatorAuth, OperatorCredentials
from adapters.dto import Finding, Snapshot
from adapters.http import FeedCache, redact_urls
from app.models import ACTIVE_BOOKING_STATES
from app.platform import metrics
from app.platform.advisory_locks import INDEX_XACT_LOCK, SYNC_LOCK, SYNC_UNLOCK, VEHICLES_XACT_LOCK
from app.platform.db import transaction
from app.platform.settings import Settings
from app.vehicle import SELECT_COLUMNS, VehicleDoc, decoded_record_from_row
from app.vehicle_index import VehicleIndex
from providers import repository
from providers.admin import credentials_for
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
from providers.rows import SnapshotRows, build_rows, hold_booked, rule_json

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
    skipped: bool = False  # another process was syncing this provider
    # Seconds per phase (fetch, rows, database, index, deltas): where a slow sync spends it.
    phases: dict[str, float] = field(default_factory=dict)
    # The operator asked us to wait this long before the next attempt (HTTP 429 / 503 with
    # Retry-After); the scheduler honours it. None when it did not say.
    retry_after_seconds: float | None = None

    @property
    def error_count(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warning_count(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection for the duration: building a large snapshot's rows
    allocates hundreds of thousands of tuples, none in a cycle, and each allocation burst
    set off collections that re-scanned the whole snapshot (40% of the time at 100,000
    vehicles). Nothing awaits inside, so no other task runs while it is off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _now() -> datetime:
    return datetime.now(UTC)


# GBFS renamed free_bike_status to vehicle_status in 3.0: a provider migrating keeps its data.
_FEED_ALIASES = {"free_bike_status": "vehicle_status"}
# Feeds whose disappearance would empty a table (or orphan the rows that reference it).
_GUARDED_FEEDS = frozenset(
    {
        "vehicle_status",
        "station_information",
        "station_status",
        "geofencing_zones",
        "vehicle_types",
        "system_pricing_plans",
    }
)


_VEHICLE_FEEDS = frozenset({"vehicle_status", "free_bike_status"})


def _has_vehicle_feed(snapshot: Snapshot) -> bool:
    return any(f.name in _VEHICLE_FEEDS for f in snapshot.feeds)


def _feed_names(snapshot: Snapshot) -> list[str]:
    return sorted({_FEED_ALIASES.get(f.name, f.name) for f in snapshot.feeds})


class SyncEngine:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        index: VehicleIndex,
        http: httpx.AsyncClient,
        settings: Settings,
        on_reference_change: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.index = index
        self.http = http
        self.settings = settings
        self._on_reference_change = on_reference_change
        self._caches: dict[str, FeedCache] = {}
        # Per provider, kept across syncs so an OAuth2 token is reused until it expires.
        self._auths: dict[str, OperatorAuth] = {}

    async def sync(self, provider_id: str, *, progress: Progress | None = None) -> SyncReport:
        """One full sync of one provider. Never raises for feed problems: see the report.

        A PostgreSQL advisory lock makes it exactly one sync per provider at a time across all
        processes (API servers, CLI, workers); a second caller gets a report saying so.
        """
        return await self._locked(provider_id, None, progress)

    async def sync_snapshot(
        self, provider_id: str, snapshot: Snapshot, *, progress: Progress | None = None
    ) -> SyncReport:
        """Merge a snapshot the caller already holds, exactly as :meth:`sync` merges a fetched
        one (same lock, run record, vanished-feed guard, merge, index and deltas). The ingest
        benchmark measures this path; an adapter-less importer would use it too."""
        return await self._locked(provider_id, snapshot, progress)

    async def _locked(
        self, provider_id: str, supplied: Snapshot | None, progress: Progress | None
    ) -> SyncReport:
        started = time.perf_counter()
        report = await self._locked_run(provider_id, supplied, progress)
        outcome = "skipped" if report.skipped else "ok" if report.ok else "failed"
        metrics.PROVIDER_SYNCS.labels(provider_id, outcome).observe(time.perf_counter() - started)
        if report.error_count:
            metrics.PROVIDER_RECORDS_SKIPPED.labels(provider_id).inc(report.error_count)
        return report

    async def _locked_run(
        self, provider_id: str, supplied: Snapshot | None, progress: Progress | None
    ) -> SyncReport:
        say = progress or (lambda _msg: None)
        async with self.sessions() as lock_session:
            locked = (await lock_session.execute(text(SYNC_LOCK), {"p": provider_id})).scalar_one()
            if not locked:
                return SyncReport(
                    provider_id=provider_id,
                    ok=False,
                    error="another sync of this provider is running; try again when it ends",
                    skipped=True,
                )
            try:
                return await self._sync_locked(provider_id, say, supplied)
            finally:
                await lock_session.execute(text(SYNC_UNLOCK), {"p": provider_id})
                await lock_session.commit()

    async def _sync_locked(
        self, provider_id: str, say: Progress, supplied: Snapshot | None = None
    ) -> SyncReport:
        started = time.perf_counter()
        async with transaction(self.sessions) as session:
            provider = await repository.get(session, provider_id)
            if provider is None:
                raise ProviderNotFound(provider_id)
            adapter_name, config = provider.adapter, dict(provider.config)
            credentials = await credentials_for(session, provider_id)
            previous_feeds = set(provider.feed_names or ())
            previous_run = await repository.latest_successful_run_id(session, provider_id)
            run = await repository.start_run(session, provider_id, _now())
            run_id = run.id

        report = SyncReport(provider_id=provider_id, ok=False)
        if supplied is not None:
            snapshot = supplied
        else:
            fetched = await self._fetch(
                report, run_id, adapter_name, config, credentials, say, started
            )
            report.phases["fetch"] = time.perf_counter() - started
            if isinstance(fetched, SyncReport):
                return fetched
            snapshot = fetched
        return await self._store(
            provider_id, run_id, previous_run, previous_feeds, snapshot, report, say, started
        )

    def _auth_for(
        self, provider_id: str, credentials: OperatorCredentials | None
    ) -> OperatorAuth | None:
        if credentials is None:
            self._auths.pop(provider_id, None)
            return None
        auth = self._auths.get(provider_id)
        if auth is None or auth.credentials != credentials:  # new or changed by staff
            auth = self._auths[provider_id] = OperatorAuth(credentials)
        return auth

    async def _fetch(
        self,
        report: SyncReport,
        run_id: int,
        adapter_name: str,
        config: dict[str, Any],
        credentials: OperatorCredentials | None,
        say: Progress,
        started: float,
    ) -> Snapshot | SyncReport:
        """The adapter's snapshot, or the failure report when there is none."""
        provider_id = report.provider_id
        try:
            adapter = load_adapter(adapter_name, config)
            say(f"fetching feeds ({adapter_name})")
            cache = self._caches.setdefault(provider_id, FeedCache())
            ctx = FetchContext(
                http=self.http,
                cache=cache,
                preferred_language=str(config.get("language") or self.settings.preferred_language),
                max_feed_bytes=self.settings.sync_max_feed_bytes,
                auth=self._auth_for(provider_id, credentials),
            )
            async with asyncio.timeout(self.settings.sync_deadline_seconds):
                snapshot = await adapter.fetch_snapshot(ctx)
        except (AdapterError, AdapterConfigError) as exc:
            if isinstance(exc, AdapterError):
                report.retry_after_seconds = exc.retry_after_seconds
            return await self._fail(report, run_id, str(exc), started)
        except TimeoutError:
            message = f"sync deadline of {self.settings.sync_deadline_seconds:g}s exceeded"
            return await self._fail(report, run_id, message, started)
        except Exception as exc:  # an adapter bug must not stop the other providers
            log.exception("adapter %s crashed for provider %s", adapter_name, provider_id)
            return await self._fail(
                report, run_id, f"adapter error ({exc.__class__.__name__}); see the logs", started
            )
        return snapshot

    async def _store(
        self,
        provider_id: str,
        run_id: int,
        previous_run: int | None,
        previous_feeds: set[str],
        snapshot: Snapshot,
        report: SyncReport,
        say: Progress,
        started: float,
    ) -> SyncReport:
        feeds = _feed_names(snapshot)
        vanished = sorted((previous_feeds & _GUARDED_FEEDS) - set(feeds))
        if vanished:
            # Reading a vanished feed as empty would delete its data; an operator's outage or
            # a broken discovery file is far likelier than a deliberate removal.
            message = (
                f"feed(s) {', '.join(vanished)} published at the last good sync are missing now; "
                "keeping the last good data (re-register the provider if the change is intended)"
            )
            return await self._fail(report, run_id, message, started)

        say(
            f"fetched {len(snapshot.vehicles)} vehicles, {len(snapshot.stations)} stations, "
            f"{len(snapshot.zones)} zones; merging"
        )
        try:
            mark = time.perf_counter()
            with _gc_paused():
                rows = build_rows(provider_id, snapshot)
            report.findings = [*snapshot.findings, *rows.findings]
            report.phases["rows"] = time.perf_counter() - mark
            mark = time.perf_counter()
            outcomes = await self._merge(provider_id, run_id, snapshot, rows, report, feeds)
            report.phases["database"] = time.perf_counter() - mark
        except Exception as exc:  # nothing is committed: the last good data stays
            log.exception("merge failed for provider %s", provider_id)
            detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            return await self._fail(
                report, run_id, f"could not store the snapshot: {detail}", started
            )

        vehicles = outcomes["vehicles"]
        vehicles_merged = _has_vehicle_feed(snapshot)
        report.counts = {name: o.counts() for name, o in outcomes.items()}
        report.ok = True
        if self._on_reference_change is not None:
            # Names, plans or the provider row itself may have changed: drop cached copies.
            self._on_reference_change()
        say("updating the search index")
        await self._update_index(
            provider_id,
            run_id,
            previous_run,
            rows.vehicle_docs,
            vehicles,
            report,
            vehicles_merged=vehicles_merged,
        )
        report.duration_seconds = time.perf_counter() - started
        return report

    async def _merge(
        self,
        provider_id: str,
        run_id: int,
        snap: Snapshot,
        rows: SnapshotRows,
        report: SyncReport,
        feeds: list[str],
    ) -> dict[str, MergeOutcome]:
        outcomes: dict[str, MergeOutcome] = {}
        async with transaction(self.sessions) as session:
            conn = await session.connection()
            # SQLAlchemy opens the driver-level transaction lazily, on the first statement;
            # open it now so the COPY and the staging tables below run inside it.
            await conn.execute(text("SELECT 1"))
            raw = await conn.get_raw_connection()
            pg: asyncpg.Connection = raw.driver_connection
            # Bookings write is_reserved under this lock, shared (app/platform/advisory_locks.py):
            # held exclusively from here to the commit, every booking committed before is in
            # `held`, and one committing after waits and then writes is_reserved itself.
            await pg.execute(VEHICLES_XACT_LOCK, provider_id)
            held = await pg.fetch(
                "SELECT vehicle_id FROM bookings WHERE provider_id = $1 AND state = ANY($2)",
                provider_id,
                list(ACTIVE_BOOKING_STATES),
            )
            hold_booked(rows, {r["vehicle_id"] for r in held})
            for name, spec, records in (
                ("vehicle_types", VEHICLE_TYPES, rows.vehicle_types),
                ("pricing_plans", PRICING_PLANS, rows.pricing_plans),
                ("stations", STATIONS, rows.stations),
                ("vehicles", VEHICLES, rows.vehicles),
                ("zones", ZONES, rows.zones),
                ("regions", REGIONS, rows.regions),
            ):
                if name == "vehicles" and not _has_vehicle_feed(snap):
                    # Vehicles reach this provider some other way (push ingest), or not at
                    # all: a snapshot without a vehicle feed says nothing about them.
                    outcomes[name] = MergeOutcome()
                    continue
                outcomes[name] = await merge_table(pg, spec, provider_id, records)
            await repository.record_success(
                session,
                provider_id=provider_id,
                run_id=run_id,
                at=_now(),
                counts={name: o.counts() for name, o in outcomes.items()},
                findings=[asdict(f) for f in report.findings[:MAX_STORED_FINDINGS]],
                error_count=report.error_count,
                warning_count=report.warning_count,
                provider_values={
                    "gbfs_version": snap.version,
                    "system_info": asdict(snap.system),
                    "global_rules": [rule_json(provider_id, r) for r in snap.global_rules],
                    "ttl_seconds": snap.min_ttl,
                    "feed_names": feeds,
                },
            )
        return outcomes

    async def _update_index(
        self,
        provider_id: str,
        run_id: int,
        previous_run: int | None,
        docs: dict[str, VehicleDoc],
        vehicles: MergeOutcome,
        report: SyncReport,
        *,
        vehicles_merged: bool = True,
    ) -> None:
        if not vehicles_merged:
            docs = {}  # the snapshot has none; what PostGIS holds is the truth
        if docs:
            # A booking made since the merge committed: keep its vehicle out of search.
            async with self.sessions() as session:
                held = await active_booked_vehicles(session, provider_id)
            for vehicle_id in held & docs.keys():
                docs[vehicle_id] = docs[vehicle_id]._replace(is_reserved=True)
        created = [docs[i] for i in vehicles.created]
        updated = [docs[i] for i in vehicles.updated]
        try:
            # The delta is only valid on top of the previous good run's index. If that is not
            # what Redis holds (it lost data, a write failed, another process crashed between
            # commit and index update), rebuild this provider from the full snapshot instead.
            indexed = await self.index.indexed_run(provider_id)
            mark = time.perf_counter()
            if previous_run is not None and indexed == previous_run:
                await self.index.apply(provider_id, [*created, *updated], vehicles.removed)
            elif not vehicles_merged:
                await self.rebuild_index(provider_id)
            else:
                await self.index.rebuild_provider(provider_id, list(docs.values()))
            await self.index.set_indexed_run(provider_id, run_id)
            report.index_updated = True
            report.phases["index"] = time.perf_counter() - mark
            mark = time.perf_counter()
            report.delta_messages = await self.index.publish_delta(
                provider_id, created, updated, vehicles.removed
            )
            report.phases["deltas"] = time.perf_counter() - mark
        except (RedisError, OSError) as exc:
            # PostGIS has the truth; search falls back to it, and the next sync rebuilds
            # (the marker above no longer matches).
            metrics.redis_error("sync")
            log.warning("redis index update failed for %s: %s", provider_id, exc)

    async def _fail(
        self, report: SyncReport, run_id: int, message: str, started: float
    ) -> SyncReport:
        report.ok = False
        # Errors are shown to API clients: feed URLs lose their query strings (API keys).
        message = redact_urls(message)
        report.error = message
        async with transaction(self.sessions) as session:
            await repository.record_failure(
                session, provider_id=report.provider_id, run_id=run_id, error=message, at=_now()
            )
        report.duration_seconds = time.perf_counter() - started
        log.warning("sync of %s failed: %s", report.provider_id, message)
        return report

    async def rebuild_index(self, provider_id: str) -> int:
        """Rebuild one provider's index entries from PostGIS. Returns the vehicles indexed.

        Holds the provider's index lock exclusively from the read to the last write, so a push
        batch (which holds it shared) cannot commit a newer position in between that the
        rebuild would then overwrite with the one it read.

        The lock is the transaction's, held until the index is written: a session-level lock
        taken here and released after a commit leaked, because the session hands its
        connection back to the pool at commit and runs the unlock on whichever connection it
        gets next (the lock then stayed with an idle pooled connection, and the provider's
        next rebuild waited forever)."""
        async with transaction(self.sessions) as session:
            await session.execute(text(INDEX_XACT_LOCK), {"p": provider_id})
            docs = await load_vehicle_docs(session, provider_id)
            run_id = await repository.latest_successful_run_id(session, provider_id)
            await self.index.rebuild_provider(provider_id, docs)
            if run_id is not None:
                await self.index.set_indexed_run(provider_id, run_id)
        return len(docs)

    async def ensure_index_ready(self) -> bool:
        """Rebuild the index if Redis lost it (restart, flush). One process rebuilds at a time;
        until it is done, search answers from PostGIS. Returns True if this call rebuilt it."""
        if await self.index.is_ready():
            return False
        lock = self.index.keys.index_rebuild_lock
        if not await self.index.redis.set(lock, "1", nx=True, ex=300):
            return False
        try:
            count = await self.rebuild_all_indexes()
            log.info("search index rebuilt from PostGIS: %d vehicles", count)
            return True
        finally:
            await self.index.redis.delete(lock)

    async def rebuild_all_indexes(self) -> int:
        """Rebuild the whole index from PostGIS and mark it ready. Returns vehicles indexed."""
        async with self.sessions() as session:
            providers = await repository.list_all(session, enabled_only=True)
        total = 0
        for p in providers:
            total += await self.rebuild_index(p.id)
        await self.index.mark_ready()
        return total


async def active_booked_vehicles(session: AsyncSession, provider_id: str) -> set[str]:
    rows = await session.execute(
        text("SELECT vehicle_id FROM bookings WHERE provider_id = :p AND state = ANY(:states)"),
        {"p": provider_id, "states": list(ACTIVE_BOOKING_STATES)},
    )
    return {r.vehicle_id for r in rows}


async def load_vehicle_docs(session: AsyncSession, provider_id: str) -> list[VehicleDoc]:
    rows = await session.execute(
        text(f"SELECT {SELECT_COLUMNS} FROM vehicles v WHERE v.provider_id = :p"),
        {"p": provider_id},
    )
    return [decoded_record_from_row(row) for row in rows]
