"""Where a nearby-search request spends its time, in process: ``python -m bench.profile``.

Runs the benchmark's GraphQL query through the real ASGI app (httpx over ASGI, no sockets) against
the bench database and Redis index, one request at a time, and prints the mean time per request
and cProfile's top functions by cumulative and by own time. Needs ``make bench`` data.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import secrets
import time

import httpx

from bench import config
from bench.targets import GRAPHQL_QUERY


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


async def _run(requests: int, query: str, profile: bool) -> None:
    _configure_env()
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings())
    points = _points(requests)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def one(lat: float, lon: float) -> None:
                variables = {"lat": lat, "lon": lon, "radius": 500, "first": 50}
                body = {"query": query, "variables": variables}
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
    parser.add_argument("--query", default=GRAPHQL_QUERY)
    args = parser.parse_args()
    asyncio.run(_run(args.requests, args.query, not args.no_profile))


if __name__ == "__main__":
    main()
