"""Where a nearby-search request spends its time, in process: ``python -m bench.profile``.

Runs the benchmark's GraphQL query through the real ASGI app (httpx over ASGI, no sockets) against
the bench database and Redis index, one request at a time, and prints the mean time per request
and cProfile's top functions by cumulative and by own time. Needs ``make bench`` data.

``--within`` asks for a box of the same half-size around each point instead (a map viewport,
``vehicles(within:)``, nearest its centre); ``--redis-down`` answers from PostGIS, as the API does
while its circuit to Redis is open.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import math
import os
import pstats
import random
import secrets
import time

import httpx

from bench import config
from bench.targets import GRAPHQL_QUERY, WITHIN_QUERY


def _configure_env() -> None:
    os.environ.update(
        {
            "MOBILITY_DATABASE_URL": config.DATABASE_URL,
            "MOBILITY_REDIS_URL": config.REDIS_URL,
            "MOBILITY_REDIS_PREFIX": config.REDIS_PREFIX,
            "MOBILITY_BACKGROUND_SYNC": "false",
            "MOBILITY_DEMO_FEEDS": "false",
            "MOBILITY_ENVIRONMENT": "production",
            "MOBILITY_JWT_SECRET": secrets.token_hex(32),
            "MOBILITY_SECRETS_KEYS": config.SECRETS_KEY,
            # The fleet is synced once, when generated: without this, search hides it as
            # stale 15 minutes later and every answer is empty (bench.run does the same).
            "MOBILITY_STALE_AFTER_SECONDS": "86400",
        }
    )


def _points(n: int) -> list[tuple[float, float]]:
    from bench.fleet import CITIES

    rng = random.Random(7)
    out = []
    for _ in range(n):
        min_lat, min_lon, max_lat, max_lon = rng.choice(CITIES).box
        out.append((rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon)))
    return out


def _variables(lat: float, lon: float, within: bool) -> dict[str, object]:
    if not within:
        return {"lat": lat, "lon": lon, "radius": config.RADIUS_METERS, "first": config.FIRST}
    half_lat = config.RADIUS_METERS / 111_320.0
    half_lon = half_lat / math.cos(math.radians(lat))
    box = {
        "minLat": lat - half_lat,
        "minLon": lon - half_lon,
        "maxLat": lat + half_lat,
        "maxLon": lon + half_lon,
    }
    return {"box": box, "first": config.FIRST}


async def _run(
    requests: int, query: str, profile: bool, *, within: bool = False, redis_down: bool = False
) -> None:
    _configure_env()
    from app.main import create_app
    from app.platform.settings import Settings

    app = create_app(Settings())
    points = _points(requests)
    async with app.router.lifespan_context(app):
        if redis_down:
            app.state.runtime.search.index = None  # what an open circuit to Redis does
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def one(lat: float, lon: float) -> None:
                body = {"query": query, "variables": _variables(lat, lon, within)}
                response = await client.post("/graphql", json=body)
                data = response.json()
                assert "errors" not in data, data

            for lat, lon in points[:20]:  # warm caches and pools
                await one(lat, lon)
            profiler = cProfile.Profile()
            started = time.perf_counter()
            if profile:
                profiler.enable()
            for lat, lon in points:
                await one(lat, lon)
            if profile:
                profiler.disable()
            elapsed = time.perf_counter() - started
    print(f"{requests} requests, {elapsed / requests * 1000:.2f} ms per request (one at a time)")
    if profile:
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(70)
            print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--no-profile", action="store_true", help="time only")
    parser.add_argument("--query", help="default: the benchmark's nearby (or --within) query")
    parser.add_argument("--within", action="store_true", help="a box around each point")
    parser.add_argument("--redis-down", action="store_true", help="answer from PostGIS")
    args = parser.parse_args()
    query = args.query or (WITHIN_QUERY if args.within else GRAPHQL_QUERY)
    asyncio.run(
        _run(
            args.requests,
            query,
            not args.no_profile,
            within=args.within,
            redis_down=args.redis_down,
        )
    )


if __name__ == "__main__":
    main()
