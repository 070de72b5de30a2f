"""The Redis GEO index of available vehicles: document format, writes, reads.

One GEO set holds every *available* vehicle (not reserved, not disabled) of every provider; a hash
holds each indexed vehicle's document with every field search returns or filters on, so the hot
path answers from Redis alone. PostgreSQL stays the system of record: the index can always be
rebuilt from it (``rebuild_provider``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
import orjson
from redis.asyncio import RedisCluster
from redis.exceptions import AskError, MovedError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.dto import FormFactor
from app.platform.redis import RedisClient, RedisKeys
from app.platform.redis_pipelined import PipelinedRedis, Script
from app.vehicle import (
    GEO_MAX_LAT,
    LUA_FILTER_ARGS,
    LUA_REJECTS,
    IndexUnavailable,
    VehicleDoc,
    VehicleFilter,
)

__all__ = [
    "GEOHASH_SLACK_METERS",
    "GEO_MAX_LAT",
    "SPHERE_MARGIN",
    "IndexUnavailable",
    "VehicleDelta",
    "VehicleDoc",
    "VehicleIndex",
]

# Redis GEO distances are spherical; ask for a slightly larger radius so that nothing within the
# geodesic radius is missed, then filter on the geodesic distance.
SPHERE_MARGIN = 1.006
# Redis keeps positions as 52-bit geohashes: its distances are those of a point up to about
# half a metre from the stored one. Bounds on Redis distances get this much slack as well.
GEOHASH_SLACK_METERS = 1.0
_BATCH = 2_000
# KEYS: geo set, documents hash, ready flag.
# ARGV: lon, lat, radius (m), count, skip, the minimum distance (m, "" = none) of ids to
# consider; then the filter's arguments (app/vehicle.VehicleFilter.redis_args, "" = any).
# Returns {number of ids found, JSON array of the matching documents}; {-1} when the index is
# not built. One array, not one reply element per document: the client parses one string and
# orjson decodes every document in one call.
# Filtering here means a selective filter (5% of the fleet) costs Redis a JSON decode per
# candidate instead of sending every candidate to the API process.
# Skipping: the common first call (skip 0, no minimum) asks for ids alone. Otherwise the
# distances come too. Redis orders equal distances arbitrarily, and not necessarily alike in
# two calls (vehicles at one station share a position), so the `skip` ids a previous call
# returned need not be the first `skip` of this one: only ids strictly nearer than the
# skip-th are left out, and the caller drops the repeats. Ids nearer than the minimum (a
# page's cursor) are left out before their documents are read.
_NEAREST_LUA = """
if redis.call('EXISTS', KEYS[3]) == 0 then return {-1} end
local skip = tonumber(ARGV[5])
local min_dist = tonumber(ARGV[6])
local wanted = {}
local found
if skip == 0 and not min_dist then
  wanted = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2],
                      'BYRADIUS', ARGV[3], 'm', 'ASC', 'COUNT', ARGV[4])
  found = #wanted
else
  local hits = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2],
                          'BYRADIUS', ARGV[3], 'm', 'ASC', 'COUNT', ARGV[4], 'WITHDIST')
  found = #hits
  local boundary = -1
  if skip > 0 and skip <= found then boundary = tonumber(hits[skip][2]) end
  for i = 1, found do
    local d = tonumber(hits[i][2])
    if (i > skip or d >= boundary) and (not min_dist or d >= min_dist) then
      wanted[#wanted + 1] = hits[i][1]
    end
  end
end
if #wanted == 0 then return {found, '[]'} end
local function set(csv)
  if csv == '' then return nil end
  local s = {}
  for item in string.gmatch(csv, '[^,]+') do s[item] = true end
  return s
end
-- FILTER_ARGS
local kept = {}
-- HMGET in slices: unpack() of more than a few thousand values overflows Lua's C stack.
for first = 1, #wanted, 1000 do
  local docs = redis.call('HMGET', KEYS[2], unpack(wanted, first, math.min(first + 999, #wanted)))
  for i = 1, #docs do
    local doc = docs[i]
    local keep = doc ~= false  -- false: removed between GEOSEARCH and HMGET
    if keep and filtering then
      local v = cjson.decode(doc)
      if REJECTS then
        keep = false
      end
    end
    if keep then kept[#kept + 1] = doc end
  end
end
return {found, '[' .. table.concat(kept, ',') .. ']'}
""".replace(
    # The filter's part comes from the vehicle's home: its arguments from ARGV[7] on, and the
    # test on each decoded document at the field positions of VehicleDoc.
    "-- FILTER_ARGS\n",
    LUA_FILTER_ARGS.format(a0=7, a1=8, a2=9, a3=10, a4=11),
).replace("REJECTS", LUA_REJECTS)


_FORM_FACTORS = tuple(f.value for f in FormFactor)
_ANY = VehicleFilter()


@dataclass(frozen=True, slots=True)
class VehicleDelta:
    """One message of the delta channel, as :meth:`VehicleIndex.publish_delta` wrote it."""

    provider_id: str
    created: list[VehicleDoc]
    updated: list[VehicleDoc]
    removed: list[str]

    @classmethod
    def decode(cls, raw: bytes) -> VehicleDelta:
        try:
            message = orjson.loads(raw)
            return cls(
                provider_id=message["provider"],
                created=[VehicleDoc._make(d) for d in message["created"]],
                updated=[VehicleDoc._make(d) for d in message["updated"]],
                removed=list(message["removed"]),
            )
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise IndexUnavailable(f"unreadable delta message: {exc}") from exc


def _as_list(value: object) -> list[Any]:
    # orjson's fallback for what it does not serialise natively: sequences (slices of
    # documents, or documents themselves) become JSON arrays.
    if isinstance(value, Sequence):
        return list(value)
    raise TypeError(f"not serialisable: {type(value).__name__}")


class _BulkWriter:
    """Many commands on one pooled connection: packed by hiredis, sent without waiting, every
    reply read at the end.

    redis-py's pipeline packs arguments one by one in Python (about a microsecond each, a
    million for a large snapshot) and waits for each batch's replies before the next is built;
    here Redis works on what was sent while the caller builds the next batch. The replies are
    counts nobody needs, but an error reply is raised, and any failure drops the connection so
    unread replies can never reach the next user of it.

    On a Redis Cluster the connection is one to the node that holds ``slot_key``'s hash slot:
    every key the commands name must share that slot (the index's keys share one hash tag,
    app/platform/redis.RedisKeys). A MOVED or ASK reply (the slot is being moved to another
    node) or a lost node (a failover) fails the batch like any error, and has the client read
    the cluster's slot map again, so the caller's retry goes to the slot's new owner.
    """

    def __init__(self, redis: RedisClient, slot_key: str) -> None:
        self._redis = redis
        self._slot_key = slot_key
        self._conn: Any = None
        self._release: Any = None
        self._pending = 0

    async def __aenter__(self) -> _BulkWriter:
        redis = self._redis
        if isinstance(redis, RedisCluster):
            await redis.initialize()  # the slot map, once per client (a no-op after)
            node = redis.get_node_from_key(self._slot_key)
            if node is None:
                raise RedisConnectionError("no cluster node holds the index's slot")
            self._conn = node.acquire_connection()
            self._release = node.release
        else:
            pool = redis.connection_pool
            self._conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            self._release = pool.release
        return self

    async def send(self, commands: Sequence[tuple[Any, ...]]) -> None:
        if commands:
            await self._conn.send_packed_command([hiredis.pack_command(c) for c in commands])
            self._pending += len(commands)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, *_: object
    ) -> None:
        conn, self._conn = self._conn, None
        failure = exc
        try:
            if exc_type is None:
                while self._pending:
                    self._pending -= 1
                    await conn.read_response()
            else:
                await conn.disconnect()
        except BaseException as error:
            await conn.disconnect()
            failure = error
            raise
        finally:
            release = self._release
            self._release = None
            result = release(conn)
            if result is not None:  # the pool's release is a coroutine, a node's is not
                await result
            if failure is not None:
                await self._after_failure(failure)

    async def _after_failure(self, error: BaseException) -> None:
        # The slot moved (MOVED, ASK) or its node went away (a failover): read the slot map
        # again, so the next writer goes to the slot's owner now. redis-py does this for its
        # own commands; this connection is taken past them.
        redis = self._redis
        if isinstance(redis, RedisCluster) and isinstance(
            error, (MovedError, AskError, RedisConnectionError, RedisTimeoutError, OSError)
        ):
            with contextlib.suppress(RedisError, RedisClusterException, OSError):
                await redis.nodes_manager.initialize()


class VehicleIndex:
    def __init__(
        self,
        redis: RedisClient,
        keys: RedisKeys,
        *,
        search_client: PipelinedRedis | None = None,
    ) -> None:
        """``search_client``: the hot path's shared pipelined connection
        (app/platform/redis_pipelined.py); without it, searches go through ``redis``."""
        self.redis = redis
        self.keys = keys
        self.search_client = search_client
        # A cluster publishes deltas on a sharded channel (the index's slot: RedisKeys).
        self._publish = "SPUBLISH" if isinstance(redis, RedisCluster) else "PUBLISH"
        self._nearest = redis.register_script(_NEAREST_LUA)
        self._nearest_script = Script.of(_NEAREST_LUA)

    async def apply(
        self, provider_id: str, upserted: Sequence[VehicleDoc], removed_ids: Iterable[str]
    ) -> None:
        """Make the index match: upserted vehicles in (if available) or out, removed ones out.

        One variadic command per key and batch (GEOADD with many members, HSET with many
        fields) rather than one command per vehicle, packed by hiredis and sent as soon as a
        batch is built, so Redis applies one batch while the next is encoded
        (docs/performance.md, ingest)."""
        k = self.keys
        members = k.provider_members(provider_id)
        async with _BulkWriter(self.redis, k.index_tag) as writer:
            for start in range(0, len(upserted), _BATCH):
                points: list[Any] = []
                by_form_factor: dict[str, list[Any]] = {}
                docs: list[Any] = []
                ids: list[str] = []
                gone: list[str] = []
                for doc in upserted[start : start + _BATCH]:
                    if doc.indexable:
                        point = (doc.lon, doc.lat, doc.id)
                        points.extend(point)
                        by_form_factor.setdefault(doc.form_factor, []).extend(point)
                        docs.extend((doc.id, doc.encode()))
                        ids.append(doc.id)
                    else:
                        gone.append(doc.id)
                commands: list[tuple[Any, ...]] = []
                if ids:
                    commands.append(("GEOADD", k.vehicle_geo, *points))
                    for form_factor, ff_points in by_form_factor.items():
                        commands.append(("GEOADD", k.vehicle_geo_of(form_factor), *ff_points))
                    commands.append(("HSET", k.vehicle_docs, *docs))
                    commands.append(("SADD", members, *ids))
                if gone:
                    commands += self._unindex_commands(members, gone)
                await writer.send(commands)
            removed = list(removed_ids)
            for start in range(0, len(removed), _BATCH):
                await writer.send(self._unindex_commands(members, removed[start : start + _BATCH]))

    def _unindex_commands(self, members: str, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        # The vehicle's previous form factor is not known here: leave no set holding it. (A
        # vehicle whose form factor changed may linger in its old set; searches still filter
        # on the document, so it is never shown under the wrong form factor.)
        k = self.keys
        return [
            ("ZREM", k.vehicle_geo, *ids),
            *(("ZREM", k.vehicle_geo_of(ff), *ids) for ff in _FORM_FACTORS),
            ("HDEL", k.vehicle_docs, *ids),
            ("SREM", members, *ids),
        ]

    async def remove_provider(self, provider_id: str) -> None:
        members_key = self.keys.provider_members(provider_id)
        members: set[bytes] = await self.redis.smembers(members_key)  # type: ignore[assignment]
        ids = [m.decode() for m in members]
        async with _BulkWriter(self.redis, members_key) as writer:
            for start in range(0, len(ids), _BATCH):
                await writer.send(self._unindex_commands(members_key, ids[start : start + _BATCH]))
        await self.redis.delete(members_key, self.keys.provider_indexed_run(provider_id))

    async def rebuild_provider(self, provider_id: str, docs: Sequence[VehicleDoc]) -> None:
        await self.remove_provider(provider_id)
        await self.apply(provider_id, docs, ())

    async def publish_delta(
        self,
        provider_id: str,
        created: Sequence[VehicleDoc],
        updated: Sequence[VehicleDoc],
        removed_ids: Sequence[str],
        *,
        batch_size: int = 500,
    ) -> int:
        """Publish the delta in batches; returns the number of messages sent.

        A message is ``{"provider", "created", "updated", "removed"}``: documents in the index's
        own array form (the fields of :class:`VehicleDoc`, in order), removed vehicles by id;
        :meth:`VehicleDelta.decode` reads it back. Serialised by orjson straight from the
        tuples: a 100,000-vehicle first load publishes in a few tens of milliseconds."""
        total = len(created) + len(updated) + len(removed_ids)
        if not total:
            return 0
        # Slices of the three lists by position in their concatenation: no per-item objects
        # (a tuple per vehicle cost more than the serialisation, in allocation and GC).
        c_end, u_end = len(created), len(created) + len(updated)
        messages = 0
        async with _BulkWriter(self.redis, self.keys.vehicle_deltas) as writer:
            for start in range(0, total, batch_size):
                stop = min(start + batch_size, total)
                message = {
                    "provider": provider_id,
                    "created": created[min(start, c_end) : min(stop, c_end)],
                    "updated": updated[
                        max(start, c_end) - c_end : max(min(stop, u_end), c_end) - c_end
                    ],
                    "removed": removed_ids[max(start, u_end) - u_end : max(stop, u_end) - u_end],
                }
                payload = orjson.dumps(message, default=_as_list)
                await writer.send([(self._publish, self.keys.vehicle_deltas, payload)])
                messages += 1
        return messages

    async def nearest_documents(
        self,
        lat: float,
        lon: float,
        radius_meters: float,
        *,
        count: int,
        skip: int = 0,
        flt: VehicleFilter = _ANY,
        min_distance_meters: float | None = None,
    ) -> tuple[int, list[VehicleDoc]]:
        """Documents of the ``count`` nearest indexed vehicles within (a hair more than) the
        radius, nearest first, without the first ``skip`` of them, keeping those that pass the
        criteria of ``flt`` the index decides (VehicleFilter.redis_args); and how many ids the
        radius search found (fewer than ``count``: there are no more).

        With ``skip``, vehicles at the same distance as the skip-th come again (Redis may
        order ties differently from one call to the next): the caller drops those it has.
        ``min_distance_meters`` leaves out vehicles nearer than that by Redis's own (spherical,
        geohash) distance, before their documents are read; they still count in ``found``.

        One round trip: a server-side script runs GEOSEARCH, HMGET and the filters together,
        so only the documents wanted cross the wire and go through the client's parsing.
        """
        forms = flt.form_factors
        geo = (
            self.keys.vehicle_geo_of(next(iter(forms)))
            if forms is not None and len(forms) == 1
            else self.keys.vehicle_geo
        )
        keys = [geo, self.keys.vehicle_docs, self.keys.index_ready]
        args: list[str | int | float] = [
            lon,
            lat,
            radius_meters * SPHERE_MARGIN + GEOHASH_SLACK_METERS,
            count,
            skip,
            min_distance_meters if min_distance_meters is not None else "",
            *flt.redis_args(),
        ]
        try:
            reply = await self._run_nearest(keys, args)
        except RedisConnectionError:
            # A connection opened before a Redis restart fails on first use; one fresh
            # attempt tells a stale connection from a Redis that is really down.
            reply = await self._run_nearest(keys, args)
        found = int(reply[0])
        if found < 0:
            raise IndexUnavailable("the index is not built")
        try:
            return found, list(map(VehicleDoc._make, orjson.loads(reply[1])))
        except (orjson.JSONDecodeError, IndexError, TypeError, ValueError) as exc:
            raise IndexUnavailable(f"unreadable index document: {exc}") from exc

    async def _run_nearest(self, keys: list[str], args: list[str | int | float]) -> Any:
        if self.search_client is not None:
            return await self.search_client.evalsha(self._nearest_script, keys, args)
        return await self._nearest(keys=keys, args=args)

    async def is_ready(self) -> bool:
        return bool(await self.redis.exists(self.keys.index_ready))

    async def mark_ready(self) -> None:
        await self.redis.set(self.keys.index_ready, "1")

    async def indexed_run(self, provider_id: str) -> int | None:
        raw = await self.redis.get(self.keys.provider_indexed_run(provider_id))
        return int(raw) if raw is not None else None

    async def set_indexed_run(self, provider_id: str, run_id: int) -> None:
        await self.redis.set(self.keys.provider_indexed_run(provider_id), str(run_id))

    async def documents(self, ids: Sequence[str]) -> list[VehicleDoc | None]:
        if not ids:
            return []
        raws: list[bytes | None] = await self.redis.hmget(  # type: ignore[assignment]
            self.keys.vehicle_docs, list(ids)
        )
        return [VehicleDoc.decode(r) if r is not None else None for r in raws]
