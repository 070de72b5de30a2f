"""Applying a validated push batch: one transaction (one upsert statement, one delete) in
PostgreSQL, then the Redis index and the delta channel; the vehicle types and plans a pushed
vehicle takes; the advisory-lock keys push shares with a sync (``providers/sync.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from adapters.dto import UNSPECIFIED_VEHICLE_TYPE_ID, placeholder_vehicle_type
from app.models import ACTIVE_BOOKING_STATES
from app.platform import metrics, secret_box
from app.platform.advisory_locks import INDEX_LOCK_SHARED
from app.reference import ReferenceData
from app.vehicle import PUSH_UPSERT, VehicleDoc, push_columns, with_kept
from app.vehicle_index import VehicleIndex
from providers.push.records import PushBatch, PushedVehicle, RecordProblem


@dataclass(slots=True)
class PushOutcome:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rejected: list[RecordProblem] = field(default_factory=list)
    ignored: list[RecordProblem] = field(default_factory=list)
    # Applied, with a doubt the sender should clear (a type or plan we do not know).
    warnings: list[RecordProblem] = field(default_factory=list)
    index_updated: bool = True

    @property
    def applied(self) -> int:
        return len(self.created) + len(self.updated) + len(self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "created": len(self.created),
            "updated": len(self.updated),
            "removed": len(self.removed),
            "rejected": [p.to_json() for p in self.rejected],
            "ignored": [p.to_json() for p in self.ignored],
            "warnings": [p.to_json() for p in self.warnings],
            "indexUpdated": self.index_updated,
        }


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """What a pushed vehicle takes from its type (ids provider-scoped)."""

    type_id: str | None
    form_factor: str
    propulsion_type: str
    default_plan_id: str | None


# An untyped vehicle of a provider that declares no types: a bicycle, as GBFS 1.x implies.
UNTYPED = TypeInfo(None, "bicycle", "human", None)

_DELETE = """
DELETE FROM vehicles WHERE id IN (
    SELECT id FROM vehicles WHERE provider_id = $1 AND id = ANY($2::text[])
    ORDER BY id FOR UPDATE)
RETURNING id
"""
_DEADLOCK_ATTEMPTS = 3
# Run after the upsert, so with a snapshot newer than it (READ COMMITTED: one per statement).
_BOOKED = """
SELECT vehicle_id FROM bookings
WHERE provider_id = $1 AND vehicle_id = ANY($2::text[]) AND state = ANY($3::text[])
"""
_KEEP_RESERVED = "UPDATE vehicles SET is_reserved = true WHERE id = ANY($1::text[])"


class PushIngest:
    """Applies validated batches: one transaction (one upsert statement, one delete), then the
    Redis index and the delta channel, like a sync but for the vehicles named only."""

    def __init__(self, pool: asyncpg.Pool, index: VehicleIndex) -> None:
        # A pool of its own: a batch holds its connection while it writes the index, and
        # must not take connections search needs (most of all while Redis is failing).
        self.pool = pool
        self.index = index

    async def credentials(self, provider_id: str) -> tuple[str | None, bool] | None:
        """(ingest secret, enabled) of the provider; None if there is no such provider."""
        row = await self.pool.fetchrow(
            "SELECT ingest_secret, enabled FROM providers WHERE id = $1", provider_id
        )
        if row is None:
            return None
        # Read with the driver, not the ORM: opened here (sealed at rest,
        # app/platform/secret_box.py).
        stored = row["ingest_secret"]
        if stored is None:
            return None, row["enabled"]
        return secret_box.current().open(stored, secret_box.INGEST_SECRET_PURPOSE), row["enabled"]

    async def apply(
        self,
        provider_id: str,
        batch: PushBatch,
        types: Mapping[str, TypeInfo],
        plans: frozenset[str],
    ) -> PushOutcome:
        """``types``: the provider's vehicle types by external id; ``plans``: its pricing plan
        external ids."""
        outcome = PushOutcome(rejected=list(batch.rejected), ignored=list(batch.ignored))
        p = provider_id
        docs: dict[str, VehicleDoc] = {}
        positions: dict[str, int] = {}  # where each vehicle was in the request
        # Rows are written (and locked) in id order, so two batches touching the same
        # vehicles lock them in the same order instead of deadlocking.
        for v in sorted(batch.vehicles, key=lambda v: v.vehicle_id):
            info = _type_for(p, v, types, outcome.warnings)
            plan_id = info.default_plan_id
            if v.pricing_plan_id is not None:
                if v.pricing_plan_id in plans:
                    plan_id = f"{p}:{v.pricing_plan_id}"
                else:
                    outcome.warnings.append(
                        RecordProblem(
                            v.index,
                            v.vehicle_id,
                            "UNKNOWN_PRICING_PLAN",
                            f"pricing_plan_id {v.pricing_plan_id!r} is not one of the "
                            "provider's plans: stored with its type's default plan",
                        )
                    )
            vid = f"{p}:{v.vehicle_id}"
            positions[vid] = v.index
            docs[vid] = VehicleDoc(
                id=vid,
                provider_id=p,
                form_factor=info.form_factor,
                propulsion_type=info.propulsion_type,
                lat=v.lat,
                lon=v.lon,
                is_reserved=v.is_reserved,
                is_disabled=v.is_disabled,
                vehicle_type_id=info.type_id,
                pricing_plan_id=plan_id,
                # A pushed position is the operator's own: no station.
                station_id=None,
                current_range_meters=v.current_range_meters,
                current_fuel_percent=v.current_fuel_percent,
                rental_uris=v.rental_uris,
                last_reported=v.last_reported,
                vehicle_equipment=v.vehicle_equipment,
            )
        removed_ids = sorted(f"{p}:{vid}" for vid in batch.removed)
        for attempt in range(1, _DEADLOCK_ATTEMPTS + 1):
            try:
                await _write_batch(self.pool, self.index, p, docs, removed_ids, outcome)
                break
            except asyncpg.DeadlockDetectedError:
                # Upserts lock in id order, but an upsert and a delete in two batches can
                # still cross; PostgreSQL aborted one of them: run it again.
                if attempt == _DEADLOCK_ATTEMPTS:
                    raise
                outcome.created, outcome.updated, outcome.removed = [], [], []
                outcome.index_updated = True
        applied = set(outcome.created) | set(outcome.updated)
        for vid, doc in docs.items():
            if vid in applied:
                continue
            outcome.ignored.append(
                RecordProblem(
                    positions[vid],
                    doc.id.split(":", 1)[1],
                    "STALE_STATUS",
                    "the stored status of this vehicle is newer; nothing changed",
                )
            )
        # Reported in the order the sender wrote them ("removed" entries last).
        outcome.rejected.sort(key=_position)
        outcome.ignored.sort(key=_position)
        outcome.warnings.sort(key=_position)
        return outcome


def _position(problem: RecordProblem) -> tuple[bool, int]:
    return (problem.index is None, problem.index or 0)


async def _write_batch(
    pool: asyncpg.Pool,
    index: VehicleIndex,
    p: str,
    docs: dict[str, VehicleDoc],
    removed_ids: list[str],
    outcome: PushOutcome,
) -> None:
    # This attempt's own copy: holding booked vehicles below marks them reserved, and a retry
    # after a deadlock must start again from what the operator sent.
    docs = dict(docs)
    async with pool.acquire() as conn, conn.transaction():
        # Shared with other batches, exclusive to an index rebuild of this provider
        # (SyncEngine.rebuild_index), which would otherwise write positions it read before
        # this batch committed over the ones this batch writes.
        await conn.execute(INDEX_LOCK_SHARED, p)
        rows = await conn.fetch(PUSH_UPSERT, *push_columns(docs.values())) if docs else []
        await _hold_booked(conn, p, [r["id"] for r in rows], docs)
        gone = await conn.fetch(_DELETE, p, removed_ids) if removed_ids else []
        applied: list[VehicleDoc] = []
        for row in rows:
            doc = with_kept(docs[row["id"]], row)
            (outcome.created if row["inserted"] else outcome.updated).append(doc.id)
            applied.append(doc)
        outcome.removed = [r["id"] for r in gone]
        # The index is written while the rows are still locked: two batches for the same
        # vehicle reach Redis in the order PostgreSQL committed them, so the index can never
        # end on the older position. A Redis failure does not undo the batch: PostgreSQL is
        # the record and search falls back to it; the sender is told to send it again (503),
        # which re-applies the same statuses and brings the index up to date.
        created = set(outcome.created)
        try:
            # Every id asked to be removed leaves the index, not only those this DELETE found:
            # a batch resent after a 503 finds no rows, but the index may still hold them.
            await index.apply(p, applied, removed_ids)
            await index.publish_delta(
                p,
                [d for d in applied if d.id in created],
                [d for d in applied if d.id not in created],
                outcome.removed,
            )
        except (RedisError, OSError):
            metrics.redis_error("push")
            outcome.index_updated = False


_ACTIVE_STATES = sorted(ACTIVE_BOOKING_STATES)


async def _hold_booked(
    conn: asyncpg.Connection, provider_id: str, written: list[str], docs: dict[str, VehicleDoc]
) -> None:
    """A vehicle with an active booking here stays reserved whatever the operator reports:
    its status may predate the booking, and a booked vehicle must not come back into search.

    Called after the upsert, which holds the written rows' locks to the commit. A booking
    committed before this query is seen here and its vehicle is set reserved again; one not
    committed yet still has to write its vehicle's row, so it waits for this batch to commit
    and then marks the vehicle reserved itself (and updates the index). No advisory lock is
    needed, so batches of one provider still run side by side."""
    freed = [vid for vid in written if not docs[vid].is_reserved]
    if not freed:
        return
    booked = await conn.fetch(_BOOKED, provider_id, freed, _ACTIVE_STATES)
    held = [r["vehicle_id"] for r in booked]
    if not held:
        return
    await conn.execute(_KEEP_RESERVED, held)
    for vehicle_id in held:
        docs[vehicle_id] = docs[vehicle_id]._replace(is_reserved=True)


def _type_for(
    provider_id: str,
    v: PushedVehicle,
    types: Mapping[str, TypeInfo],
    warnings: list[RecordProblem],
) -> TypeInfo:
    if v.vehicle_type_id is not None:
        info = types.get(v.vehicle_type_id)
        if info is not None:
            return info
        warnings.append(
            RecordProblem(
                v.index,
                v.vehicle_id,
                "UNKNOWN_VEHICLE_TYPE",
                f"vehicle_type_id {v.vehicle_type_id!r} is not one of the provider's types: "
                "stored under a placeholder type until it is",
            )
        )
        return _placeholder(provider_id, v.vehicle_type_id, types)
    if not types:
        return UNTYPED
    if len(types) == 1:
        return next(iter(types.values()))
    warnings.append(
        RecordProblem(
            v.index,
            v.vehicle_id,
            "MISSING_VEHICLE_TYPE_ID",
            "no vehicle_type_id although the provider has several types: stored under a "
            "placeholder type",
        )
    )
    return _placeholder(provider_id, UNSPECIFIED_VEHICLE_TYPE_ID, types)


def _placeholder(provider_id: str, type_id: str, types: Mapping[str, TypeInfo]) -> TypeInfo:
    """The classification every ingest path gives a type it does not know (the vehicle keeps
    the operator's type id, so the provider's types can catch up with it)."""
    placeholder = placeholder_vehicle_type(type_id, types_described=bool(types))
    return TypeInfo(
        f"{provider_id}:{type_id}",
        placeholder.form_factor.value,
        placeholder.propulsion_type.value,
        None,
    )


def provider_catalog(
    reference: ReferenceData, provider_id: str
) -> tuple[dict[str, TypeInfo], frozenset[str]]:
    """The provider's vehicle types by external id and its plans' external ids, worked out
    once per reference snapshot (memoised in it)."""
    key = ("push-catalog", provider_id)
    cached = reference.views.get(key)
    if cached is None:
        types = {
            t.external_id: TypeInfo(
                t.id, t.form_factor, t.propulsion_type, t.default_pricing_plan_id
            )
            for t in reference.vehicle_types.values()
            if t.provider_id == provider_id
        }
        plans = frozenset(
            plan.external_id
            for plan in reference.pricing_plans.values()
            if plan.provider_id == provider_id
        )
        cached = reference.views[key] = (types, plans)
    return cached
