"""Per-request context: the runtime's services, who is calling, fresh DataLoaders."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from app.accounts import InvalidToken, Rider, Unauthenticated
from app.booking.service import BookingService
from app.fleet.api_keys import is_api_key
from app.fleet.principal import ApiKeyPrincipal, OrgActor, Role, Scope
from app.platform.errors import DomainError
from app.provider_admin import ProviderAdmin
from app.records import ProviderRecord, SyncRunRecord
from app.runtime import Runtime
from app.search.schemas import ProviderStats, StationRow
from app.search.service import SearchService
from app.staff_auth import ANONYMOUS, TOKEN_PREFIX, Forbidden, Viewer

K = TypeVar("K")
V = TypeVar("V")


def _ordered(keys: Sequence[K], found: dict[K, V]) -> list[V | None]:
    return [found.get(k) for k in keys]


@dataclass
class Loaders:
    """A request's DataLoaders. Each batch is one read of a service, which opens its own short
    session: GraphQL resolves sibling fields concurrently, and one database session must never
    be used by two coroutines at once."""

    search: SearchService
    provider_admin: ProviderAdmin
    bookings: BookingService
    provider_stats: DataLoader[str, ProviderStats | None] = field(init=False)
    station: DataLoader[str, StationRow | None] = field(init=False)
    provider_health: DataLoader[str, tuple[ProviderRecord, SyncRunRecord | None] | None] = field(
        init=False
    )
    booking_events: DataLoader[uuid.UUID, list[Any]] = field(init=False)

    def __post_init__(self) -> None:
        search = self.search
        admin = self.provider_admin
        bookings = self.bookings

        async def provider_stats(keys: list[str]) -> list[ProviderStats | None]:
            return _ordered(keys, await search.provider_stats(keys))

        async def stations(keys: list[str]) -> list[StationRow | None]:
            return _ordered(keys, await search.stations_by_ids(keys))

        async def provider_health(
            keys: list[str],
        ) -> list[tuple[ProviderRecord, SyncRunRecord | None] | None]:
            found = await admin.health_records(keys)
            return [found.get(k) for k in keys]

        self.provider_stats = DataLoader(load_fn=provider_stats)
        # Not cached across requests (a loader lives one request): health is read when asked.
        self.provider_health = DataLoader(load_fn=provider_health)
        self.station = DataLoader(load_fn=stations)

        async def booking_events(keys: list[uuid.UUID]) -> list[list[Any]]:
            found = await bookings.events_of(keys)
            return [found[k] for k in keys]

        # Batched (a list of bookings is one query, not one session per booking at once) but
        # not cached: a booking's events change while a bookingUpdates socket lives.
        self.booking_events = DataLoader(load_fn=booking_events, cache=False)

    def fresh(self) -> Loaders:
        """New loaders over the same services: per-request caches start empty again."""
        return Loaders(self.search, self.provider_admin, self.bookings)


class Context(BaseContext):
    """One request's (or one websocket's) view of the process: the runtime's services, who is
    calling (looked up once, on first need) and fresh DataLoaders. It holds no database
    session: every read and change goes through a service (docs/architecture.md)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        authorization: str | None = None,
        client_address: str | None = None,
        remember_viewer: bool = True,
    ) -> None:
        super().__init__()
        self.bookings = runtime.bookings
        self.settings = runtime.settings
        self.search = runtime.search
        self.reference = runtime.reference
        self.persisted_queries = runtime.persisted_queries
        self.live_updates = runtime.live_updates
        self.booking_signals = runtime.booking_signals
        self.identity = runtime.identity
        # The services resolvers call; none holds state of its own.
        self.accounts = runtime.accounts
        self.provider_admin = runtime.provider_admin
        self.api_keys = runtime.api_keys
        self.organisations = runtime.organisations
        self.policies = runtime.policies
        self.webhooks = runtime.webhooks
        self.transit = runtime.transit
        self.transit_feeds = runtime.transit_feeds
        # The raw Authorization header; resolved to a viewer only when a field needs a role,
        # so the search hot path never reads the token table.
        self.authorization = authorization
        # The peer's address as the server saw it (behind a proxy: the proxy's, unless the
        # server is told to trust its X-Forwarded-For), for per-client limits.
        self.client_address = client_address
        self._viewer: Viewer | None = None
        self._viewer_lock = asyncio.Lock()
        self.remember_viewer = remember_viewer
        # The rider, like the viewer, is resolved on first need and once per request; a token
        # that names no rider is remembered as the error it gives.
        self._rider: Rider | None = None
        self._rider_error: DomainError | None = None
        self._rider_known = False
        self._rider_lock = asyncio.Lock()
        self._api_key: ApiKeyPrincipal | None = None
        self._api_key_lock = asyncio.Lock()
        self.loaders = Loaders(runtime.search, runtime.provider_admin, runtime.bookings)
        # Stops whose departures were computed, per operation (graphql_schema/transit.py).
        self.departure_boards: dict[int, int] = {}

    @classmethod
    def of(
        cls,
        runtime: Runtime,
        *,
        authorization: str | None = None,
        client_address: str | None = None,
        remember_viewer: bool = True,
    ) -> Context:
        """A request's context over the process's runtime: the one way both request paths
        (the fast path and Strawberry's view, HTTP and websockets) and tests build it."""
        return cls(
            runtime,
            authorization=authorization,
            client_address=client_address,
            remember_viewer=remember_viewer,
        )

    async def viewer(self) -> Viewer:
        """Who is calling, looked up once per request (concurrent resolvers share the one
        lookup). A websocket's context lives as long as the socket: there every operation
        looks again, so a token revoked meanwhile stops working at once."""
        if not self.authorization:
            return ANONYMOUS
        async with self._viewer_lock:
            if self._viewer is None or not self.remember_viewer:
                self._viewer = await self.identity.staff_viewer(self.authorization)
            return self._viewer

    async def require_admin(self) -> Viewer:
        viewer = await self.viewer()
        if not viewer.is_admin:
            raise Forbidden("this needs a staff token with the ADMIN role")
        return viewer

    async def rider(self) -> Rider | None:
        """The signed-in rider, or None for an anonymous caller or a staff token (staff are
        not riders). A token that names no rider (malformed, tampered, expired, unknown
        issuer) raises its error (``INVALID_TOKEN``, ``TOKEN_EXPIRED``, …) so that clients
        know to refresh or sign in again, rather than being served as anonymous."""
        if not self.authorization:
            return None
        scheme, _, token = self.authorization.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and (token.startswith(TOKEN_PREFIX) or is_api_key(token)):
            return None  # staff, or an organisation's API key: not a rider
        async with self._rider_lock:
            if not self._rider_known or not self.remember_viewer:
                self._rider, self._rider_error = await self._look_up_rider(scheme, token)
                self._rider_known = True
            if self._rider_error is not None:
                error = self._rider_error
                # A fresh exception per raise: one instance raised from several resolvers
                # would pile up their tracebacks.
                raise type(error)(error.message, code=error.code)
            return self._rider

    async def _look_up_rider(
        self, scheme: str, token: str
    ) -> tuple[Rider | None, DomainError | None]:
        if scheme.lower() != "bearer" or not token:
            return None, InvalidToken("send the access token as `Authorization: Bearer <token>`")
        try:
            rider = await self.identity.rider(token)
        except DomainError as exc:
            return None, exc
        return rider, None

    async def check_credentials(self) -> None:
        """Refuse a staff token or an API key that does not check out, as a bad rider token is
        refused (``INVALID_TOKEN`` / ``INVALID_API_KEY``), for fields that would otherwise
        answer such a caller as anonymous (``me``)."""
        if not self.authorization:
            return
        _, _, token = self.authorization.partition(" ")
        token = token.strip()
        if token.startswith(TOKEN_PREFIX):
            if (await self.viewer()).role is None:
                raise InvalidToken("this staff token is not valid (unknown or revoked)")
        elif is_api_key(token):
            await self.api_key()

    async def api_key(self) -> ApiKeyPrincipal | None:
        """The organisation API key the request carries, or None when it carries none. A key
        that is malformed, unknown, revoked or expired is ``INVALID_API_KEY``; it is checked
        on every operation (on a websocket too), so revocation takes effect at once."""
        if not self.authorization:
            return None
        scheme, _, token = self.authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not is_api_key(token):
            return None
        async with self._api_key_lock:
            if self._api_key is None or not self.remember_viewer:
                self._api_key = await self.identity.api_key(token, datetime.now(UTC))
            return self._api_key

    async def require_vehicles_read(self) -> None:
        """An API key may read vehicles (search, quotes, live updates) only with
        ``vehicles:read`` (``MISSING_SCOPE`` otherwise; an invalid, revoked or expired key is
        ``INVALID_API_KEY``). Anonymous callers pass without a lookup: the search hot path."""
        if not self.authorization:
            return
        principal = await self.api_key()
        if principal is not None:
            principal.require_scope(Scope.VEHICLES_READ)

    async def org_actor(
        self,
        organisation_id: uuid.UUID | None = None,
        *,
        roles: Collection[Role] | None = None,
        scope: Scope | None = None,
    ) -> OrgActor:
        """Who acts for the organisation in this request: its API key (needing ``scope``) or
        a signed-in member (needing one of ``roles``). Anyone else: ``NOT_FOUND``."""
        api_key = await self.api_key()
        rider = None if api_key is not None else await self.rider()
        return await self.identity.org_actor(
            rider_id=rider.id if rider is not None else None,
            api_key=api_key,
            organisation_id=organisation_id,
            roles=roles,
            scope=scope,
        )

    async def viewer_organisations(self) -> frozenset[uuid.UUID]:
        """The organisations whose private fleets this caller may see: its API key's, or the
        signed-in rider's memberships; none for anyone else. A bad token here is treated as
        anonymous (search never fails for a stale token; fields that need a rider say so)."""
        if not self.authorization:
            return frozenset()
        try:
            api_key = await self.api_key()
            if api_key is not None:
                return frozenset({api_key.organisation_id})
            rider = await self.rider()
        except DomainError:
            return frozenset()
        if rider is None:
            return frozenset()
        return await self.identity.organisations_of(rider.id)

    async def search_viewer_organisations(self) -> frozenset[uuid.UUID]:
        """:meth:`viewer_organisations` for the search's visibility rule, looked up only when
        the caller is authenticated and a private fleet exists: anonymous search, and search
        where no fleet is private, pay nothing for the feature."""
        if not self.authorization or not await self.search.has_private_fleets():
            return frozenset()
        return await self.viewer_organisations()

    async def require_rider(self) -> Rider:
        """The signed-in rider; ``UNAUTHENTICATED`` without a rider token, or the token's own
        error (``INVALID_TOKEN``, ``TOKEN_EXPIRED``: both ``Unauthenticated``) for a bad one."""
        rider = await self.rider()
        if rider is None:
            raise Unauthenticated("sign in first")
        return rider


def client_address(scope: Mapping[str, Any]) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """One header of an ASGI scope, decoded (latin-1, as HTTP says)."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
