"""Where the benchmarks keep their data, and the sizes and seed they use by default.

The benchmark owns one database and one Redis db (with its own key prefix), so it can never
touch the demo data (``mobility``) or the test suite's (``mobility_test``, Redis db 15).
``make bench`` exports ``MOBILITY_DATABASE_URL`` for the demo database, so the benchmark reads
its own ``BENCH_*`` variables and sets the ``MOBILITY_*`` ones only for the servers it starts.

The smoke run (``--smoke``, what ``make test`` runs) has stores of its own again
(``mobility_bench_smoke``, Redis db 13, prefix ``smoke``), so the test suite never replaces the
benchmark's fleet. :func:`use_smoke_stores` switches to them before anything is touched; every
module reads ``config.DATABASE_URL`` and friends at call time, never at import.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Final

BENCH_DIR: Final = Path(__file__).resolve().parent
PROJECT_ROOT: Final = BENCH_DIR.parent
# Both are git-ignored: run artifacts (wrk scripts, server logs, raw JSON) and query points.
RESULTS_DIR: Final = BENCH_DIR / "results"
DATA_DIR: Final = BENCH_DIR / "data"
REPORT_PATH: Final = PROJECT_ROOT / "docs" / "benchmarks.md"
# Committed: the full run's charts, linked from docs/benchmarks.md.
CHARTS_DIR: Final = PROJECT_ROOT / "docs" / "bench"

# Not Final: --smoke swaps them for the smoke stores below (see use_smoke_stores).
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/mobility_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
REDIS_PREFIX = os.environ.get("BENCH_REDIS_PREFIX", "bench")

SMOKE_DATABASE_URL: Final = os.environ.get(
    "BENCH_SMOKE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/mobility_bench_smoke"
)
SMOKE_REDIS_URL: Final = os.environ.get("BENCH_SMOKE_REDIS_URL", "redis://127.0.0.1:6379/13")
SMOKE_REDIS_PREFIX: Final = os.environ.get("BENCH_SMOKE_REDIS_PREFIX", "smoke")

# Seals stored secrets (operator credentials, push and webhook secrets) in the bench databases;
# production refuses to start without a key. Fixed, so every bench process, and every run that
# reuses a database, opens what another one sealed. Public: bench data guards nothing.
SECRETS_KEY: Final = (
    base64.urlsafe_b64encode(hashlib.sha256(b"mobility bench secrets key").digest())
    .decode()
    .rstrip("=")
)

DEFAULT_SEED: Final = 20_261_127
FULL_COUNT: Final = 1_000_000
QUICK_COUNT: Final = 50_000
SMOKE_COUNT: Final = 20_000

# The nearby query every server answers.
RADIUS_METERS: Final = 500.0
FIRST: Final = 50


def database_name() -> str:
    return DATABASE_URL.rsplit("/", 1)[-1].split("?", 1)[0]


def use_smoke_stores() -> None:
    """Point the whole benchmark at the smoke database and Redis db/prefix."""
    global DATABASE_URL, REDIS_URL, REDIS_PREFIX
    name = SMOKE_DATABASE_URL.rsplit("/", 1)[-1].split("?", 1)[0]
    # The generator deletes and reloads its fleet: never let a smoke run near another database.
    if not name.endswith("_smoke"):
        raise SystemExit(f"refusing to smoke-test against database {name!r}: use a *_smoke name")
    DATABASE_URL = SMOKE_DATABASE_URL
    REDIS_URL = SMOKE_REDIS_URL
    REDIS_PREFIX = SMOKE_REDIS_PREFIX
