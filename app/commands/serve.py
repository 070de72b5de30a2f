"""``mobility serve``: the API under uvicorn (app/server.py), with background sync unless
``--no-sync``."""

from __future__ import annotations

import os

from app import server
from app.commands.console import say
from app.platform import metrics
from app.platform.settings import Settings, get_settings

__all__ = ["run"]


def run(settings: Settings, host: str, port: int, no_sync: bool, *, workers: int = 1) -> int:
    if no_sync:
        os.environ["MOBILITY_BACKGROUND_SYNC"] = "false"
        get_settings.cache_clear()
    # Several processes count into one directory, so that /metrics of any reports them all.
    directory = metrics.use_multiprocess_dir() if workers > 1 else None
    processes = f" with {workers} processes" if workers > 1 else ""
    say(f"serving GraphQL at http://{host}:{port}/graphql{processes} (Ctrl-C to stop)")
    try:
        server.run(get_settings(), host, port, workers=workers)
    finally:
        if directory is not None:
            metrics.remove_multiprocess_dir(directory)
    return 0
