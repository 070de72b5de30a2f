"""The ``mobility`` command: how operators of the service and scripts drive it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from app.errors import DomainError
from app.logs import configure_logging
from app.settings import Settings, get_settings


def _print(message: str = "") -> None:
    print(message, flush=True)


def _progress(prefix: str) -> Callable[[str], None]:
    return lambda message: _print(f"{prefix}: {message}")


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


# --- migrate ---------------------------------------------------------------------------------


async def _migrate(settings: Settings) -> int:
    from sqlalchemy.engine import make_url

    from app import migrate

    name = make_url(settings.database_url).database
    _print(f"[1/2] database {name!r} and PostGIS extension...")
    created = await migrate.ensure_database(settings.database_url)
    _print(f"      {'created' if created else 'already present'}")
    _print("[2/2] applying migrations...")
    # Alembic runs its own event loop for the async engine: run it off this one.
    await asyncio.to_thread(migrate.upgrade, settings.database_url)
    _print("      schema at head")
    return 0


# --- providers ----------------------------------------------------------------------------


def _parse_feeds(pairs: Sequence[str]) -> dict[str, str]:
    feeds: dict[str, str] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url:
            raise DomainError(f"--feed takes NAME=URL, got {pair!r}", code="INVALID_ARGUMENTS")
        feeds[name.strip()] = url.strip()
    return feeds


def _config_argument(value: str, option: str = "--config") -> dict[str, Any]:
    """``--config`` (or ``--overrides``): a JSON object, or ``@FILE`` holding one."""
    try:
        raw = Path(value[1:]).read_bytes() if value.startswith("@") else value
        loaded = orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"{option} must be a JSON object or @FILE holding one: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ValueError(f"{option} must be a JSON object")
    return loaded


async def _providers_add(settings: Settings, args: argparse.Namespace) -> int:
    from app.db import create_engine, session_factory, transaction
    from providers.service import register_provider

    config: dict[str, Any] = {}
    if args.config:
        try:
            config = _config_argument(args.config)
        except ValueError as exc:
            return _fail(str(exc))
    if args.url and args.feed:
        return _fail("give either --url or --feed, not both")
    if args.url:
        config["discovery_url"] = args.url
    elif args.feed:
        config["feeds"] = _parse_feeds(args.feed)
    elif args.adapter == "gbfs" and not config:
        return _fail("give --url DISCOVERY_URL or at least one --feed NAME=URL")
    if args.language:
        config["language"] = args.language
    if args.overrides:
        try:
            config["overrides"] = _config_argument(args.overrides, "--overrides")
        except ValueError as exc:
            return _fail(str(exc))
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            provider, created = await register_provider(
                session, slug=args.slug, name=args.name, adapter=args.adapter, config=config
            )
        _print(f"{'added' if created else 'updated'} provider {provider.id} ({provider.name})")
        _print(f"sync it now with: mobility sync {provider.id}")
    finally:
        await engine.dispose()
    return 0


async def _providers_push_secret(settings: Settings, slug: str, remove: bool) -> int:
    from sqlalchemy import select

    from app.db import create_engine, session_factory, transaction
    from app.models import Provider
    from providers import repository
    from providers.push import new_secret

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            provider = await repository.get(session, slug)
            if provider is None:
                return _fail(f"unknown provider {slug!r}", 1)
            # Asked without opening it: an unreadable secret can still be replaced.
            had = (
                await session.scalar(
                    select(Provider.id).where(
                        Provider.id == slug, Provider.ingest_secret.is_not(None)
                    )
                )
                is not None
            )
            vehicle_feeds = {"vehicle_status", "free_bike_status"} & set(provider.feed_names)
            if not remove and vehicle_feeds:
                # Its syncs replace the whole fleet with the feed's: pushed vehicles would be
                # deleted at the next sync, and pushes would race the sync's bulk writes.
                return _fail(
                    f"{slug} publishes {', '.join(sorted(vehicle_feeds))}: its vehicles come "
                    "from that feed, so it cannot also push them (register the pushing "
                    "operator as its own provider, e.g. with --adapter push)"
                )
            secret = None if remove else new_secret()
            provider.ingest_secret = secret
    finally:
        await engine.dispose()
    if secret is None:
        _print(f"provider {slug} can no longer push" if had else f"{slug} had no ingest secret")
        return 0
    _print(f"{'rotated' if had else 'created'} the ingest secret of {slug}; it is shown once:")
    _print(f"  {secret}")
    _print(
        f"sign each POST /ingest/{slug}/vehicles as docs/push-ingest.md says; API processes "
        f"pick a new secret up within {settings.reference_ttl_seconds:g} s"
    )
    return 0


def _json_text(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


async def _providers_overrides(settings: Settings, args: argparse.Namespace) -> int:
    """Show, set (``--set``) or remove (``--clear``) a provider's feed overrides: the same
    service the ``setProviderOverrides`` mutation uses, validated with the whole config."""
    from app.db import create_engine, session_factory, transaction
    from providers import admin, repository

    changing = args.set is not None or args.clear
    overrides = _config_argument(args.set, "--set") if args.set is not None else None
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            if changing:
                provider = await admin.set_overrides(session, args.slug, overrides)
            else:
                found = await repository.get(session, args.slug)
                if found is None:
                    return _fail(f"unknown provider {args.slug!r}", 1)
                provider = found
            current = provider.config.get("overrides")
    finally:
        await engine.dispose()
    if changing:
        _print(
            f"overrides of {args.slug} {'removed' if args.clear else 'set'}; they apply from "
            f"its next sync (mobility sync {args.slug})"
        )
    _print(_json_text(current) if current else f"{args.slug} has no overrides")
    return 0


async def _providers_show(settings: Settings, slug: str) -> int:
    """A provider's adapter, config (header values masked), sync state and latest findings."""
    from app.db import create_engine, session_factory
    from app.search.service import latest_sync_run
    from providers import admin, repository

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            provider = await repository.get(session, slug)
            if provider is None:
                return _fail(f"unknown provider {slug!r}", 1)
            run = await latest_sync_run(session, slug)
    finally:
        await engine.dispose()
    state = "disabled" if not provider.enabled else ("stale" if provider.stale else "ok")
    if provider.last_sync_at is None:
        state = "new"
    _print(f"{provider.id} ({provider.name}): adapter {provider.adapter}, {state}")
    _print("config:")
    _print(_json_text(admin.config_view(dict(provider.config))))
    if provider.last_error:
        _print(f"last error: {provider.last_error}")
    if run is None:
        _print("not synced yet")
        return 0
    _print(
        f"latest sync {run.started_at:%Y-%m-%d %H:%M:%S} {run.status}: "
        f"{run.error_count} error(s), {run.warning_count} warning(s)"
    )
    for f in run.findings[:20]:
        rid = f" [{f['record_id']}]" if f.get("record_id") else ""
        _print(f"    {f['severity']:<7} {f['code']:<28} {f['feed']}{rid}: {f['message']}")
    if len(run.findings) > 20:
        _print(f"    ... and {len(run.findings) - 20} more (see Provider.validation)")
    return 0


async def _providers_list(settings: Settings) -> int:
    from app.db import create_engine, session_factory
    from app.search.repository import provider_summaries

    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            rows = await provider_summaries(session)
    finally:
        await engine.dispose()
    if not rows:
        _print("no providers yet: add one with `mobility providers add` or run `mobility demo`")
        return 0
    header = f"{'id':<24} {'gbfs':<5} {'vehicles':>8} {'stations':>8}  {'status':<8} last sync"
    _print(header)
    _print("-" * len(header))
    for row in rows:
        p, stats = row.provider, row.stats
        status = "disabled" if not p.enabled else ("stale" if p.stale else "ok")
        if p.last_sync_at is None:
            status = "new"
        last = p.last_sync_at.strftime("%Y-%m-%d %H:%M:%S") if p.last_sync_at else "never"
        _print(
            f"{p.id:<24} {p.gbfs_version or '-':<5} {stats.vehicle_count:>8} "
            f"{stats.station_count:>8}  {status:<8} {last}"
        )
        if p.last_error:
            _print(f"{'':<24} last error: {p.last_error}")
    return 0


async def _providers_remove(settings: Settings, slug: str) -> int:
    from app.db import transaction
    from app.runtime import open_runtime
    from providers import repository

    async with open_runtime(settings) as rt:
        async with transaction(rt.sessions) as session:
            provider = await repository.get(session, slug)
            if provider is None:
                return _fail(f"unknown provider {slug!r}", 1)
            await session.delete(provider)
        try:
            await rt.index.remove_provider(slug)
        except Exception as exc:  # the index is rebuilt from PostGIS at the next start
            _print(f"warning: could not clear the search index: {exc}")
    _print(f"removed provider {slug} and all its data")
    return 0


async def _providers_admin(settings: Settings, args: argparse.Namespace) -> int:
    """enable / disable / sync-now / credentials: the same service the admin mutations use."""
    from app.db import create_engine, session_factory, transaction
    from providers import admin
    from providers.dispatch import force_sync

    engine = create_engine(settings.database_url, pool_size=1)
    sessions = session_factory(engine)
    try:
        command = args.providers_command
        if command in {"enable", "disable"}:
            async with transaction(sessions) as session:
                await admin.set_enabled(session, args.slug, command == "enable")
            _print(f"provider {args.slug} {command}d")
            return 0
        if command == "sync-now":
            if not await force_sync(sessions, [args.slug]):
                return _fail(f"unknown provider {args.slug!r}", 1)
            _print(f"{args.slug} is due now: the scheduler syncs it within a second")
            return 0
        kind, values = _credentials_arguments(args)
        async with transaction(sessions) as session:
            await admin.set_credentials(session, args.slug, kind, values)
        _print(f"credentials of {args.slug}: {kind or 'removed'} (never shown again)")
        return 0
    finally:
        await engine.dispose()


def _secret_from(path: str) -> str:
    """A secret is read from a file (or ``-`` for stdin), never from the command line, where
    it would end up in shell history and in every process listing."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return text.strip()


def _credentials_arguments(args: argparse.Namespace) -> tuple[str | None, dict[str, Any] | None]:
    if args.clear:
        return None, None
    if args.bearer_token_file:
        return "bearer_token", {"token": _secret_from(args.bearer_token_file)}
    if args.api_key_header:
        if not args.api_key_file:
            raise ValueError("--api-key-header needs --api-key-file")
        return "api_key", {"header": args.api_key_header, "value": _secret_from(args.api_key_file)}
    if args.oauth2_token_url:
        if not (args.oauth2_client_id and args.oauth2_client_secret_file):
            raise ValueError(
                "--oauth2-token-url needs --oauth2-client-id and --oauth2-client-secret-file"
            )
        return "oauth2_client_credentials", {
            "token_url": args.oauth2_token_url,
            "client_id": args.oauth2_client_id,
            "client_secret": _secret_from(args.oauth2_client_secret_file),
            "scope": args.oauth2_scope,
        }
    raise ValueError(
        "give --bearer-token-file, --api-key-header with --api-key-file, "
        "--oauth2-token-url with its client options, or --clear"
    )


async def _secrets_reseal(settings: Settings) -> int:
    from app import secret_box
    from app.db import create_engine, session_factory, transaction

    box = secret_box.configure(settings)
    _print(f"re-sealing every stored secret with key {box.sealing_key_id}")
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            counts = await secret_box.reseal_all(session, box, _progress("secrets"))
    finally:
        await engine.dispose()
    _print(f"done: {sum(counts.values())} re-sealed; keys other than the first may now go")
    return 0


async def _staff_token(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from app.db import create_engine, session_factory, transaction
    from app.models import StaffToken
    from app.staff_auth import create_token, revoke_token

    engine = create_engine(settings.database_url, pool_size=1)
    sessions = session_factory(engine)
    try:
        if args.token_command == "create":
            async with transaction(sessions) as session:
                row, token = await create_token(session, args.name)
            _print(f"staff token {row.id} ({row.name}, role {row.role}); it is shown once:")
            _print(f"  {token}")
            _print("use it as: Authorization: Bearer <token>")
            return 0
        if args.token_command == "revoke":
            async with transaction(sessions) as session:
                revoked = await revoke_token(session, args.id)
            if not revoked:
                return _fail(f"no active staff token {args.id}", 1)
            _print(f"staff token {args.id} revoked")
            return 0
        async with sessions() as session:
            rows = (await session.scalars(select(StaffToken).order_by(StaffToken.id))).all()
        if not rows:
            _print("no staff tokens: create one with `mobility staff-token create NAME`")
        for t in rows:
            state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
            _print(f"{t.id:>4}  {t.prefix}…  {t.name:<24} {t.role:<6} {state:<18} used {used}")
        return 0
    finally:
        await engine.dispose()


# --- sync ---------------------------------------------------------------------------------


def print_report(report: Any) -> None:
    status = "ok" if report.ok else "FAILED"
    _print(f"sync {report.provider_id}: {status} in {report.duration_seconds:.2f}s")
    if report.phases:
        _print("  time: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.phases.items()))
    if report.error:
        _print(f"  error: {report.error}")
        _print("  the previous data is kept; the provider is marked stale")
    if report.counts:
        _print(f"  {'':<15}{'created':>9}{'updated':>9}{'removed':>9}{'total':>9}")
        for name, c in report.counts.items():
            _print(
                f"  {name:<15}{c['created']:>9}{c['updated']:>9}{c['removed']:>9}{c['total']:>9}"
            )
    if report.ok:
        _print(f"  validation: {report.error_count} error(s), {report.warning_count} warning(s)")
        for f in report.findings[:20]:
            rid = f" [{f.record_id}]" if f.record_id else ""
            _print(f"    {f.severity:<7} {f.code:<28} {f.feed}{rid}: {f.message}")
        if len(report.findings) > 20:
            _print(f"    ... and {len(report.findings) - 20} more (see Provider.validation)")


async def _sync(settings: Settings, slugs: Sequence[str], sync_all: bool) -> int:
    from app.runtime import open_runtime
    from providers import repository
    from providers.sync import ProviderNotFound

    failures = 0
    async with open_runtime(settings) as rt:
        if sync_all:
            async with rt.sessions() as session:
                slugs = [p.id for p in await repository.list_all(session, enabled_only=True)]
        for i, slug in enumerate(slugs, 1):
            prefix = f"[{i}/{len(slugs)}] {slug}"
            try:
                report = await rt.sync.sync(slug, progress=_progress(prefix))
            except ProviderNotFound:
                _print(f"error: unknown provider {slug!r} (see `mobility providers list`)")
                failures += 1
                continue
            print_report(report)
            failures += 0 if report.ok else 1
    return 1 if failures else 0


# --- demo ---------------------------------------------------------------------------------


async def _demo(settings: Settings, sync: bool) -> int:
    from app.db import transaction
    from app.runtime import open_runtime
    from providers.demo_runtime import (
        register_demo_providers,
        run_demo_tomp_operators,
        serve_demo_feeds,
    )

    async with open_runtime(settings) as rt:
        async with transaction(rt.sessions) as session:
            slugs = await register_demo_providers(session, settings)
        _print(f"registered demo providers: {', '.join(slugs)}")
        if not sync:
            return 0
        failures = 0
        async with serve_demo_feeds(settings, required=True), run_demo_tomp_operators(settings):
            for i, slug in enumerate(slugs, 1):
                prefix = f"[{i}/{len(slugs)}] {slug}"
                report = await rt.sync.sync(slug, progress=_progress(prefix))
                print_report(report)
                failures += 0 if report.ok else 1
    return 1 if failures else 0


# --- serve --------------------------------------------------------------------------------


def _serve(settings: Settings, host: str, port: int, no_sync: bool) -> int:
    import os

    if no_sync:
        os.environ["MOBILITY_BACKGROUND_SYNC"] = "false"
        get_settings.cache_clear()
    _print(f"serving GraphQL at http://{host}:{port}/graphql (Ctrl-C to stop)")
    from app import server  # uvicorn is imported by the one command that serves

    server.run(get_settings(), host, port)
    return 0


# --- worker and scheduler -----------------------------------------------------------------


def _worker(processes: int, concurrency: int | None, settings: Settings) -> int:
    """taskiq workers on the task queue (app/task_queue.py): syncs and webhook rounds. Blocks until
    stopped."""
    from taskiq.cli.worker.args import WorkerArgs
    from taskiq.cli.worker.run import run_worker

    _print(
        f"sync worker: {processes} process(es), {concurrency or settings.sync_concurrency} "
        f"sync(s) at a time each, queue {settings.redis_prefix}:tasks (Ctrl-C to stop)"
    )
    args = WorkerArgs(
        broker="app.task_queue:worker_broker",
        modules=[],
        workers=processes,
        max_async_tasks=concurrency or settings.sync_concurrency,
        # A sync may take up to its deadline: let one in flight finish on shutdown.
        wait_tasks_timeout=settings.sync_deadline_seconds,
        shutdown_timeout=settings.sync_deadline_seconds + 5,
    )
    return run_worker(args) or 0


async def _scheduler(settings: Settings) -> int:
    """The scheduler alone: claims due providers and queues their syncs for the workers, and
    runs booking upkeep and webhook deliveries."""
    import signal

    from app.booking.maintenance import start_booking_maintenance
    from app.fleet.tasks import kick_webhook_rounds
    from app.runtime import open_runtime
    from app.task_queue import running_broker
    from providers.scheduler import start_scheduler
    from providers.tasks import kicker

    queued = settings.model_copy(update={"sync_dispatch": "queue"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        open_runtime(queued) as rt,
        running_broker(queued) as broker,
        start_scheduler(rt, kick=kicker(broker)),
        # The periodic upkeep `mobility serve` runs in process: here for multi-process setups
        # (API processes then run with MOBILITY_BACKGROUND_SYNC=false).
        start_booking_maintenance(rt.bookings),
        kick_webhook_rounds(broker),
    ):
        _print(
            f"sync scheduler: queueing due syncs and webhook rounds on "
            f"{queued.redis_prefix}:tasks for the workers; booking upkeep runs here "
            "(Ctrl-C to stop)"
        )
        await stop.wait()
    _print("scheduler stopped")
    return 0


# --- entry point --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobility", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="create the database + PostGIS if missing, then migrate")

    serve = sub.add_parser("serve", help="serve the API (with background sync)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-sync", action="store_true", help="do not run background sync")

    worker = sub.add_parser("worker", help="run sync workers (taskiq, Redis stream queue)")
    worker.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    worker.add_argument(
        "--concurrency", type=int, help="syncs at a time per process (MOBILITY_SYNC_CONCURRENCY)"
    )
    sub.add_parser("scheduler", help="run the sync scheduler alone (queues syncs for workers)")

    providers = sub.add_parser("providers", help="manage providers")
    psub = providers.add_subparsers(dest="providers_command", required=True)
    add = psub.add_parser("add", help="add (or update) a provider")
    add.add_argument("slug", help="provider id, e.g. getaround-stavanger")
    add.add_argument("--adapter", default="gbfs")
    add.add_argument("--url", help="GBFS discovery URL (gbfs.json or manifest.json)")
    add.add_argument("--feed", action="append", metavar="NAME=URL", help="explicit feed URL")
    add.add_argument("--name", help="display name")
    add.add_argument("--language", help="preferred language for localized strings")
    add.add_argument(
        "--config",
        help="adapter config as a JSON object, or @FILE (e.g. the push adapter's documents)",
    )
    add.add_argument(
        "--overrides",
        help="feed overrides (vehicle types, plans, id maps, excluded feeds; docs/adapters.md) "
        "as a JSON object, or @FILE",
    )
    psub.add_parser("list", help="list providers and their sync state")
    psub.add_parser(
        "show", help="a provider's config, sync state and latest findings"
    ).add_argument("slug")
    overrides = psub.add_parser(
        "overrides", help="show, set or remove a provider's feed overrides (docs/adapters.md)"
    )
    overrides.add_argument("slug")
    change = overrides.add_mutually_exclusive_group()
    change.add_argument("--set", metavar="JSON|@FILE", help="replace them with this object")
    change.add_argument("--clear", action="store_true", help="remove them")
    secret = psub.add_parser(
        "push-secret", help="create or rotate a provider's push-ingest secret (shown once)"
    )
    secret.add_argument("slug")
    secret.add_argument("--remove", action="store_true", help="stop the provider from pushing")
    remove = psub.add_parser("remove", help="remove a provider and all its data")
    remove.add_argument("slug")
    for name, text in (
        ("enable", "enable a provider (synced and shown again)"),
        ("disable", "disable a provider (not synced, its vehicles not shown)"),
        ("sync-now", "make a provider due now; the running scheduler syncs it"),
    ):
        psub.add_parser(name, help=text).add_argument("slug")
    creds = psub.add_parser(
        "credentials", help="set the credentials its adapter uses to call the operator"
    )
    creds.add_argument("slug")
    kind = creds.add_mutually_exclusive_group(required=True)
    kind.add_argument("--bearer-token-file", metavar="FILE", help="file holding the token, or -")
    kind.add_argument("--api-key-header", metavar="NAME", help="header carrying the API key")
    kind.add_argument("--oauth2-token-url", metavar="URL", help="OAuth2 client-credentials")
    kind.add_argument("--clear", action="store_true", help="remove the credentials")
    creds.add_argument("--api-key-file", metavar="FILE", help="file holding the API key, or -")
    creds.add_argument("--oauth2-client-id")
    creds.add_argument("--oauth2-client-secret-file", metavar="FILE")
    creds.add_argument("--oauth2-scope")

    tokens = sub.add_parser("staff-token", help="staff API tokens (the ADMIN role)")
    tsub = tokens.add_subparsers(dest="token_command", required=True)
    tsub.add_parser("create", help="create a token (shown once)").add_argument("name")
    tsub.add_parser("revoke", help="revoke a token at once").add_argument("id", type=int)
    tsub.add_parser("list", help="list tokens (prefixes only)")

    box = sub.add_parser("secrets", help="the keys sealing stored secrets (MOBILITY_SECRETS_KEYS)")
    bsub = box.add_subparsers(dest="secrets_command", required=True)
    bsub.add_parser("new-key", help="print a new random key (put it first in the setting)")
    bsub.add_parser("reseal", help="seal every stored secret with the first key (rotation)")

    sync = sub.add_parser("sync", help="sync providers now, once")
    sync.add_argument("slugs", nargs="*", metavar="SLUG")
    sync.add_argument("--all", action="store_true", help="every enabled provider")

    demo = sub.add_parser("demo", help="register the bundled demo providers and sync them")
    demo.add_argument("--no-sync", action="store_true", help="only register them")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(logging.WARNING)
    settings = get_settings()
    from app import secret_box

    try:
        if args.command == "secrets" and args.secrets_command == "new-key":
            _print(secret_box.new_key())
            return 0
        # Every command reading or writing the database seals with these keys.
        secret_box.configure(settings)
        if args.command == "secrets":
            return asyncio.run(_secrets_reseal(settings))
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "serve":
            return _serve(settings, args.host, args.port, args.no_sync)
        if args.command == "worker":
            if args.processes < 1 or (args.concurrency is not None and args.concurrency < 1):
                return _fail("--processes and --concurrency must be at least 1")
            return _worker(args.processes, args.concurrency, settings)
        if args.command == "scheduler":
            return asyncio.run(_scheduler(settings))
        if args.command == "providers":
            if args.providers_command == "add":
                return asyncio.run(_providers_add(settings, args))
            if args.providers_command == "list":
                return asyncio.run(_providers_list(settings))
            if args.providers_command == "show":
                return asyncio.run(_providers_show(settings, args.slug))
            if args.providers_command == "overrides":
                try:
                    return asyncio.run(_providers_overrides(settings, args))
                except ValueError as exc:
                    return _fail(str(exc))
            if args.providers_command == "push-secret":
                return asyncio.run(_providers_push_secret(settings, args.slug, args.remove))
            if args.providers_command == "remove":
                return asyncio.run(_providers_remove(settings, args.slug))
            try:
                return asyncio.run(_providers_admin(settings, args))
            except (ValueError, OSError) as exc:
                return _fail(str(exc))
        if args.command == "staff-token":
            return asyncio.run(_staff_token(settings, args))
        if args.command == "sync":
            if not args.slugs and not args.all:
                return _fail("name at least one provider, or use --all")
            started = time.perf_counter()
            code = asyncio.run(_sync(settings, args.slugs, args.all))
            _print(f"done in {time.perf_counter() - started:.1f}s")
            return code
        if args.command == "demo":
            return asyncio.run(_demo(settings, not args.no_sync))
    except DomainError as exc:
        return _fail(f"{exc.message} [{exc.code}]")
    except (secret_box.SecretsMisconfigured, secret_box.SecretUnreadable) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc} (are PostgreSQL and Redis running? see `make install`)", 1)
    return 2


if __name__ == "__main__":
    sys.exit(main())
