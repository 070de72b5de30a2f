"""Fake adapter packages, installed for real: a ``*.dist-info`` with an ``entry_points.txt``.

:func:`installed` writes the distribution into a directory and puts it on ``sys.path``, so
``importlib.metadata.entry_points(group="mobility.adapters")`` finds these adapters exactly as it
finds a pip-installed third-party package; nothing of ours is patched.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapters.base import ENTRY_POINT_GROUP

DISTRIBUTION = "mobility-fake-adapters"
ENTRY_POINTS = {
    "fake-scooters": "tests.fake_adapters.scooterco:ScooterCoAdapter",
    "fake-crashing-config": "tests.fake_adapters.broken:CrashingConfig",
    "fake-leaky-errors": "tests.fake_adapters.broken:LeaksTransportErrors",
    "fake-own-client": "tests.fake_adapters.broken:OwnHttpClient",
    "fake-malformed": "tests.fake_adapters.broken:MalformedSnapshot",
    "fake-nondeterministic": "tests.fake_adapters.broken:Nondeterministic",
    "fake-misnamed": "tests.fake_adapters.broken:Misnamed",
}


def write_distribution(site: Path) -> Path:
    """What ``pip install`` leaves in site-packages for a package declaring these entry points."""
    dist_info = site / f"{DISTRIBUTION.replace('-', '_')}-0.0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: 0.0.1\n"
    )
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{k} = {v}" for k, v in ENTRY_POINTS.items())]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return dist_info


@contextmanager
def installed(site: Path) -> Iterator[None]:
    """The fake distribution installed in ``site`` for the duration."""
    write_distribution(site)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(site))
        importlib.invalidate_caches()
