"""Where the benchmarks keep their data, and the sizes and seed they use by default.

The benchmark owns one database and one Redis db (with its own key prefix), so it can never
touch the demo data (``mobility``) or the test suite's (``mobility_test``, Redis db 15).
``make bench`` exports ``MOBILITY_DATABASE_URL`` for the demo database, so the benchmark reads
its own ``BENCH_*`` variables and sets the ``MOBILITY_*`` ones only for the servers it starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

BENCH_DIR: Final = Path(__file__).resolve().parent
PROJECT_ROOT: Final = BENCH_DIR.parent
# Both are git-ignored: run artifacts (wrk scripts, server logs, raw JSON) and query points.
RESULTS_DIR: Final = BENCH_DIR / "results"
DATA_DIR: Final = BENCH_DIR / "data"
REPORT_PATH: Final = PROJECT_ROOT / "docs" / "benchmarks.md"

DATABASE_URL: Final = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/mobility_bench"
)
REDIS_URL: Final = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
REDIS_PREFIX: Final = os.environ.get("BENCH_REDIS_PREFIX", "bench")

DEFAULT_SEED: Final = 20_261_127
FULL_COUNT: Final = 1_000_000
QUICK_COUNT: Final = 50_000

# The nearby query both servers answer.
RADIUS_METERS: Final = 500.0
FIRST: Final = 50
