"""Target 8: push ingest's sustained rate beside a bare loop writing the same updates.

    python -m bench.push [--fleet 20000] [--batch 500] [--senders 4] [--duration 20] [--smoke]

One operator (``bench-push``, the ``push`` adapter with a scooter and a car type) with ``fleet``
vehicles, first created through the API. Then, for ``duration`` seconds each, ``senders``
concurrent writers send batches of ``batch`` status updates (a new position, range, fuel and
``last_reported`` for distinct random vehicles of the fleet):

- **bare loop**: each writer has its own asyncpg connection and Redis client; per batch, one
  prepared ``UPDATE … FROM unnest(…)`` statement and one pipelined ``GEOADD`` of the batch.
  No HTTP, no signature, no validation, no documents, no deltas: the floor of writing these
  updates to PostgreSQL and a GEO set;
- **push ingest**: the real API (``app.main:create_app`` under uvicorn, 2 workers, as in the
  search benchmark); each writer signs every batch (HMAC-SHA256, a fresh timestamp) and POSTs
  it to ``/ingest/bench-push/vehicles``; the server validates, upserts, writes the index
  (GEO sets, documents, member set) and publishes the delta.

Both writers build their batches in this process the same way; the push writer also encodes
JSON and runs an HTTP client, on the same two cores as the server. The figure is updates
applied per second (every batch must answer 200 with every record applied), and afterwards
every vehicle's stored position must be the last one sent, in PostGIS and in the index.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson
from redis.asyncio import Redis

from app.platform.db import transaction
from app.platform.redis import RedisKeys, create_redis
from app.platform.settings import Settings
from app.runtime import open_runtime
from bench import config
from bench.fleet import CITIES
from bench.generate import prepare_database
from bench.progress import say
from bench.servers import Server, free_port, server_env
from bench.targets import GRAPHQL
from providers import repository
from providers.push import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from providers.service import register_provider

PROVIDER_ID = "bench-push"
SECRET = "whsec_bench_push"
DEFAULTS = {"fleet": 20_000, "batch": 500, "senders": 4, "duration": 20.0}
SMOKE = {"fleet": 1_000, "batch": 100, "senders": 2, "duration": 2.0}

_TYPES = [("kick", "scooter", 40_000), ("car", "car", 500_000)]


def _document(data: dict[str, Any]) -> dict[str, Any]:
    return {"last_updated": int(time.time()), "ttl": 0, "version": "2.3", "data": data}


DOCUMENTS = {
    "system_information": _document(
        {"system_id": PROVIDER_ID, "language": "en", "name": "Push benchmark", "timezone": "UTC"}
    ),
    "vehicle_types": _document(
        {
            "vehicle_types": [
                {
                    "vehicle_type_id": ext,
                    "form_factor": form_factor,
                    "propulsion_type": "electric",
                    "max_range_meters": max_range,
                }
                for ext, form_factor, max_range in _TYPES
            ]
        }
    ),
}


def _redis_prefix() -> str:
    # The API under test and the bare loop write their index under prefixes of their own: the
    # search fleet's index is never touched.
    return f"{config.REDIS_PREFIX}-push"


@dataclass(slots=True)
class Fleet:
    """Vehicle ids, their types, and the last status each writer sent for each."""

    ids: list[str]
    types: list[str]
    rng: random.Random

    @classmethod
    def make(cls, count: int, seed: int) -> Fleet:
        rng = random.Random(seed)
        types = [_TYPES[rng.randrange(len(_TYPES))][0] for _ in range(count)]
        return cls([f"v{n:06d}" for n in range(count)], types, rng)

    def batch(
        self, size: int, *, everyone: int | None = None, share: tuple[int, int] = (0, 1)
    ) -> list[dict[str, Any]]:
        """``size`` distinct vehicles with a new status, reported now (or the ``everyone``-th
        slice of the fleet, for the first load). ``share`` (k, n): only vehicles whose number
        is k modulo n, so that concurrent writers never send the same vehicle (two statuses of
        one vehicle in flight at once: the later-built may commit first, and the other is
        then rightly ignored as stale, which the bare loop would not do)."""
        if everyone is None:
            k, n = share
            # In id order, as a careful writer locks rows (the API sorts what it gets anyway).
            picked = sorted(self.rng.sample(range(k, len(self.ids), n), size))
        else:
            picked = list(range(everyone, min(everyone + size, len(self.ids))))
        reported = time.time()
        out = []
        for n in picked:
            city = CITIES[n % len(CITIES)]
            min_lat, min_lon, max_lat, max_lon = city.box
            out.append(
                {
                    "vehicle_id": self.ids[n],
                    "lat": round(self.rng.uniform(min_lat, max_lat), 7),
                    "lon": round(self.rng.uniform(min_lon, max_lon), 7),
                    "vehicle_type_id": self.types[n],
                    "is_reserved": False,
                    "is_disabled": False,
                    "current_range_meters": round(self.rng.uniform(1_000, 30_000)),
                    "current_fuel_percent": round(self.rng.random(), 3),
                    "last_reported": reported,
                }
            )
        return out


# --- setup --------------------------------------------------------------------------------------


def _settings() -> Settings:
    return Settings(
        database_url=config.DATABASE_URL,
        redis_url=config.REDIS_URL,
        redis_prefix=_redis_prefix(),
        background_sync=False,
        demo_feeds=False,
        secrets_keys=config.SECRETS_KEY,
    )


async def _setup() -> None:
    """The operator registered with its types, no vehicles, its own index prefix empty."""
    conn = await asyncpg.connect(config.DATABASE_URL)
    try:
        await conn.execute("DELETE FROM vehicles WHERE provider_id = $1", PROVIDER_ID)
    finally:
        await conn.close()
    async with open_runtime(_settings()) as runtime:
        async with transaction(runtime.sessions) as session:
            await register_provider(
                session,
                slug=PROVIDER_ID,
                name="Push benchmark",
                adapter="push",
                config={"documents": DOCUMENTS},
            )
            provider = await repository.get(session, PROVIDER_ID)
            assert provider is not None
            provider.ingest_secret = SECRET
        report = await runtime.sync.sync(PROVIDER_ID)
        if not report.ok:
            raise RuntimeError(f"could not sync {PROVIDER_ID}: {report.error}")
        keys = [
            k
            for pattern in runtime.keys.patterns
            async for k in runtime.redis.scan_iter(match=pattern)
        ]
        if keys:
            await runtime.redis.delete(*keys)
        # Only this operator's vehicles belong under this prefix: marked ready, so the API
        # under test does not rebuild the whole search fleet into it at start.
        await runtime.index.mark_ready()


async def _teardown() -> None:
    conn = await asyncpg.connect(config.DATABASE_URL)
    try:
        # The operator goes with its vehicles and types (ON DELETE CASCADE).
        await conn.execute("DELETE FROM providers WHERE id = $1", PROVIDER_ID)
    finally:
        await conn.close()
    redis = create_redis(config.REDIS_URL)
    try:
        # Both prefixes this benchmark writes under ("<prefix>" and "<prefix>-bare"), the
        # index's keys with their hash tag's brace in front.
        keys = [
            k
            for pattern in (f"{_redis_prefix()}*", f"{{{_redis_prefix()}*")
            async for k in redis.scan_iter(match=pattern)
        ]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


# --- writers --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    updates: int = 0
    batches: int = 0
    errors: int = 0
    example: str | None = None
    # vehicle id -> (last_reported, lat, lon) of the newest status sent.
    sent: dict[str, tuple[float, float, float]] | None = None

    def record(self, batch: list[dict[str, Any]]) -> None:
        if self.sent is None:
            self.sent = {}
        for v in batch:
            seen = self.sent.get(v["vehicle_id"])
            if seen is None or v["last_reported"] >= seen[0]:
                self.sent[v["vehicle_id"]] = (v["last_reported"], v["lat"], v["lon"])


_BARE_UPDATE = """
UPDATE vehicles AS v SET
    geom = ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326),
    is_reserved = u.is_reserved, is_disabled = u.is_disabled,
    current_range_meters = u.range_m, current_fuel_percent = u.fuel,
    last_reported = to_timestamp(u.reported), updated_at = now()
FROM unnest($1::text[], $2::float8[], $3::float8[], $4::bool[], $5::bool[], $6::float8[],
            $7::float8[], $8::float8[])
     AS u(id, lat, lon, is_reserved, is_disabled, range_m, fuel, reported)
WHERE v.id = u.id
"""


async def _bare_writer(
    fleet: Fleet, size: int, until: float, tally: Tally, share: tuple[int, int]
) -> None:
    conn = await asyncpg.connect(config.DATABASE_URL)
    redis: Redis = create_redis(config.REDIS_URL, timeout_seconds=30.0)
    key = RedisKeys(f"{_redis_prefix()}-bare").vehicle_geo
    try:
        statement = await conn.prepare(_BARE_UPDATE)
        while time.monotonic() < until:
            batch = fleet.batch(size, share=share)
            ids = [f"{PROVIDER_ID}:{v['vehicle_id']}" for v in batch]
            await statement.fetch(
                ids,
                [v["lat"] for v in batch],
                [v["lon"] for v in batch],
                [v["is_reserved"] for v in batch],
                [v["is_disabled"] for v in batch],
                [float(v["current_range_meters"]) for v in batch],
                [v["current_fuel_percent"] for v in batch],
                [v["last_reported"] for v in batch],
            )
            points: list[Any] = []
            for v, vid in zip(batch, ids, strict=True):
                points += (v["lon"], v["lat"], vid)
            pipe = redis.pipeline(transaction=False)
            pipe.geoadd(key, points)
            await pipe.execute()
            tally.updates += len(batch)
            tally.batches += 1
    finally:
        await conn.close()
        await redis.aclose()


async def _push(client: httpx.AsyncClient, batch: list[dict[str, Any]]) -> httpx.Response:
    body = orjson.dumps({"vehicles": batch})
    timestamp = int(time.time())
    return await client.post(
        f"/ingest/{PROVIDER_ID}/vehicles",
        content=body,
        headers={
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(SECRET, timestamp, body),
        },
    )


def _applied_all(response: httpx.Response, batch: list[dict[str, Any]]) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    result = response.json()
    if result["applied"] != len(batch) or result["rejected"] or not result["indexUpdated"]:
        return f"not every record applied: {response.text[:300]}"
    return None


async def _push_writer(
    client: httpx.AsyncClient,
    fleet: Fleet,
    size: int,
    until: float,
    tally: Tally,
    share: tuple[int, int],
) -> None:
    while time.monotonic() < until:
        batch = fleet.batch(size, share=share)
        tally.record(batch)
        response = await _push(client, batch)
        problem = _applied_all(response, batch)
        if problem is not None:
            tally.errors += 1
            tally.example = tally.example or problem
            continue
        tally.updates += len(batch)
        tally.batches += 1


async def _load_fleet(client: httpx.AsyncClient, fleet: Fleet, size: int) -> Tally:
    """Every vehicle created through the API, in order."""
    tally = Tally()
    for start in range(0, len(fleet.ids), size):
        batch = fleet.batch(size, everyone=start)
        tally.record(batch)
        problem = _applied_all(await _push(client, batch), batch)
        if problem is not None:
            raise RuntimeError(f"first load of the push fleet failed: {problem}")
        tally.updates += len(batch)
    return tally


async def _check_final(sent: dict[str, tuple[float, float, float]]) -> list[str]:
    """Every vehicle's position in PostGIS, and a sample in the index, is the newest sent."""
    conn = await asyncpg.connect(config.DATABASE_URL)
    try:
        rows = await conn.fetch(
            "SELECT external_id, ST_Y(geom) AS lat, ST_X(geom) AS lon FROM vehicles "
            "WHERE provider_id = $1",
            PROVIDER_ID,
        )
    finally:
        await conn.close()
    stored = {r["external_id"]: (r["lat"], r["lon"]) for r in rows}
    problems = [
        f"{vid}: stored {stored.get(vid)}, last sent {(lat, lon)}"
        for vid, (_, lat, lon) in sent.items()
        if stored.get(vid) != (lat, lon)
    ]
    redis = create_redis(config.REDIS_URL)
    try:
        sample = sorted(sent)[:: max(1, len(sent) // 200)]
        positions = await redis.geopos(
            RedisKeys(_redis_prefix()).vehicle_geo, *[f"{PROVIDER_ID}:{vid}" for vid in sample]
        )
    finally:
        await redis.aclose()
    for vid, position in zip(sample, positions, strict=True):
        _, lat, lon = sent[vid]
        if position is None or abs(position[1] - lat) > 1e-5 or abs(position[0] - lon) > 1e-5:
            problems.append(f"{vid}: index has {position}, last sent {(lat, lon)}")
    return problems


# --- the run --------------------------------------------------------------------------------------


def _server_env() -> dict[str, str]:
    return server_env(config.DATABASE_URL, _redis_prefix())


async def _measure_push(
    base_url: str, fleet: Fleet, batch: int, senders: int, duration: float
) -> tuple[Tally, float, Tally]:
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits) as client:
        first = await _load_fleet(client, fleet, batch)
        tally = Tally(sent=dict(first.sent or {}))
        started = time.monotonic()
        until = started + duration
        await asyncio.gather(
            *(
                _push_writer(client, fleet, batch, until, tally, (k, senders))
                for k in range(senders)
            )
        )
        return tally, time.monotonic() - started, first


async def _measure_bare(
    fleet: Fleet, batch: int, senders: int, duration: float
) -> tuple[Tally, float]:
    tally = Tally()
    started = time.monotonic()
    until = started + duration
    await asyncio.gather(
        *(_bare_writer(fleet, batch, until, tally, (k, senders)) for k in range(senders))
    )
    return tally, time.monotonic() - started


def measure(
    *, fleet_size: int, batch: int, senders: int, duration: float, seed: int, run_dir: Any
) -> dict[str, Any]:
    asyncio.run(prepare_database())
    fleet = Fleet.make(fleet_size, seed)
    server = Server(GRAPHQL, free_port(), run_dir / "push-server.log", name="push-ingest")
    try:
        asyncio.run(_setup())
        try:
            server.start(workers=2, env=_server_env(), cwd=config.PROJECT_ROOT)
            server.wait_ready(workers=2)
            say(
                f"push: {fleet_size:,} vehicles created through the API, then {senders} "
                f"senders of {batch}-update batches for {duration:g} s"
            )
            pushed, push_s, _ = asyncio.run(
                _measure_push(server.base_url, fleet, batch, senders, duration)
            )
        finally:
            server.stop()
        if pushed.errors:
            raise RuntimeError(f"{pushed.errors} push batches failed, e.g. {pushed.example}")
        problems = asyncio.run(_check_final(pushed.sent or {}))
        say(f"push: bare loop, {senders} writers for {duration:g} s")
        bare, bare_s = asyncio.run(_measure_bare(fleet, batch, senders, duration))
    finally:
        # Never leave behind an enabled operator whose secret is in this file.
        asyncio.run(_teardown())
    push_rate = pushed.updates / push_s
    bare_rate = bare.updates / bare_s
    say(
        f"push: {push_rate:,.0f} updates/s through the API ({pushed.batches} batches), bare loop "
        f"{bare_rate:,.0f} updates/s ({bare.batches} batches): {push_rate / bare_rate:.2f}x"
    )
    return {
        "fleet": fleet_size,
        "batch": batch,
        "senders": senders,
        "duration_s": duration,
        "push_updates": pushed.updates,
        "push_seconds": push_s,
        "push_rate": push_rate,
        "bare_updates": bare.updates,
        "bare_seconds": bare_s,
        "bare_rate": bare_rate,
        "ratio": push_rate / bare_rate,
        "check": {
            "ok": not problems,
            "problems": problems[:10],
            "vehicles": len(pushed.sent or {}),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.push",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--fleet", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--senders", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--smoke", action="store_true", help="the smoke stores and sizes")
    args = parser.parse_args(argv)
    if args.smoke:
        config.use_smoke_stores()
    sizes = SMOKE if args.smoke else DEFAULTS
    fleet = args.fleet or int(sizes["fleet"])
    batch = args.batch or int(sizes["batch"])
    senders = args.senders or int(sizes["senders"])
    duration = args.duration or float(sizes["duration"])
    if min(fleet, batch, senders) <= 0 or duration <= 0 or batch * senders > fleet:
        parser.error("sizes must be positive, and --batch x --senders at most --fleet")
    run_dir = config.RESULTS_DIR / time.strftime("push-%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir.mkdir(parents=True, exist_ok=True)
    result = measure(
        fleet_size=fleet,
        batch=batch,
        senders=senders,
        duration=duration,
        seed=args.seed,
        run_dir=run_dir,
    )
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0 if result["check"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
