"""The stores: PostgreSQL (``database_url``) and Redis (``redis_url``, ``redis_cluster``,
``redis_prefix``).

``redis_cluster`` (``MOBILITY_REDIS_CLUSTER=true``): Redis is a Redis Cluster, and
``redis_url`` names one or more of its nodes to start from,
``redis://[user:password@]host1:port1,host2:port2`` (database 0 only: a cluster has no other).
Off by default: one Redis server, whose URL may name any database.
docs/operations-redis-cluster.md says which keys share a hash slot and why.

Read by app/runtime.py, app/platform/db.py, app/platform/redis.py, app/platform/migrate.py,
migrations/env.py,
app/task_queue.py, app/live_updates.py, app/fleet/tasks.py, the CLI commands (database, migrate,
worker, scheduler) and the benchmarks.
"""

from __future__ import annotations

from pydantic import field_validator

from app.platform.settings.base import MobilityBaseSettings


class StoreSettings(MobilityBaseSettings):
    # A plain libpq-style URL; the async driver is chosen in app.platform.db.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/mobility"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    # Namespaces every Redis key, so several deployments (or test runs) can share one server.
    redis_prefix: str = "mob"

    @field_validator("database_url")
    @classmethod
    def _plain_postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("MOBILITY_DATABASE_URL must be a postgresql:// URL")
        return value
