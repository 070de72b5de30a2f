"""Redis plumbing: one client per process, and the key names everything else uses."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.vehicle import DOC_FORMAT

# The index's format: bumped by hand when the index's layout changes (its keys, what a set
# holds); the vehicle document's own format (app/vehicle.DOC_FORMAT) follows its fields by
# itself. Either way a deploy then builds a fresh index under new keys instead of misreading
# what the previous version wrote.
INDEX_FORMAT = f"v2-{DOC_FORMAT}"


def create_redis(redis_url: str, *, timeout_seconds: float = 1.0) -> Redis:
    # Short timeouts: Redis is the hot path, and search must fall back to PostGIS quickly when
    # Redis does not answer rather than hang a request.
    # No retries: redis-py's default (three, with backoff) turns an outage into seconds of
    # waiting per request; callers fall back to PostGIS or retry on their own schedule.
    return Redis.from_url(
        redis_url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=1.0,
        # No per-command health bookkeeping on the hot path: a dead connection fails the
        # command, and search falls back to PostGIS for a second (app/search/service.py).
        health_check_interval=0,
        retry=Retry(NoBackoff(), 0),
    )


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str

    @property
    def _index(self) -> str:
        return f"{self.prefix}:{INDEX_FORMAT}"

    @property
    def vehicle_geo(self) -> str:
        """GEO set of *available* vehicles (not reserved, not disabled)."""
        return f"{self._index}:vehicles:geo"

    def vehicle_geo_of(self, form_factor: str) -> str:
        """GEO set of the available vehicles of one form factor: a search for cars (5% of a
        fleet) reads cars only, instead of filtering its way through twenty times as many."""
        return f"{self._index}:vehicles:geo:{form_factor}"

    @property
    def vehicle_docs(self) -> str:
        """Hash: vehicle id -> document with every field search returns and filters on."""
        return f"{self._index}:vehicles:docs"

    @property
    def index_ready(self) -> str:
        """Set once the index was fully built from PostGIS; absent after Redis lost its data,
        and search then answers from PostGIS until the index is rebuilt."""
        return f"{self._index}:ready"

    @property
    def index_rebuild_lock(self) -> str:
        return f"{self._index}:rebuild-lock"

    @property
    def vehicle_deltas(self) -> str:
        """Pub/sub channel of created / updated / removed vehicle deltas. Under the index's
        format: its messages carry documents, and a process of another version would misread
        them."""
        return f"{self._index}:vehicles:deltas"

    @property
    def booking_changes(self) -> str:
        """Pub/sub channel of booking changes, each message a booking id (bookingUpdates)."""
        return f"{self.prefix}:bookings:changes"

    def provider_members(self, provider_id: str) -> str:
        """Set of a provider's vehicle ids present in the index (for rebuilds and removals)."""
        return f"{self._index}:provider:{provider_id}:vehicles"

    def provider_indexed_run(self, provider_id: str) -> str:
        """Id of the sync run whose result the index holds for this provider. A sync applies
        its delta only when this is the provider's previous good run; otherwise it rebuilds."""
        return f"{self._index}:provider:{provider_id}:indexed-run"

    def provider_breaker(self, provider_id: str) -> str:
        """Hash: the provider's circuit breaker (providers/breaker.py), shared by all workers."""
        return f"{self.prefix}:breaker:{provider_id}"

    @property
    def task_stream(self) -> str:
        """Redis stream of background tasks (providers/tasks.py: taskiq's RedisStreamBroker)."""
        return f"{self.prefix}:tasks"
