"""``mobility transit ...``: adding, syncing (loading), listing and removing GTFS feeds: the same
service the admin mutations use (app/transit/feeds.py).

Exit codes: 0 done (or nothing to do: the source is the loaded version), 1 an unknown feed,
2 a bad argument, 3 the feed could not be loaded (its findings are printed; the version loaded
before stays active)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from app.commands.console import fail, say
from app.commands.database import database
from app.platform.settings import Settings
from app.transit.feeds import TransitFeeds
from app.transit.gtfs_feed import GtfsFinding
from app.transit.loader import FeedLoadFailed, LoadResult, Progress, UnknownTransitFeed
from app.transit.realtime_poll import RealtimeFeedState, realtime_states

__all__ = ["add", "list_feeds", "remove", "sync"]

LOAD_FAILED = 3
_SHOWN_FINDINGS = 30


def _progress() -> Progress:
    """Each stage of a load as it starts, with the seconds since the load began."""
    started = time.perf_counter()

    def show(message: str) -> None:
        say(f"  [{time.perf_counter() - started:6.2f}s] {message}")

    return show


def _print_findings(findings: Sequence[GtfsFinding]) -> None:
    if not findings:
        say("findings: none")
        return
    totals: dict[str, int] = {}
    for f in findings:
        totals[f.severity] = totals.get(f.severity, 0) + f.count
    order = ("fatal", "error", "warning", "info")
    say("findings: " + ", ".join(f"{totals[s]} {s}" for s in order if s in totals))
    ranked = sorted(findings, key=lambda f: order.index(f.severity))
    for f in ranked[:_SHOWN_FINDINGS]:
        say(f"    {f.line()}")
    if len(ranked) > _SHOWN_FINDINGS:
        say(f"    ... and {len(ranked) - _SHOWN_FINDINGS} more kinds")


def _report(result: LoadResult) -> None:
    if result.unchanged:
        say(
            f"{result.feed}: unchanged (sha256 {result.sha256[:12]} is the active version "
            f"{result.version_id}); not reloaded"
        )
        return
    counts = result.counts
    say(
        f"{result.feed}: loaded version {result.version_id} in {result.seconds:.2f}s: "
        f"{counts.get('stops', 0):,} stops, {counts.get('routes', 0):,} routes, "
        f"{counts.get('trips', 0):,} trips, {counts.get('stop_times', 0):,} stop times, "
        f"{result.footpaths:,} footpaths"
    )
    _print_findings(result.findings)


async def _load(feeds: TransitFeeds, slug: str, force: bool) -> int:
    try:
        result = await feeds.sync(slug, force=force, progress=_progress())
    except UnknownTransitFeed:
        return fail(f"unknown transit feed {slug!r}", 1)
    except FeedLoadFailed as exc:
        _print_findings(exc.findings)
        return fail(f"{slug}: {exc.message}", LOAD_FAILED)
    _report(result)
    return 0


async def add(settings: Settings, args: argparse.Namespace) -> int:
    realtime = {
        "trip_updates": args.trip_updates,
        "vehicle_positions": args.vehicle_positions,
        "service_alerts": args.service_alerts,
    }
    async with database(settings) as sessions:
        feeds = TransitFeeds(sessions, settings)
        source = args.gtfs
        if not source.startswith(("http://", "https://")):
            # Stored absolute: a later sync may run from another directory.
            source = str(Path(source).expanduser().absolute())  # noqa: ASYNC240 (no I/O)
        summary, created = await feeds.add(
            args.slug,
            source,
            name=args.name,
            realtime={k: v for k, v in realtime.items() if v},
            allow_path=True,
        )
        say(f"{'added' if created else 'updated'} transit feed {summary.slug} ({summary.name})")
        if args.no_load:
            say(f"load it with: mobility transit sync {summary.slug}")
            return 0
        return await _load(feeds, summary.slug, force=False)


async def sync(settings: Settings, slug: str, force: bool) -> int:
    async with database(settings) as sessions:
        return await _load(TransitFeeds(sessions, settings), slug, force)


async def list_feeds(settings: Settings) -> int:
    async with database(settings) as sessions:
        rows = await TransitFeeds(sessions, settings).list()
        live = {s.feed: s for s in await realtime_states(sessions, settings)}
    if not rows:
        say("no transit feeds yet: add one with `mobility transit add SLUG --gtfs PATH_OR_URL`")
        return 0
    header = f"{'feed':<20} {'version':>7} {'stops':>7} {'trips':>7} {'stop times':>10}  loaded"
    say(header)
    say("-" * len(header))
    for f in rows:
        loaded = f.last_loaded_at.strftime("%Y-%m-%d %H:%M:%S") if f.last_loaded_at else "never"
        version = str(f.active_version) if f.active_version is not None else "-"
        say(
            f"{f.slug:<20} {version:>7} {f.counts.get('stops', 0):>7,} "
            f"{f.counts.get('trips', 0):>7,} {f.counts.get('stop_times', 0):>10,}  {loaded}"
            + ("" if f.enabled else "  (disabled)")
        )
        say(f"{'':<20} {f.name}; source {f.source}")
        if f.active_version is not None:
            shown = ", ".join(f"{n} {s}" for s, n in f.findings.items() if n)
            say(f"{'':<20} findings: {shown or 'none'}")
        if f.last_error:
            say(f"{'':<20} last error: {f.last_error}")
        state = live.get(f.slug)
        if state is not None:
            say(f"{'':<20} live data: {_live_summary(state)}")
    return 0


def _live_summary(state: RealtimeFeedState) -> str:
    polled = (
        state.last_success_at.strftime("%Y-%m-%d %H:%M:%S") if state.last_success_at else "never"
    )
    text = (
        f"{state.status.value}, last good poll {polled}, "
        f"{state.consecutive_failures} failure(s) since, {state.unknown_trips} unknown trip(s)"
    )
    if state.last_error:
        text += f"; last error: {state.last_error}"
    return text


async def remove(settings: Settings, slug: str) -> int:
    async with database(settings) as sessions:
        if not await TransitFeeds(sessions, settings).remove(slug):
            return fail(f"unknown transit feed {slug!r}", 1)
    say(f"removed transit feed {slug} and every version of it")
    return 0
