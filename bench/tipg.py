"""The vector-tile baseline: tipg (developmentseed's OGC Features and Tiles API for PostGIS),
serving the vehicles our ``vehicles`` tile layer shows, with the same attributes.

- :func:`ensure_venv`: tipg runs from a virtualenv of its own, ``.venv-tipg`` (git-ignored),
  created with this interpreter's ``venv`` module and ``pip install -r
  bench/tipg-requirements.txt`` when it is missing or the pins changed (a stamp holds the file's
  hash); otherwise it is left as it is. pip's resolver finds no conflict between tipg 1.6.1 and
  requirements.lock, but tipg adds nine packages (pyproj, cql2, morecantile...) the API never
  uses: kept apart, the project's ``.venv`` stays exactly as locked, while the pins give tipg the
  API's own web stack (FastAPI, Starlette, uvicorn, uvloop, httptools, asyncpg, orjson).
- :func:`create_view`: a schema of the benchmark's own, ``tipg_bench``, with one view,
  ``vehicles``: the available vehicles (not reserved, not disabled) of enabled providers with
  fresh data (the API's visibility rule for an anonymous caller, with the bench servers'
  staleness limit), with exactly the attributes of our MVT layer and their types. tipg is
  restricted to that schema, so its catalogue holds that one collection.
  :func:`drop_view` removes the schema again after the loads, so migrations never meet it.
- :func:`tipg_env`: tipg's settings (below); :func:`tipg_target`: its own tile endpoint,
  ``/collections/tipg_bench.vehicles/tiles/WebMercatorQuad/{z}/{x}/{y}``, served by uvicorn with
  the settings of every bench server (``bench.targets.Target.uvicorn_command``).

tipg's settings are its defaults except where the data or a fair comparison requires:

- ``TIPG_DB_SCHEMAS=["tipg_bench"]``: only the view;
- ``TIPG_DB_SPATIAL_EXTENT=false``, ``TIPG_DB_DATETIME_EXTENT=false``: the catalogue would
  otherwise scan the whole view for its extents at start and at every catalogue refresh (every
  ``TIPG_CATALOG_TTL``, 300 s, by default); no tile uses them;
- ``TIPG_SET_MVT_LAYERNAME=true``: the MVT layer is called ``vehicles``, as ours (tipg's default
  name is ``default``);
- ``TIPG_MAX_FEATURES_PER_TILE=10000``: tipg's default, stated, and equal to our
  ``MOBILITY_TILES_MAX_POINTS``. Past it the two differ: tipg *truncates* the tile (``ORDER BY
  id LIMIT 10000``: the vehicles with the smallest ids), ours is sent as clusters.

Left at tipg's defaults: 4096 units per tile (ours too), a 256-unit buffer with clipping (for
points it changes nothing: tipg selects the points inside the tile), a pool of 1 to 10
connections per worker (our search pool is 1 to 10 too), ``Cache-Control: public,
max-age=3600``, and compression, which tipg applies only when the client sends
``Accept-Encoding`` (wrk does not; our API does not compress at all).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import asyncpg

from bench import config
from bench.progress import say
from bench.targets import Target, tile_target

VENV: Final = config.PROJECT_ROOT / ".venv-tipg"
PYTHON: Final = VENV / "bin" / "python"
REQUIREMENTS: Final = config.BENCH_DIR / "tipg-requirements.txt"
_STAMP: Final = VENV / ".installed"

SCHEMA: Final = "tipg_bench"
VIEW: Final = "vehicles"
COLLECTION: Final = f"{SCHEMA}.{VIEW}"
TMS: Final = "WebMercatorQuad"
MAX_FEATURES_PER_TILE: Final = 10_000


def version() -> str:
    """The tipg version the pins install."""
    for line in REQUIREMENTS.read_text().splitlines():
        if line.lower().startswith("tipg=="):
            return line.split("==", 1)[1].strip()
    raise RuntimeError(f"{REQUIREMENTS} pins no tipg version")


def ensure_venv() -> Path:
    """``.venv-tipg`` with exactly the pinned packages; returns its interpreter. Idempotent: a
    virtualenv whose stamp matches the requirements file is used as it is; one that does not
    (missing, half-built, or built from other pins) is made anew."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if PYTHON.exists() and _STAMP.exists() and _STAMP.read_text().strip() == digest:
        say(f"tipg baseline: {VENV.name} ready (tipg {version()})")
        return PYTHON
    started = time.perf_counter()
    if VENV.exists():
        say(f"tipg baseline: {VENV.name} does not match {REQUIREMENTS.name}; building it anew")
        shutil.rmtree(VENV)
    say(
        f"tipg baseline: creating {VENV.name} (python -m venv, then pip install -r "
        f"bench/{REQUIREMENTS.name}: tipg {version()}; once per checkout)"
    )
    for command in (
        [sys.executable, "-m", "venv", str(VENV)],
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(REQUIREMENTS),
        ],
    ):
        # Quiet unless it fails; stdout carries only the target lines in any case.
        done = subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command[:4])} failed (exit {done.returncode}):\n"
                + (done.stdout + done.stderr)[-3000:]
            )
    _STAMP.write_text(digest + "\n")
    say(f"tipg baseline: {VENV.name} ready in {time.perf_counter() - started:.0f} s")
    return PYTHON


def view_sql(stale_after_seconds: int) -> str:
    """The view tipg serves: our ``vehicles`` MVT layer's rows and attributes
    (app/tiles/layers.py), written out here rather than imported, so the comparison also
    checks that the API applies the rule it documents (docs/tiles.md)."""
    return f"""
CREATE VIEW {SCHEMA}.{VIEW} AS
SELECT v.id, v.provider_id, v.form_factor, v.propulsion_type,
       round(v.current_range_meters)::int AS range_meters, v.vehicle_type_id, v.geom
FROM public.vehicles v
WHERE NOT v.is_reserved AND NOT v.is_disabled
  AND v.provider_id = ANY(ARRAY(
      SELECT p.id FROM public.providers p
      WHERE p.enabled
        AND p.last_success_at >= now() - make_interval(secs => {int(stale_after_seconds)})
  ))
"""


async def create_view(stale_after_seconds: int) -> None:
    """(Re)create the schema and its view, in one transaction."""
    conn = await asyncpg.connect(config.DATABASE_URL)
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            await conn.execute(f"DROP VIEW IF EXISTS {SCHEMA}.{VIEW}")
            await conn.execute(view_sql(stale_after_seconds))
    finally:
        await conn.close()


async def drop_view() -> None:
    conn = await asyncpg.connect(config.DATABASE_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        await conn.close()


# Read by tipg (pydantic-settings without a prefix, or with its own) and never meant for it.
_FOREIGN_PREFIXES = ("MOBILITY_", "BENCH_", "TIPG_", "POSTGRES_", "DB_")
_FOREIGN_NAMES = ("DATABASE_URL", "PYTHONPATH")


def tipg_env() -> dict[str, str]:
    """tipg's environment: this one without anything tipg would read by accident, and its
    settings (see the module's docstring)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_FOREIGN_PREFIXES) and k not in _FOREIGN_NAMES
    }
    env.update(
        DATABASE_URL=config.DATABASE_URL,
        TIPG_DB_SCHEMAS=f'["{SCHEMA}"]',
        TIPG_DB_SPATIAL_EXTENT="false",
        TIPG_DB_DATETIME_EXTENT="false",
        TIPG_SET_MVT_LAYERNAME="true",
        TIPG_MAX_FEATURES_PER_TILE=str(MAX_FEATURES_PER_TILE),
    )
    return env


def settings_shown() -> dict[str, str]:
    """The tipg settings the benchmark sets, for the report (the database URL left out)."""
    return {k: v for k, v in tipg_env().items() if k.startswith("TIPG_")}


def tipg_target(key: str, label: str) -> Target:
    """tipg's own tile endpoint, run by the baseline's interpreter."""
    return tile_target(
        key,
        label,
        app="tipg.main:app",
        factory=False,
        path_template=f"/collections/{COLLECTION}/tiles/{TMS}/%s/%s/%s",
        python=str(PYTHON),
        health_path="/healthz",
    )
