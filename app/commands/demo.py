"""``mobility demo``: the bundled demo providers registered, and synced from the demo feeds
and TOMP operators this command serves while it runs."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.commands.console import progress, say
from app.commands.sync import print_report
from app.platform.db import transaction
from app.platform.settings import Settings
from app.runtime import open_runtime
from app.transit.feeds import TransitFeeds
from app.transit.loader import FeedLoadFailed
from providers.demo import transit as demo_transit
from providers.demo_runtime import (
    register_demo_providers,
    run_demo_tomp_operators,
    serve_demo_feeds,
)

__all__ = ["run"]


async def run(settings: Settings, sync: bool) -> int:
    async with open_runtime(settings) as rt:
        async with transaction(rt.sessions) as session:
            slugs = await register_demo_providers(session, settings)
        say(f"registered demo providers: {', '.join(slugs)}")
        if not sync:
            return 0
        failures = 0
        async with serve_demo_feeds(settings, required=True), run_demo_tomp_operators(settings):
            for i, slug in enumerate(slugs, 1):
                prefix = f"[{i}/{len(slugs)}] {slug}"
                report = await rt.sync.sync(slug, progress=progress(prefix))
                print_report(report)
                failures += 0 if report.ok else 1
        failures += await _load_demo_transit(rt.sessions, settings)
    return 1 if failures else 0


async def _load_demo_transit(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """The demo transit network (providers/demo/transit.py), generated for today and loaded
    as the feed ``demo-transit``; unchanged since the last run, it is not reloaded."""
    path = Path(tempfile.gettempdir()) / "mobility-demo-transit.zip"
    path.write_bytes(demo_transit.demo_gtfs(date.today()))
    feeds = TransitFeeds(sessions, settings)
    await feeds.add(demo_transit.SLUG, str(path), name=demo_transit.NAME, allow_path=True)
    try:
        result = await feeds.sync(
            demo_transit.SLUG, progress=progress(f"[transit] {demo_transit.SLUG}")
        )
    except FeedLoadFailed as exc:
        say(f"demo transit network failed to load: {exc.message}")
        return 1
    state = "unchanged" if result.unchanged else "loaded"
    say(f"demo transit network {demo_transit.SLUG}: {state}")
    return 0
