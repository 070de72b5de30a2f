"""The Redis GEO index of available vehicles: document format, writes, reads.

One GEO set holds every *available* vehicle (not reserved, not disabled) of every provider; a hash
holds each indexed vehicle's document with every field search returns or filters on, so the hot
path answers from Redis alone. PostgreSQL stays the system of record: the index can always be
rebuilt from it (``rebuild_provider``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.dto import FormFactor
from app.redis import RedisKeys

# Redis GEO distances are spherical; ask for a slightly larger radius so that nothing within the
# geodesic radius is missed, then filter on the geodesic distance.
SPHERE_MARGIN = 1.006
_BATCH = 2_000
# Redis GEO covers the Web Mercator band only; vehicles beyond it stay searchable in PostGIS.
GEO_MAX_LAT = 85.05112878


class IndexUnavailable(Exception):
    """The index cannot answer right now (not built yet, or holding unreadable documents):
    search answers from PostGIS instead."""


class VehicleDoc(NamedTuple):
    """One vehicle as search returns it. A tuple, so that decoding the index's documents (the
    search hot path) is a single C-level construction from the stored list."""

    id: str
    provider_id: str
    form_factor: str
    propulsion_type: str
    lat: float
    lon: float
    is_reserved: bool
    is_disabled: bool
    vehicle_type_id: str | None
    pricing_plan_id: str | None
    station_id: str | None
    current_range_meters: float | None
    current_fuel_percent: float | None
    rental_uris: dict[str, str | None] | None
    # Documents read from the index keep the ISO string as stored: most answers never show it,
    # so it is parsed only when asked for (reported_at()).
    last_reported: datetime | str | None

    def reported_at(self) -> datetime | None:
        value = self.last_reported
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    def reported_iso(self) -> str | None:
        value = self.last_reported
        return value.isoformat() if isinstance(value, datetime) else value

    @property
    def is_available(self) -> bool:
        return not self.is_reserved and not self.is_disabled

    @property
    def indexable(self) -> bool:
        return self.is_available and abs(self.lat) <= GEO_MAX_LAT

    def encode(self) -> bytes:
        values = list(self)
        values[_LAST_REPORTED] = self.reported_iso()
        return orjson.dumps(values)

    @classmethod
    def decode(cls, raw: bytes) -> VehicleDoc:
        try:
            return cls._make(orjson.loads(raw))
        except (orjson.JSONDecodeError, IndexError, TypeError, ValueError) as exc:
            raise IndexUnavailable(f"unreadable index document: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        """The shape published on the delta channel."""
        return {
            "id": self.id,
            "providerId": self.provider_id,
            "formFactor": self.form_factor,
            "propulsionType": self.propulsion_type,
            "lat": self.lat,
            "lon": self.lon,
            "isReserved": self.is_reserved,
            "isDisabled": self.is_disabled,
            "vehicleTypeId": self.vehicle_type_id,
            "pricingPlanId": self.pricing_plan_id,
            "stationId": self.station_id,
            "currentRangeMeters": self.current_range_meters,
            "currentFuelPercent": self.current_fuel_percent,
            "lastReported": self.reported_iso(),
        }


# KEYS: geo set, documents hash, ready flag.
# ARGV: lon, lat, radius (m), count, skip, then the filter: form factors, propulsion types and
# providers as comma-separated lists ("" = any), minimum range ("" = none).
# Returns {number of ids found, matching document...}; {-1} when the index is not built.
# Filtering here means a selective filter (5% of the fleet) costs Redis a JSON decode per
# candidate instead of sending every candidate to the API process.
_NEAREST_LUA = """
if redis.call('EXISTS', KEYS[3]) == 0 then return {-1} end
local ids = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2],
                       'BYRADIUS', ARGV[3], 'm', 'ASC', 'COUNT', ARGV[4])
local skip = tonumber(ARGV[5])
local wanted = {}
for i = skip + 1, #ids do wanted[#wanted + 1] = ids[i] end
if #wanted == 0 then return {#ids} end
local docs = redis.call('HMGET', KEYS[2], unpack(wanted))
local function set(csv)
  if csv == '' then return nil end
  local s = {}
  for item in string.gmatch(csv, '[^,]+') do s[item] = true end
  return s
end
local forms, propulsions, providers = set(ARGV[6]), set(ARGV[7]), set(ARGV[8])
local min_range = tonumber(ARGV[9])
local filtering = forms or propulsions or providers or min_range
local reply = {#ids}
for i = 1, #docs do
  local doc = docs[i]
  local keep = true
  if doc and filtering then
    local v = cjson.decode(doc)
    if (forms and not forms[v[3]]) or (propulsions and not propulsions[v[4]])
       or (providers and not providers[v[2]])
       or (min_range and (v[12] == cjson.null or v[12] < min_range)) then
      keep = false
    end
  end
  if keep then reply[#reply + 1] = doc end
end
return reply
"""


_LAST_REPORTED = VehicleDoc._fields.index("last_reported")
_FORM_FACTORS = tuple(f.value for f in FormFactor)


class VehicleIndex:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._nearest = redis.register_script(_NEAREST_LUA)

    async def apply(
        self, provider_id: str, upserted: Sequence[VehicleDoc], removed_ids: Iterable[str]
    ) -> None:
        """Make the index match: upserted vehicles in (if available) or out, removed ones out."""
        k = self.keys
        members = k.provider_members(provider_id)
        ops = 0
        pipe = self.redis.pipeline(transaction=False)
        for doc in upserted:
            if doc.indexable:
                pipe.geoadd(k.vehicle_geo, (doc.lon, doc.lat, doc.id))
                pipe.geoadd(k.vehicle_geo_of(doc.form_factor), (doc.lon, doc.lat, doc.id))
                pipe.hset(k.vehicle_docs, doc.id, doc.encode())
                pipe.sadd(members, doc.id)
            else:
                self._unindex(pipe, doc.id)
                pipe.srem(members, doc.id)
            ops += 1
            if ops % _BATCH == 0:
                await pipe.execute()
        for vid in removed_ids:
            self._unindex(pipe, vid)
            pipe.srem(members, vid)
            ops += 1
            if ops % _BATCH == 0:
                await pipe.execute()
        await pipe.execute()

    def _unindex(self, pipe: Any, *ids: str) -> None:
        # The vehicle's previous form factor is not known here: leave no set holding it. (A
        # vehicle whose form factor changed may linger in its old set; searches still filter
        # on the document, so it is never shown under the wrong form factor.)
        pipe.zrem(self.keys.vehicle_geo, *ids)
        for form_factor in _FORM_FACTORS:
            pipe.zrem(self.keys.vehicle_geo_of(form_factor), *ids)
        pipe.hdel(self.keys.vehicle_docs, *ids)

    async def remove_provider(self, provider_id: str) -> None:
        members_key = self.keys.provider_members(provider_id)
        members: set[bytes] = await self.redis.smembers(members_key)  # type: ignore[assignment]
        ids = [m.decode() for m in members]
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            pipe = self.redis.pipeline(transaction=False)
            self._unindex(pipe, *chunk)
            await pipe.execute()
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
        """Publish the delta in batches; returns the number of messages sent."""
        messages = 0
        items: list[tuple[str, Any]] = [("created", d.to_json()) for d in created]
        items += [("updated", d.to_json()) for d in updated]
        items += [("removed", vid) for vid in removed_ids]
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            message: dict[str, Any] = {
                "provider": provider_id,
                "created": [v for kind, v in batch if kind == "created"],
                "updated": [v for kind, v in batch if kind == "updated"],
                "removed": [v for kind, v in batch if kind == "removed"],
            }
            await self.redis.publish(self.keys.vehicle_deltas, orjson.dumps(message))
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
        form_factors: Iterable[str] | None = None,
        propulsion_types: Iterable[str] | None = None,
        providers: Iterable[str] | None = None,
        min_range_meters: float | None = None,
    ) -> tuple[int, list[VehicleDoc | None]]:
        """Documents of the ``count`` nearest indexed vehicles within (a hair more than) the
        radius, nearest first, without the first ``skip`` of them, keeping those that pass the
        given filters; and how many ids the radius search found (fewer than ``count``: there
        are no more).

        One round trip: a server-side script runs GEOSEARCH, HMGET and the filters together,
        so only the documents wanted cross the wire and go through the client's parsing.
        """
        wanted_forms = list(form_factors) if form_factors is not None else None
        geo = (
            self.keys.vehicle_geo_of(wanted_forms[0])
            if wanted_forms is not None and len(wanted_forms) == 1
            else self.keys.vehicle_geo
        )
        keys = [geo, self.keys.vehicle_docs, self.keys.index_ready]
        args: list[str | int | float] = [
            lon,
            lat,
            radius_meters * SPHERE_MARGIN,
            count,
            skip,
            ",".join(wanted_forms) if wanted_forms is not None else "",
            ",".join(propulsion_types) if propulsion_types is not None else "",
            ",".join(providers) if providers is not None else "",
            min_range_meters if min_range_meters is not None else "",
        ]
        try:
            reply = await self._nearest(keys=keys, args=args)
        except RedisConnectionError:
            # A pooled connection opened before a Redis restart fails on first use; one fresh
            # attempt tells a stale connection from a Redis that is really down.
            reply = await self._nearest(keys=keys, args=args)
        found = int(reply[0])
        if found < 0:
            raise IndexUnavailable("the index is not built")
        return found, [VehicleDoc.decode(r) if r is not None else None for r in reply[1:]]

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
