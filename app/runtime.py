"""The process's long-lived resources, built from settings and closed together.

The API lifespan, the CLI and the tests all build the same :class:`Runtime`, so every path
talks to PostgreSQL, Redis and operators exactly the way production does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.accounts.facade import Accounts
from app.booking.service import BookingService
from app.fleet.api_key_admin import ApiKeyAdmin
from app.fleet.organisation_admin import OrganisationAdmin
from app.fleet.policy_admin import PolicyAdmin
from app.fleet.webhook_admin import WebhookAdmin
from app.identity import Identity
from app.live_updates import ChangeSignals, DeltaHub
from app.persisted_queries import PersistedQueries
from app.platform import secret_box
from app.platform.db import create_engine, plain_url, session_factory
from app.platform.redis import RedisClient, RedisKeys, create_redis
from app.platform.redis_pipelined import Endpoint, PipelinedRedis
from app.platform.request_id import outbound_event_hooks
from app.platform.settings import Settings
from app.platform.tracing import active_tracing
from app.provider_admin import ProviderAdmin
from app.reference import ReferenceCache
from app.search.service import SearchService
from app.tiles.service import TileService
from app.transit.feeds import TransitFeeds
from app.transit.realtime_poll import RealtimePoller
from app.transit.realtime_store import RealtimeStore
from app.transit.service import DatabaseSource, TransitService
from app.vehicle_index import VehicleIndex
from providers.breaker import CircuitBreaker
from providers.dispatch import JobKind
from providers.push import PushIngest
from providers.sync import SyncEngine

USER_AGENT = "mobility-aggregator/0.1 (+https://github.com/)"


class ReadOnlyConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg is untyped
    """A connection of the search pool. It only ever runs single SELECTs outside a transaction
    (no SET, LISTEN, cursors or advisory locks), so there is no session state to reset when it
    goes back to the pool: asyncpg's default reset query would be one more round trip per
    search (docs/performance.md). An open transaction is still rolled back by asyncpg."""

    def get_reset_query(self) -> str:
        return ""


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: RedisClient
    keys: RedisKeys
    index: VehicleIndex
    http: httpx.AsyncClient
    sync: SyncEngine
    search: SearchService
    tiles: TileService
    reference: ReferenceCache
    persisted_queries: PersistedQueries
    push: PushIngest
    breaker: CircuitBreaker
    # This process's one subscription to the vehicle delta channel (started on first use).
    live_updates: DeltaHub
    booking_signals: ChangeSignals
    bookings: BookingService
    # The services the interfaces call (each opens its own sessions; none holds state).
    identity: Identity
    accounts: Accounts
    provider_admin: ProviderAdmin
    api_keys: ApiKeyAdmin
    organisations: OrganisationAdmin
    policies: PolicyAdmin
    webhooks: WebhookAdmin
    # Public transport: stops, departures (timetables held per process; app/transit/).
    transit: TransitService
    transit_feeds: TransitFeeds  # staff's: add, sync, list (the CLI's and the admin API's)
    # Public transport's live data: the latest GTFS-Realtime per feed (every process reads it)
    # and its poller, a job kind of the sync scheduler.
    transit_live: RealtimeStore
    transit_realtime: RealtimePoller

    @property
    def job_kinds(self) -> tuple[JobKind, ...]:
        """The scheduler's jobs beside provider syncs (providers/dispatch.JobKind)."""
        return (self.transit_realtime,)

    def with_settings(self, settings: Settings) -> Runtime:
        """The same connections under other settings, with the services that read settings
        built anew over them (tests run one database under several configurations)."""
        return replace(
            self,
            settings=settings,
            tiles=TileService(settings, self.tiles.pool, self.search),
            identity=Identity(self.sessions, settings),
            accounts=Accounts(self.sessions, settings, self.redis, self.keys.prefix),
            organisations=OrganisationAdmin(self.sessions, settings),
            webhooks=WebhookAdmin(self.sessions, settings),
            transit_feeds=TransitFeeds(self.sessions, settings),
        )


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    # Before any database access: sealed secrets are read and written with these keys.
    secret_box.configure(settings)
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    redis = create_redis(settings.redis_url, cluster=settings.redis_cluster)
    keys = RedisKeys(settings.redis_prefix)
    # On a cluster, searches go through the cluster client, which follows the index's slot
    # to whichever node holds it (MOVED, failover); the pipelined client speaks to one
    # server (docs/operations-redis-cluster.md).
    endpoint = None if settings.redis_cluster else Endpoint.from_url(settings.redis_url)
    search_client = PipelinedRedis(endpoint) if endpoint is not None else None
    index = VehicleIndex(redis, keys, search_client=search_client)
    timeout = settings.sync_http_timeout_seconds
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
    )
    reference = ReferenceCache(sessions, settings.reference_ttl_seconds)
    # Booking calls have their own client: their own timeouts, and no redirects followed (a
    # booking POST must not be replayed somewhere else).
    booking_timeout = settings.booking_http_timeout_seconds
    booking_http = httpx.AsyncClient(
        timeout=httpx.Timeout(booking_timeout, connect=min(5.0, booking_timeout)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        # Each operator call carries the request id out (X-Request-Id) and is logged with it.
        event_hooks=outbound_event_hooks(logging.getLogger("app.booking.operator_calls")),
    )
    # The search's own pool: single reads on the hot path, without the ORM's session and
    # transaction round trips (app/search/repository.py: search_vehicles_near).
    search_pool = await asyncpg.create_pool(
        plain_url(settings.database_url),
        connection_class=ReadOnlyConnection,
        # The read-only assumption enforced, not only assumed: a write would fail loudly.
        server_settings={"default_transaction_read_only": "on"},
        min_size=1,
        max_size=10,
        max_inactive_connection_lifetime=300,
    )
    # Push ingest's own pool (providers/push/apply.py says why); empty until a batch arrives.
    ingest_pool = await asyncpg.create_pool(
        plain_url(settings.database_url),
        min_size=0,
        max_size=5,
        max_inactive_connection_lifetime=300,
    )
    search = SearchService(settings, index, search_pool, sessions)
    # Traced only when this process switched tracing on (app/platform/tracing.py); asyncpg's
    # connections, the engine's and both pools', are traced process-wide there.
    tracing = active_tracing()
    untrace = (
        tracing.instrument_clients(redis=[redis], http=[http, booking_http])
        if tracing is not None
        else None
    )
    transit_live = RealtimeStore(redis, keys, settings)
    breaker = CircuitBreaker(redis, keys, settings)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        redis=redis,
        keys=keys,
        index=index,
        http=http,
        sync=SyncEngine(
            sessions=sessions,
            index=index,
            http=http,
            settings=settings,
            on_reference_change=reference.invalidate,
        ),
        search=search,
        # Tiles read through the search's visibility rule, on its pool, in slots of their own.
        tiles=TileService(settings, search_pool, search),
        reference=reference,
        persisted_queries=PersistedQueries(redis, settings.redis_prefix),
        push=PushIngest(ingest_pool, index),
        breaker=breaker,
        live_updates=DeltaHub(
            settings.redis_url, keys.vehicle_deltas, cluster=settings.redis_cluster
        ),
        booking_signals=ChangeSignals(
            settings.redis_url, keys.booking_changes, cluster=settings.redis_cluster
        ),
        bookings=BookingService(
            sessions=sessions,
            settings=settings,
            redis=redis,
            keys=keys,
            index=index,
            http=booking_http,
        ),
        identity=Identity(sessions, settings),
        accounts=Accounts(sessions, settings, redis, keys.prefix),
        provider_admin=ProviderAdmin(sessions),
        api_keys=ApiKeyAdmin(sessions),
        organisations=OrganisationAdmin(sessions, settings),
        policies=PolicyAdmin(sessions),
        webhooks=WebhookAdmin(sessions, settings),
        transit=TransitService(DatabaseSource(sessions), live=transit_live),
        transit_feeds=TransitFeeds(sessions, settings),
        transit_live=transit_live,
        transit_realtime=RealtimePoller(
            sessions=sessions, store=transit_live, http=http, settings=settings, breaker=breaker
        ),
    )
    try:
        yield runtime
    finally:
        if untrace is not None:
            untrace()
        await runtime.bookings.aclose()
        await runtime.live_updates.aclose()
        await runtime.booking_signals.aclose()
        await search_pool.close()
        await ingest_pool.close()
        await http.aclose()
        await booking_http.aclose()
        await redis.aclose()
        if search_client is not None:
            await search_client.aclose()
        await engine.dispose()
