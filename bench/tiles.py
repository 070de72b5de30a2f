"""Vector tiles against tipg (issue 18): the API's ``GET /tiles/vehicles/{z}/{x}/{y}.mvt`` and
tipg's tile endpoint (bench/tipg.py) over the same vehicles with the same attributes, the same
number of uvicorn workers, and the same tile lists.

- **Street zooms**: a seeded list of random tiles at z15 and z16 over the city boxes: tile *i*
  holds a uniform random point of city *i* mod 10's box, the zoom alternating every ten tiles.
  Both servers draw every vehicle as a point here.
- **City zoom**: every z11 tile that covers part of a city box (36 tiles for the ten cities).
  The API draws clusters (a 16 by 16 grid per tile), tipg its points, truncated at its feature
  limit.

Before the loads, the answers are checked:

- street: for a sample of tiles, both tiles are decoded with mapbox-vector-tile and must hold
  the same vehicle ids, each with the same attributes and the same position (within one tile
  unit: the two servers compute the tile's envelope differently). A tipg tile at its feature
  limit is truncated and is counted and left out of the comparison; so is a tile the API sent
  as clusters (over its point cap). tipg also draws a vehicle lying exactly on a tile's east or
  south edge, which the API leaves to the neighbouring tile (docs/tiles.md): such ids are
  counted, not errors;
- city: in every z11 tile, the API's clusters must add up to the vehicles the tile owns,
  counted by plain SQL over the baseline's view (west and north edges in, east and south out),
  and each cluster's form-factor counts to its ``count``; tipg's point count must be that of the
  vehicles it selects (every edge in), capped at its limit: the tiles where it is capped are
  truncated.

The loads (``bench.measure``, wrk over the tile lists, every status checked and every body's
bytes counted) run in interleaved rounds, the baseline first in each: tipg street, API street,
tipg city, API city.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import mapbox_vector_tile
import orjson

from bench import charts, config, tipg
from bench.fleet import CITIES
from bench.generate import database_holds, mark_synced, prepare_database
from bench.goals import bytes_per_tile, tile_outcomes
from bench.load import ensure_wrk
from bench.measure import LoadPlan, error_total, measure, merge_rounds
from bench.progress import say
from bench.report import tile_rows
from bench.servers import Server, free_port
from bench.targets import Target, tile_target

STREET_ZOOMS: Final = (15, 16)
CITY_ZOOM: Final = 11
# Tile units per side in both servers' tiles.
EXTENT: Final = 4096
# At most this many tiles are fetched at once by the checks.
_CHECK_CONCURRENCY: Final = 4

Tile = tuple[int, int, int]  # z, x, y

_OURS = "/tiles/vehicles/%s/%s/%s.mvt"
TILES_STREET = tile_target(
    "tiles_street",
    "API `/tiles/vehicles`, z15 and z16 (points)",
    app="app.main:create_app",
    factory=True,
    path_template=_OURS,
)
TILES_CITY = tile_target(
    "tiles_city",
    "API `/tiles/vehicles`, z11 (clusters)",
    app="app.main:create_app",
    factory=True,
    path_template=_OURS,
)
TIPG_STREET = tipg.tipg_target("tipg_street", f"tipg {tipg.version()}, z15 and z16 (points)")
TIPG_CITY = tipg.tipg_target("tipg_city", f"tipg {tipg.version()}, z11 (points)")
# (key, target, which tile list), in the order of every round: the baseline first.
LOADS: Final[tuple[tuple[str, Target, str], ...]] = (
    ("tipg_street", TIPG_STREET, "street"),
    ("tiles_street", TILES_STREET, "street"),
    ("tipg_city", TIPG_CITY, "city"),
    ("tiles_city", TILES_CITY, "city"),
)


# --- the tiles --------------------------------------------------------------------------------


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int]:
    """(x, y) of the XYZ tile holding the point (the slippy-map formulas)."""
    side = 1 << z
    x = math.floor((lon + 180.0) / 360.0 * side)
    y = math.floor((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * side)
    return min(max(x, 0), side - 1), min(max(y, 0), side - 1)


def tile_bounds(tile: Tile) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees."""
    z, x, y = tile
    side = 1 << z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * row / side))))

    return x / side * 360.0 - 180.0, lat(y + 1), (x + 1) / side * 360.0 - 180.0, lat(y)


def street_tiles(count: int, seed: int) -> list[Tile]:
    """``count`` random street tiles over the city boxes; the same for the same arguments."""
    # A stream of its own: the fleet and the query points do not move the tiles.
    rng = random.Random(f"tiles:{seed}")
    tiles: list[Tile] = []
    for i in range(count):
        city = CITIES[i % len(CITIES)]
        z = STREET_ZOOMS[(i // len(CITIES)) % len(STREET_ZOOMS)]
        min_lat, min_lon, max_lat, max_lon = city.box
        x, y = tile_of(rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon), z)
        tiles.append((z, x, y))
    return tiles


def city_tiles() -> list[Tile]:
    """Every z11 tile covering part of a city box, city by city."""
    found: dict[Tile, None] = {}
    for city in CITIES:
        min_lat, min_lon, max_lat, max_lon = city.box
        x0, y0 = tile_of(max_lat, min_lon, CITY_ZOOM)  # north-west corner
        x1, y1 = tile_of(min_lat, max_lon, CITY_ZOOM)  # south-east corner
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                found[(CITY_ZOOM, x, y)] = None
    return list(found)


def write_tiles(tiles: Sequence[Tile], path: Path) -> Path:
    """The request list wrk reads: ``z x y`` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{z} {x} {y}\n" for z, x, y in tiles))
    return path


# --- checks -----------------------------------------------------------------------------------


@dataclass(slots=True)
class StreetCheck:
    tiles: int = 0  # tiles compared
    vehicles: int = 0  # vehicles compared, summed over the tiles
    truncated: int = 0  # tipg tiles at its feature limit (not compared)
    clustered: int = 0  # tiles the API sent as clusters (over its point cap; not compared)
    edge: int = 0  # vehicles on an east or south tile edge that only tipg draws
    max_position_diff: int = 0  # tile units
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.tiles > 0 and self.vehicles > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tiles": self.tiles,
            "vehicles": self.vehicles,
            "truncated": self.truncated,
            "clustered": self.clustered,
            "edge": self.edge,
            "max_position_diff": self.max_position_diff,
            "mismatches": self.mismatches[:20],
        }


@dataclass(slots=True)
class CityCheck:
    tiles: int = 0
    vehicles: int = 0  # vehicles the tiles own, counted by SQL
    clusters: int = 0  # features of the API's tiles
    largest: int = 0  # the most vehicles one tile owns
    tipg_features: int = 0  # points tipg sent, summed over the tiles
    tipg_truncated: int = 0  # tipg tiles at its feature limit
    fleet: int = 0  # every vehicle the view shows, wherever it is
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.tiles > 0 and self.vehicles > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tiles": self.tiles,
            "vehicles": self.vehicles,
            "clusters": self.clusters,
            "largest": self.largest,
            "tipg_features": self.tipg_features,
            "tipg_truncated": self.tipg_truncated,
            "fleet": self.fleet,
            "mismatches": self.mismatches[:20],
        }


def _features(tile: bytes, layer: str) -> list[dict[str, Any]]:
    decoded = mapbox_vector_tile.decode(tile) if tile else {}
    found: list[dict[str, Any]] = decoded.get(layer, {}).get("features", [])
    return found


def _layers(tile: bytes) -> set[str]:
    return set(mapbox_vector_tile.decode(tile)) if tile else set()


def _point(feature: dict[str, Any]) -> tuple[int, int]:
    x, y = feature["geometry"]["coordinates"]
    return int(x), int(y)


async def _get(client: httpx.AsyncClient, url: str, gate: asyncio.Semaphore) -> bytes:
    async with gate:
        response = await client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
    return response.content


def _url(server: Server, target: Target, tile: Tile) -> str:
    return server.base_url + target.path_template % tile


def compare_street(tile: Tile, ours: bytes, theirs: bytes, check: StreetCheck) -> None:
    """One street tile of each server, into ``check``."""
    name = "/".join(map(str, tile))
    if "vehicle_clusters" in _layers(ours):
        check.clustered += 1
        return
    mine = _features(ours, "vehicles")
    baseline = _features(theirs, tipg.VIEW)
    if len(baseline) >= tipg.MAX_FEATURES_PER_TILE:
        check.truncated += 1
        return
    by_id = {f["properties"]["id"]: f for f in mine}
    tipg_by_id = {f["properties"]["id"]: f for f in baseline}
    if len(by_id) != len(mine):
        check.mismatches.append(f"{name}: the API's tile draws a vehicle twice")
    missing = sorted(by_id.keys() - tipg_by_id.keys())
    if missing:
        check.mismatches.append(f"{name}: {len(missing)} vehicles not in tipg's, e.g. {missing[0]}")
    for vid in sorted(tipg_by_id.keys() - by_id.keys()):
        # Decoded y points up: the south edge is y = 0, the east edge x = EXTENT.
        x, y = _point(tipg_by_id[vid])
        if x == EXTENT or y == 0:
            check.edge += 1
        else:
            check.mismatches.append(f"{name}: {vid} only in tipg's tile, at {x},{y}")
    for vid in sorted(by_id.keys() & tipg_by_id.keys()):
        a, b = by_id[vid], tipg_by_id[vid]
        if a["properties"] != b["properties"]:
            check.mismatches.append(
                f"{name}: {vid} attributes differ: {a['properties']} vs {b['properties']}"
            )
        (ax, ay), (bx, by) = _point(a), _point(b)
        diff = max(abs(ax - bx), abs(ay - by))
        check.max_position_diff = max(check.max_position_diff, diff)
        if diff > 1:
            check.mismatches.append(f"{name}: {vid} at {ax},{ay} vs {bx},{by}")
    check.tiles += 1
    check.vehicles += len(by_id)


async def check_street(api: Server, baseline: Server, tiles: Sequence[Tile]) -> StreetCheck:
    check = StreetCheck()
    gate = asyncio.Semaphore(_CHECK_CONCURRENCY)
    async with httpx.AsyncClient(timeout=120.0) as client:
        answers = await asyncio.gather(
            *(
                asyncio.gather(
                    _get(client, _url(api, TILES_STREET, t), gate),
                    _get(client, _url(baseline, TIPG_STREET, t), gate),
                )
                for t in tiles
            )
        )
    for tile, (ours, theirs) in zip(tiles, answers, strict=True):
        compare_street(tile, ours, theirs, check)
    return check


# Vehicles of the baseline's view in a tile: owned (west and north edges in, east and south out,
# as the API draws them) and touching (every edge in, as tipg selects them).
_COUNT_SQL = f"""
SELECT count(*) FILTER (WHERE ST_X(v.geom) < $3 AND ST_Y(v.geom) > $2) AS owned,
       count(*) AS touching
FROM {tipg.SCHEMA}.{tipg.VIEW} v
WHERE v.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326)
  AND ST_X(v.geom) >= $1 AND ST_X(v.geom) <= $3 AND ST_Y(v.geom) >= $2 AND ST_Y(v.geom) <= $4
"""


def compare_city(
    tile: Tile, ours: bytes, theirs: bytes, owned: int, touching: int, check: CityCheck
) -> None:
    name = "/".join(map(str, tile))
    clusters = _features(ours, "vehicle_clusters")
    total = 0
    for feature in clusters:
        properties = dict(feature["properties"])
        count = int(properties.pop("count"))
        total += count
        if sum(int(v) for v in properties.values()) != count:
            check.mismatches.append(f"{name}: a cluster's form factors do not add up to {count}")
    if total != owned:
        check.mismatches.append(f"{name}: clusters add up to {total}, the tile owns {owned}")
    points = len(_features(theirs, tipg.VIEW))
    if points != min(touching, tipg.MAX_FEATURES_PER_TILE):
        check.mismatches.append(f"{name}: tipg sent {points} points of {touching}")
    check.tiles += 1
    check.vehicles += owned
    check.clusters += len(clusters)
    check.largest = max(check.largest, owned)
    check.tipg_features += points
    check.tipg_truncated += touching > tipg.MAX_FEATURES_PER_TILE


async def check_city(api: Server, baseline: Server, tiles: Sequence[Tile]) -> CityCheck:
    check = CityCheck()
    gate = asyncio.Semaphore(_CHECK_CONCURRENCY)
    conn = await asyncpg.connect(config.DATABASE_URL)
    try:
        async with httpx.AsyncClient(timeout=120.0) as client:
            for tile in tiles:
                ours, theirs = await asyncio.gather(
                    _get(client, _url(api, TILES_CITY, tile), gate),
                    _get(client, _url(baseline, TIPG_CITY, tile), gate),
                )
                row = await conn.fetchrow(_COUNT_SQL, *tile_bounds(tile))
                assert row is not None
                compare_city(tile, ours, theirs, row["owned"], row["touching"], check)
        check.fleet = int(await conn.fetchval(f"SELECT count(*) FROM {tipg.SCHEMA}.{tipg.VIEW}"))
    finally:
        await conn.close()
    return check


# --- the stage --------------------------------------------------------------------------------


def measure_tiles(
    plan: LoadPlan,
    env: dict[str, str],
    *,
    workers: int,
    rounds: int,
    tile_count: int,
    check_count: int,
    seed: int,
) -> dict[str, Any]:
    """Set up the baseline, check both servers' tiles, load them; the figures for targets 9
    to 12. ``env`` is the API servers' environment (``bench.run``); ``plan.duration_s`` is
    each load's total, split into ``rounds``."""
    started = time.perf_counter()
    tipg.ensure_venv()
    venv_s = time.perf_counter() - started
    stale_after = int(env["MOBILITY_STALE_AFTER_SECONDS"])
    asyncio.run(tipg.create_view(stale_after))
    try:
        return _measure(
            plan,
            env,
            workers=workers,
            rounds=rounds,
            tile_count=tile_count,
            check_count=check_count,
            seed=seed,
            venv_s=venv_s,
        )
    finally:
        asyncio.run(tipg.drop_view())


def _measure(
    plan: LoadPlan,
    env: dict[str, str],
    *,
    workers: int,
    rounds: int,
    tile_count: int,
    check_count: int,
    seed: int,
    venv_s: float,
) -> dict[str, Any]:
    street = street_tiles(tile_count, seed)
    city = city_tiles()
    lists = {
        "street": write_tiles(street, plan.run_dir / f"tiles-street-{seed}-{len(street)}.txt"),
        "city": write_tiles(city, plan.run_dir / f"tiles-city-z{CITY_ZOOM}.txt"),
    }
    api = Server(TILES_STREET, free_port(), plan.run_dir / "tiles-api-server.log", name="tiles-api")
    baseline = Server(TIPG_STREET, free_port(), plan.run_dir / "tipg-server.log", name="tipg")
    result: dict[str, Any] = {
        "tipg_version": tipg.version(),
        "tipg_settings": tipg.settings_shown(),
        "tipg_max_features": tipg.MAX_FEATURES_PER_TILE,
        "venv_seconds": venv_s,
        "street": {"zooms": list(STREET_ZOOMS), "tiles": len(street), "distinct": len(set(street))},
        "city": {"zoom": CITY_ZOOM, "tiles": len(city)},
        "rounds": rounds,
        "duration_s": plan.duration_s,
        "workers": workers,
    }
    with contextlib.ExitStack() as stack:
        for server in (api, baseline):
            stack.callback(server.stop)
        # Like for like: each server's work per tile. The API's few-second cache of cluster
        # tiles is off here (with it, a z11 tile asked again within 5 s is not drawn again),
        # and so are its admission deadlines (a tile waits at most 2 s for a slot, then is
        # refused 503 TILES_BUSY): tipg queues without limit, and 16 connections of z11 tiles
        # at a second each wait longer than that, which is the deadline doing its job, not a
        # measure of throughput.
        api.start(
            workers=workers,
            env={
                **env,
                "MOBILITY_TILES_CLUSTER_CACHE_SECONDS": "0",
                "MOBILITY_TILES_SLOT_WAIT_SECONDS": "600",
                "MOBILITY_TILES_STATEMENT_TIMEOUT_SECONDS": "600",
            },
            cwd=config.PROJECT_ROOT,
        )
        # tipg's settings read a .env file in the working directory: the run's own folder has none.
        baseline.start(workers=workers, env=tipg.tipg_env(), cwd=plan.run_dir)
        for server in (api, baseline):
            server.wait_ready(workers=workers)
        sample = street[:check_count]
        say(f"tiles: comparing both servers' tiles at {len(sample)} street tiles")
        street_check = asyncio.run(check_street(api, baseline, sample))
        say(
            f"tiles: street {street_check.tiles} tiles, {street_check.vehicles:,} vehicles "
            f"compared, {len(street_check.mismatches)} mismatches, {street_check.truncated} "
            f"truncated by tipg, {street_check.clustered} clustered by the API"
        )
        say(f"tiles: checking the {len(city)} z{CITY_ZOOM} tiles' clusters against SQL counts")
        city_check = asyncio.run(check_city(api, baseline, city))
        say(
            f"tiles: z{CITY_ZOOM} {city_check.tiles} tiles, {city_check.vehicles:,} vehicles, "
            f"{len(city_check.mismatches)} mismatches; tipg truncated "
            f"{city_check.tipg_truncated} of them at {tipg.MAX_FEATURES_PER_TILE:,} points"
        )
        result["checks"] = {"street": street_check.to_json(), "city": city_check.to_json()}

        servers = {"tipg": baseline, "tiles": api}
        measured: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in LOADS}
        round_plan = plan.with_(duration_s=plan.duration_s / rounds)
        for r in range(rounds):
            for key, target, tiles in LOADS:
                time.sleep(plan.settle_s)
                one = round_plan if r == 0 else round_plan.with_(warmup_s=0.0)
                load = measure(
                    one.with_(points=lists[tiles]),
                    servers[key.split("_", 1)[0]],
                    target,
                    key=key if rounds == 1 else f"{key}-round{r + 1}",
                )
                mean = bytes_per_tile(load)
                say(f"{key}: {0 if mean is None else mean:,.0f} bytes per tile")
                measured[key].append(load)
        result["loads"] = {key: merge_rounds(loads) for key, loads in measured.items()}
    result["errors"] = {key: error_total(load) for key, load in result["loads"].items()}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """The tiles targets alone (9 to 12), on the fleet ``bench.run`` (or ``bench.generate``)
    left in the bench database: prints their target lines on stdout, writes ``result.json``,
    ``tiles.md`` (the block ``bench.report`` would write) and ``tiles.png`` to the results
    folder (``--charts`` elsewhere). For measuring a change to app/tiles without the whole run."""
    # bench.run imports this module: its server environment is imported when it runs.
    from bench.run import _server_env

    parser = argparse.ArgumentParser(prog="python -m bench.tiles", description=main.__doc__)
    parser.add_argument("--count", type=int, default=config.FULL_COUNT, help="vehicles loaded")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per load")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per load")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up per load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--tiles", type=int, default=10_000, help="street tiles in the list")
    parser.add_argument("--check-tiles", type=int, default=50, help="street tiles compared")
    parser.add_argument("--results-dir", type=Path)
    parser.add_argument("--charts", type=Path, help="where tiles.png goes (the results folder)")
    args = parser.parse_args(argv)
    if min(args.count, args.duration, args.rounds, args.connections, args.tiles) <= 0:
        parser.error("counts and durations must be positive")

    async def fleet() -> None:
        await prepare_database()
        conn = await asyncpg.connect(config.DATABASE_URL)
        try:
            if not await database_holds(conn, args.count, args.seed):
                raise SystemExit(
                    f"{config.database_name()} does not hold {args.count:,} vehicles with seed "
                    f"{args.seed}: run `python -m bench.generate` (or bench.run) first"
                )
            await mark_synced(conn)
        finally:
            await conn.close()

    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-tiles"
    run_dir: Path = args.results_dir or config.RESULTS_DIR / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(fleet())
    plan = LoadPlan(
        wrk=ensure_wrk(),
        points=run_dir / "unused",
        run_dir=run_dir,
        connections=args.connections,
        threads=args.threads,
        timeout_s=30.0,
        duration_s=args.duration,
        warmup_s=args.warmup,
        settle_s=2.0,
    )
    tiles = measure_tiles(
        plan,
        _server_env(),
        workers=args.workers,
        rounds=args.rounds,
        tile_count=args.tiles,
        check_count=args.check_tiles,
        seed=args.seed,
    )
    finished = datetime.now(UTC)
    result: dict[str, Any] = {
        "run_id": run_id,
        "mode": "tiles",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.tiles" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
        "machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "run": {"connections": args.connections, "threads": args.threads},
        "data": {"database": config.database_name(), "count": args.count, "seed": args.seed},
        "tiles": tiles,
    }
    goals = tile_outcomes(tiles)
    result["goals"] = [g.to_json() for g in goals]
    result["run"]["workers"] = args.workers
    if charts.available():
        say("chart: " + charts.render_tiles_chart(result, args.charts or run_dir))
    (run_dir / "result.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (run_dir / "tiles.md").write_text("\n".join(tile_rows(tiles)) + "\n")
    say(f"raw results: {run_dir / 'result.json'}; the report's block: {run_dir / 'tiles.md'}")
    for goal in goals:
        say(f"target {goal.number}: {goal.why}")
    print("\n".join(g.line() for g in goals), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
