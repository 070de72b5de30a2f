"""Every PostgreSQL advisory lock the code takes, written once: its key, who takes it, and how.

Two paths coordinate through an advisory lock only if they spell its key the same way, and two
unrelated locks would collide if they shared a namespace (``'vehicles:'``, ``'index:'`` …), so
the statements live here and booking (``app/booking/repository.py``), sync
(``providers/sync.py``) and push ingest (``providers/push.py``) import them. A platform module:
``providers/`` may import it without importing the booking domain (docs/architecture.md).

Each statement is written in its callers' parameter style: ``:name`` for SQLAlchemy's
``text()``, ``$1`` for asyncpg.
"""

from __future__ import annotations

__all__ = [
    "INDEX_LOCK_SHARED",
    "INDEX_XACT_LOCK",
    "RIDER_BOOKINGS_LOCK",
    "SYNC_LOCK",
    "SYNC_UNLOCK",
    "VEHICLES_LOCK_SHARED",
    "VEHICLES_XACT_LOCK",
]

# Bookings and syncs both write vehicles.is_reserved: a sync's merge holds this lock exclusively
# from reading the provider's active bookings to its commit (providers/sync.py), a booking
# change holds it shared while it writes a vehicle (app/booking/repository.py), so neither
# overwrites the other's write.
VEHICLES_XACT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('vehicles:' || $1))"
VEHICLES_LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(hashtext('vehicles:' || :provider))"

# Push batches take it shared (providers/push.py), a rebuild of the provider's index exclusive
# (providers/sync.py).
INDEX_LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(hashtext('index:' || $1))"
INDEX_XACT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('index:' || :p))"

# One sync per provider at a time across all processes (providers/sync.py): a session lock,
# tried, not waited for.
SYNC_LOCK = "SELECT pg_try_advisory_lock(hashtext('sync:' || :p))"
SYNC_UNLOCK = "SELECT pg_advisory_unlock(hashtext('sync:' || :p))"

# One rider's reservations, one at a time: two at once would both count one fewer active
# (app/booking/repository.py).
RIDER_BOOKINGS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('rider-bookings:' || :user_id))"
