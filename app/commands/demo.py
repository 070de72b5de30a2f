"""``mobility demo``: the bundled demo providers registered, and synced from the demo feeds
and TOMP operators this command serves while it runs."""

from __future__ import annotations

from app.commands.console import progress, say
from app.commands.sync import print_report
from app.platform.db import transaction
from app.platform.settings import Settings
from app.runtime import open_runtime
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
    return 1 if failures else 0
