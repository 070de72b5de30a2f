"""The tipg baseline runs the API's own web stack: every package its pins share with
requirements.lock has the lock's version (bench/tipg.py, bench/tipg-requirements.txt)."""

from __future__ import annotations

import re
from pathlib import Path

from bench import config, tipg


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        assert version, f"{path.name}: {line!r} is not pinned with =="
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_tipg_pins_share_the_locked_versions() -> None:
    locked = _pins(config.PROJECT_ROOT / "requirements.lock")
    baseline = _pins(tipg.REQUIREMENTS)
    shared = sorted(locked.keys() & baseline.keys())
    # The server stack both benchmarks run on must be among them.
    for name in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "asyncpg", "orjson"):
        assert name in shared, name
    differ = {n: (baseline[n], locked[n]) for n in shared if baseline[n] != locked[n]}
    assert not differ, f"tipg pins differ from requirements.lock (tipg, lock): {differ}"
    assert baseline["tipg"] == tipg.version()
