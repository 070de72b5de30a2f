"""Search service: validates every request, answers from the Redis GEO index when it can and
from PostGIS otherwise (reserved or disabled vehicles, or Redis unavailable).

Every search is ranked the same way (docs/search.md): by distance from the `near` point or the
centre of the `within` box, as geo.distance.ranking_meters computes it from the stored
coordinates, then by id. Both stores give the same answers, so pages of one query may come
from either."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.health import is_fresh
from app.models import Provider
from app.platform import metrics
from app.platform.db import in_session
from app.platform.errors import InvalidInput
from app.platform.settings import Settings
from app.records import ProviderRecord
from app.search import repository
from app.search.paging import VehiclePage, decode_cursor, query_fingerprint
from app.search.ride_end import RideEndAnswer, RideEndQuestion, ride_end_check
from app.search.schemas import (
    PagePosition,
    RankedArea,
    StationFilter,
    StationRow,
    VehicleHit,
    ZoneRow,
)
from app.search.validation import (
    Area,
    validate_providers,
)
from app.vehicle import VehicleFilter
from app.vehicle_index import (
    GEO_MAX_LAT,
    GEOHASH_SLACK_METERS,
    SPHERE_MARGIN,
    IndexUnavailable,
    VehicleIndex,
)
from geo.distance import ranking_meters, sphere_meters

log = logging.getLogger(__name__)

ENABLED_PROVIDERS_TTL_SECONDS = 2.0
INDEX_RETRY_SECONDS = 1.0
FIRST_PROBE_METERS = 100.0


# Metres per degree of latitude, at the least (the equator): bounds how far north or south a
# circle reaches.
_MIN_METERS_PER_DEGREE_LAT = 110_574.0


class SearchService:
    """Every read of the map (vehicles, stations, zones, one vehicle, "may I park here?"), with
    the one visibility rule applied inside: another organisation's private fleet is left out
    and indistinguishable from nothing, stale providers' vehicles are hidden. It opens its own
    sessions, one at a time and only for as long as a read takes, so its callers (the API's
    resolvers, quotes) hold no connection: a caller holding a session of the same pool must
    not call it (booking, inside its own transactions, uses the session-level functions of
    ``app/search`` instead: the repository, ``ride_end_check``)."""

    def __init__(
        self,
        settings: Settings,
        index: VehicleIndex | None,
        pool: asyncpg.Pool,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.settings = settings
        self.index = index
        self.pool = pool
        self.sessions = sessions
        # Batch reads for the API's DataLoaders: one short session per batch.
        self.provider_stats = in_session(sessions, repository.provider_stats)
        self.stations_by_ids = in_session(sessions, repository.stations_by_ids)
        self._enabled: frozenset[str] = frozenset()
        self._servable: frozenset[str] = frozenset()
        self._private: dict[str, uuid.UUID] = {}
        self._enabled_at = -math.inf
        self._enabled_lock = asyncio.Lock()
        self._index_retry_at = -math.inf

    async def vehicles(
        self,
        *,
        area: Area,
        flt: VehicleFilter,
        first: int,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
        after: PagePosition | None = None,
    ) -> list[VehicleHit]:
        """The first ``first`` vehicles of the area that sort after ``after`` (all, without
        it), nearest first, ties by id. ``viewer_orgs``: the caller's organisations; other
        organisations' private fleets are left out."""
        flt = await self.visible(flt, viewer_orgs)
        ranked = area.ranked()
        # The index holds available vehicles inside Redis's GEO band only; reserved/disabled
        # requests, and areas reaching past the band, go to PostGIS.
        if (
            flt.available_only
            and self.index is not None
            and time.monotonic() >= self._index_retry_at
            and abs(ranked.lat) + ranked.reach_meters / _MIN_METERS_PER_DEGREE_LAT <= GEO_MAX_LAT
        ):
            try:
                hits = await self._vehicles_from_index(ranked, flt, first, after, viewer_orgs)
            except (RedisError, OSError, IndexUnavailable) as exc:
                # Do not knock on a dead Redis with every request: PostGIS answers for a
                # moment, then the index is tried again (no restart needed when it is back).
                self._index_retry_at = time.monotonic() + INDEX_RETRY_SECONDS
                if not isinstance(exc, IndexUnavailable):
                    metrics.redis_error("search")
                log.warning("redis search unavailable, answering from PostGIS: %s", exc)
            else:
                metrics.SEARCHES.labels("redis").inc()
                return hits
        metrics.SEARCHES.labels("postgis").inc()
        return await repository.search_vehicles(
            self.pool, area=ranked, flt=flt, first=first, after=after
        )

    async def visible(
        self, flt: VehicleFilter, viewer_orgs: frozenset[uuid.UUID] = frozenset()
    ) -> VehicleFilter:
        """The client's filter checked, with the visibility rule added: other organisations'
        private fleets hidden, and stale providers when they are to be hidden. Every read of
        vehicles goes through it (search, vector tiles)."""
        _check_filter(flt)
        hidden = await self.hidden_providers(viewer_orgs)
        if hidden:
            flt = replace(flt, hidden_providers=flt.hidden_providers | hidden)
        if self.settings.hide_stale_vehicles:
            flt = replace(flt, fresh_within_seconds=self.settings.stale_after_seconds)
        return flt

    async def vehicle_page(
        self,
        *,
        area: Area,
        flt: VehicleFilter,
        first: int,
        after: str | None,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> VehiclePage:
        """One page of the area's vehicles in search order, after the page that ended at the
        ``after`` cursor (or the first page). A cursor is valid for the query (area and
        filter) that made it only: anything else is INVALID_CURSOR."""
        _check_filter(flt)
        # The client's query, before visibility is added: the same query by another caller,
        # or after a fleet turned private, continues from the same place.
        fingerprint = query_fingerprint(area.near, area.bbox, flt)
        position = decode_cursor(after, fingerprint) if after is not None else None
        # One more than asked: whether another page follows is then known exactly.
        hits = await self.vehicles(
            area=area, flt=flt, first=first + 1, viewer_orgs=viewer_orgs, after=position
        )
        return VehiclePage(hits[:first], len(hits) > first, fingerprint)

    async def _enabled_providers(
        self, *, refresh: bool = False
    ) -> tuple[frozenset[str], frozenset[str]]:
        """(servable, enabled): the providers whose vehicles search may show (enabled, and
        with fresh data when stale ones are hidden), and every enabled one. Cached for a few
        seconds: the index may briefly hold vehicles of a provider that was just disabled or
        removed, and search must not show them."""
        asked = time.monotonic()
        if refresh or asked - self._enabled_at > ENABLED_PROVIDERS_TTL_SECONDS:
            # One read at a time per process, and callers that queued behind it take its
            # answer: a delta batch wakes every live subscriber of the process at once, and each
            # found the cache expired and read the providers again (two thousand sessions
            # queued on the pool, seconds before the first delta went out; bench/subscriptions).
            async with self._enabled_lock:
                if refresh:
                    current = self._enabled_at >= asked  # read from after this call began
                else:
                    current = time.monotonic() - self._enabled_at <= ENABLED_PROVIDERS_TTL_SECONDS
                if not current:
                    await self._read_providers()
        return self._servable, self._enabled

    async def _read_providers(self) -> None:
        started = time.monotonic()
        async with self.sessions() as session:
            providers = await repository.enabled_providers(session)
            self._private = await repository.private_providers(session)
        self._enabled = frozenset(providers)
        if self.settings.hide_stale_vehicles:
            wall = datetime.now(UTC)
            self._servable = frozenset(
                p for p, at in providers.items() if is_fresh(at, self.settings, wall)
            )
        else:
            self._servable = self._enabled
        self._enabled_at = started

    def invalidate(self) -> None:
        """Forget the cached provider sets (a provider was enabled, disabled or made private
        in this process; other processes see it within the cache's few seconds)."""
        self._enabled_at = -math.inf

    async def has_private_fleets(self) -> bool:
        """Whether any private fleet exists: only then does search need to know the caller's
        organisations (anonymous search pays nothing for the feature)."""
        await self._enabled_providers()
        return bool(self._private)

    async def hidden_providers(self, viewer_orgs: frozenset[uuid.UUID]) -> frozenset[str]:
        """The private fleets a caller of ``viewer_orgs`` may not see."""
        await self._enabled_providers()
        return frozenset(p for p, org in self._private.items() if org not in viewer_orgs)

    async def servable_providers(self, *, including: Iterable[str] = ()) -> frozenset[str]:
        """The providers whose vehicles may be shown now (see :meth:`_enabled_providers`);
        re-read at once if one of ``including`` is unknown (a provider added since)."""
        servable, enabled = await self._enabled_providers()
        if any(p not in enabled for p in including):
            servable, enabled = await self._enabled_providers(refresh=True)
        return servable

    async def _vehicles_from_index(
        self,
        area: RankedArea,
        flt: VehicleFilter,
        first: int,
        after: PagePosition | None,
        viewer_orgs: frozenset[uuid.UUID],
    ) -> list[VehicleHit]:
        assert self.index is not None
        servable, enabled = await self._enabled_providers()
        refreshed = False
        hidden = flt.hidden_providers
        lat, lon, reach, box = area.lat, area.lon, area.reach_meters, area.box
        last = (after.distance_meters, after.vehicle_id) if after is not None else None
        hits: list[VehicleHit] = []
        threshold: float | None = None  # once `first` are found: how far swaps could reach
        count, skip = first + 16, 0  # about what is needed; widened when filters reject
        # Redis's radius search examines every member inside the radius before it sorts and
        # cuts: in a dense city centre that is thousands for 500 m. Start small and widen, so
        # the search costs what the answer needs (the nearest `count` inside a smaller circle
        # are the nearest `count` overall). A later page starts at its cursor's distance, and
        # Redis leaves out what is nearer before reading documents.
        floor = last[0] if last is not None else 0.0
        min_distance = floor / SPHERE_MARGIN - GEOHASH_SLACK_METERS if last is not None else None
        radius = min(reach, floor + max(FIRST_PROBE_METERS, reach / 4))
        while True:
            found, docs = await self.index.nearest_documents(
                lat,
                lon,
                radius,
                count=count,
                skip=skip,
                flt=flt,
                min_distance_meters=min_distance,
            )
            # A read further into the same circle repeats the vehicles tied with the last one
            # read (nearest_documents): those already taken are dropped.
            taken = {h.vehicle.id for h in hits} if skip else None
            stop = False
            for doc in docs:
                if threshold is not None and (
                    sphere_meters(lat, lon, doc.lat, doc.lon) > threshold
                ):
                    stop = True  # candidates come in spherical order: none further can win
                    break
                if taken is not None and doc.id in taken:
                    continue
                if not flt.matches(doc):
                    continue
                if doc.provider_id not in enabled and not refreshed:
                    # A provider added since the cache was filled: look again, once.
                    servable, enabled = await self._enabled_providers(refresh=True)
                    refreshed = True
                    # The re-read may have found it private: hide it from outsiders now.
                    hidden = hidden | await self.hidden_providers(viewer_orgs)
                if doc.provider_id not in servable or doc.provider_id in hidden:
                    continue
                distance = ranking_meters(lat, lon, doc.lat, doc.lon)
                # RankedArea.admits, inlined: this loop is the hot path.
                if box is None:
                    if distance > reach:
                        continue
                elif not box.contains(doc.lat, doc.lon):
                    continue
                if last is not None and (distance, doc.id) <= last:
                    continue
                hits.append(VehicleHit(doc, distance))
                if threshold is None and len(hits) >= first:
                    # Spherical and geodesic order can differ by a hair (and Redis's positions
                    # by its geohash step): keep reading candidates that could still belong in
                    # the first `first`.
                    threshold = (
                        max(h.distance_meters or 0.0 for h in hits) * SPHERE_MARGIN
                        + GEOHASH_SLACK_METERS
                    )
            if stop:
                break
            if found >= count:  # the circle holds more: read further into it
                count, skip = count * 4, count
            elif radius < reach:  # the circle is exhausted: widen it
                radius, skip = min(reach, floor + (radius - floor) * 2), found
            else:
                break
        hits.sort(key=_rank)
        return hits[:first]

    async def vehicle_record(self, vehicle_id: str) -> VehicleHit | None:
        """The stored vehicle whatever its visibility, for a caller that applies the rule
        itself with :meth:`hidden_providers` and :meth:`servable_providers` (a quote tells
        a stale operator's vehicle from one that does not exist)."""
        async with self.sessions() as session:
            return await repository.vehicle_by_id(session, vehicle_id)

    async def vehicle(
        self, vehicle_id: str, viewer_orgs: frozenset[uuid.UUID] = frozenset()
    ) -> VehicleHit | None:
        """One vehicle by id; like search, not one of a provider whose data is stale, nor of
        another organisation's private fleet."""
        hit = await self.vehicle_record(vehicle_id)
        if hit is None:
            return None
        # First the provider sets, re-read if this provider is new to them, then who may see
        # it: a private fleet added or enabled a moment ago is hidden at once.
        servable = await self.servable_providers(including=[hit.vehicle.provider_id])
        if hit.vehicle.provider_id in await self.hidden_providers(viewer_orgs):
            return None
        if not self.settings.hide_stale_vehicles:
            return hit
        return hit if hit.vehicle.provider_id in servable else None

    async def stations(
        self,
        *,
        area: Area,
        flt: StationFilter,
        first: int,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> list[StationRow]:
        """Stations of the area, nearest to the `near` point or the box's centre first, ties
        by id; other organisations' private fleets are left out inside the query, so they
        never make a page short."""
        hidden = await self.hidden_providers(viewer_orgs)
        if hidden:
            flt = replace(flt, hidden_providers=flt.hidden_providers | hidden)
        async with self.sessions() as session:
            return await repository.search_stations(
                session, near=area.near, bbox=area.bbox, flt=flt, first=first
            )

    async def zones(
        self,
        *,
        area: Area,
        providers: frozenset[str] | None,
        first: int,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> list[ZoneRow]:
        """Zones touching the area, nearest to the `near` point or the box's centre first
        (0 for a zone holding it), ties by id; without an area, each provider's zones in feed
        order. Other organisations' private fleets are left out inside the query."""
        hidden = await self.hidden_providers(viewer_orgs)
        async with self.sessions() as session:
            return await repository.search_zones(
                session,
                near=area.near,
                bbox=area.bbox,
                providers=providers,
                hidden_providers=hidden,
                first=first,
            )

    async def validate_providers(
        self, providers: Sequence[str] | None, viewer_orgs: frozenset[uuid.UUID] = frozenset()
    ) -> frozenset[str] | None:
        """:func:`validate_providers` for a caller of ``viewer_orgs``."""
        if providers is None:
            return None
        hidden = await self.hidden_providers(viewer_orgs)
        async with self.sessions() as session:
            return await validate_providers(session, providers, hidden)

    async def ride_end_check(
        self, question: RideEndQuestion, viewer_orgs: frozenset[uuid.UUID] = frozenset()
    ) -> RideEndAnswer:
        """:func:`ride_end_check` for a caller of ``viewer_orgs``."""
        hidden = await self.hidden_providers(viewer_orgs)
        async with self.sessions() as session:
            return await ride_end_check(session, question, hidden=hidden)

    async def providers(self, viewer_orgs: frozenset[uuid.UUID] = frozenset()) -> list[Provider]:
        """Every provider the caller may see (another organisation's private fleet is not
        listed, its existence included)."""
        hidden = await self.hidden_providers(viewer_orgs)
        async with self.sessions() as session:
            rows = await repository.provider_records(session)
        return [p for p in rows if p.id not in hidden]


def _rank(hit: VehicleHit) -> tuple[float | None, str]:
    return hit.distance_meters, hit.vehicle.id


def _check_filter(flt: VehicleFilter) -> None:
    if flt.min_range_meters is not None and flt.min_range_meters < 0:
        raise InvalidInput("minRangeMeters must be >= 0", code="INVALID_FILTER")


def is_stale(provider: ProviderRecord, settings: Settings, now: datetime | None = None) -> bool:
    """Stale: the latest sync failed, or the last good one is older than the limit."""
    if provider.stale:
        return True
    if provider.last_success_at is None:
        return provider.last_sync_at is not None
    age = (now or datetime.now(UTC)) - provider.last_success_at
    return age.total_seconds() > settings.stale_after_seconds
