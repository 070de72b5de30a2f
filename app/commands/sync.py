"""``mobility sync``: providers synced now, once, each with its report (which ``mobility
demo`` prints too)."""

from __future__ import annotations

from collections.abc import Sequence

from app.commands.console import progress, say
from app.platform.settings import Settings
from app.runtime import open_runtime
from providers import repository
from providers.sync import ProviderNotFound, SyncReport

__all__ = ["print_report", "run"]


def print_report(report: SyncReport) -> None:
    status = "ok" if report.ok else "FAILED"
    say(f"sync {report.provider_id}: {status} in {report.duration_seconds:.2f}s")
    if report.phases:
        say("  time: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.phases.items()))
    if report.error:
        say(f"  error: {report.error}")
        say("  the previous data is kept; the provider is marked stale")
    if report.counts:
        say(f"  {'':<15}{'created':>9}{'updated':>9}{'removed':>9}{'total':>9}")
        for name, c in report.counts.items():
            say(f"  {name:<15}{c['created']:>9}{c['updated']:>9}{c['removed']:>9}{c['total']:>9}")
    if report.ok:
        say(f"  validation: {report.error_count} error(s), {report.warning_count} warning(s)")
        for f in report.findings[:20]:
            rid = f" [{f.record_id}]" if f.record_id else ""
            say(f"    {f.severity:<7} {f.code:<28} {f.feed}{rid}: {f.message}")
        if len(report.findings) > 20:
            say(f"    ... and {len(report.findings) - 20} more (see Provider.validation)")


async def run(settings: Settings, slugs: Sequence[str], sync_all: bool) -> int:
    failures = 0
    async with open_runtime(settings) as rt:
        if sync_all:
            async with rt.sessions() as session:
                slugs = [p.id for p in await repository.list_all(session, enabled_only=True)]
        for i, slug in enumerate(slugs, 1):
            prefix = f"[{i}/{len(slugs)}] {slug}"
            try:
                report = await rt.sync.sync(slug, progress=progress(prefix))
            except ProviderNotFound:
                say(f"error: unknown provider {slug!r} (see `mobility providers list`)")
                failures += 1
                continue
            print_report(report)
            failures += 0 if report.ok else 1
    return 1 if failures else 0
