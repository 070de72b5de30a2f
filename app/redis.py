"""Redis plumbing: one client per process, and the key names everything else uses."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis


def create_redis(redis_url: str) -> Redis:
    # Short timeouts: Redis is the hot path, and search must fall back to PostGIS quickly when
    # Redis does not answer rather than hang a request.
    return Redis.from_url(
        redis_url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=30
    )


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str

    @property
    def vehicle_geo(self) -> str:
        """GEO set of *available* vehicles (not reserved, not disabled)."""
        return f"{self.prefix}:vehicles:geo"

    @property
    def vehicle_docs(self) -> str:
        """Hash: vehicle id -> JSON document with every field search returns and filters on."""
        return f"{self.prefix}:vehicles:docs"

    @property
    def vehicle_deltas(self) -> str:
        """Pub/sub channel of created / updated / removed vehicle deltas."""
        return f"{self.prefix}:vehicles:deltas"

    def provider_members(self, provider_id: str) -> str:
        """Set of a provider's vehicle ids present in the index (for rebuilds and removals)."""
        return f"{self.prefix}:provider:{provider_id}:vehicles"
