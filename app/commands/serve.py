"""``mobility serve``: the API under uvicorn (app/server.py), with background sync unless
``--no-sync``."""

from __future__ import annotations

import os

from app import server
from app.commands.console import say
from app.platform.settings import Settings, get_settings

__all__ = ["run"]


def run(settings: Settings, host: str, port: int, no_sync: bool) -> int:
    if no_sync:
        os.environ["MOBILITY_BACKGROUND_SYNC"] = "false"
        get_settings.cache_clear()
    say(f"serving GraphQL at http://{host}:{port}/graphql (Ctrl-C to stop)")
    server.run(get_settings(), host, port)
    return 0
