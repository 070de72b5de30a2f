"""The ``mobility`` command: how operators of the service and scripts drive it."""

# The command line is parsed here; each command group's work is a module of app/commands/.

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

from app.commands.console import fail, say
from app.platform.errors import DomainError
from app.platform.logs import configure_logging
from app.platform.settings import Settings, get_settings

LONG_RUNNING = frozenset({"serve", "worker", "scheduler"})


def _metrics_address(args: argparse.Namespace) -> tuple[str, int] | None:
    return None if args.metrics_port is None else (args.metrics_host, args.metrics_port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobility", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="create the database + PostGIS if missing, then migrate")

    serve = sub.add_parser("serve", help="serve the API (with background sync)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-sync", action="store_true", help="do not run background sync")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes on this port (default 1); /metrics of any reports them all",
    )

    worker = sub.add_parser("worker", help="run sync workers (taskiq, Redis stream queue)")
    worker.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    worker.add_argument(
        "--concurrency", type=int, help="syncs at a time per process (MOBILITY_SYNC_CONCURRENCY)"
    )
    scheduler = sub.add_parser(
        "scheduler", help="run the sync scheduler alone (queues syncs for workers)"
    )
    for command in (worker, scheduler):
        command.add_argument(
            "--metrics-port",
            type=int,
            help="serve Prometheus metrics of these processes on this port (default: none)",
        )
        command.add_argument(
            "--metrics-host",
            default="127.0.0.1",
            help="the address the metrics port listens on (default 127.0.0.1: this host only)",
        )

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

    transit = sub.add_parser("transit", help="public transport: GTFS feeds (docs/transit.md)")
    xsub = transit.add_subparsers(dest="transit_command", required=True)
    xadd = xsub.add_parser("add", help="add (or update) a GTFS feed and load it")
    xadd.add_argument("slug", help="feed id, e.g. caltrain (stop ids become SLUG:stop_id)")
    xadd.add_argument("--gtfs", required=True, metavar="PATH_OR_URL", help="the GTFS zip")
    xadd.add_argument("--name", help="display name")
    xadd.add_argument("--trip-updates", metavar="URL", help="GTFS-Realtime TripUpdates")
    xadd.add_argument("--vehicle-positions", metavar="URL", help="GTFS-Realtime VehiclePositions")
    xadd.add_argument("--service-alerts", metavar="URL", help="GTFS-Realtime ServiceAlerts")
    xadd.add_argument("--no-load", action="store_true", help="only register it")
    xsync = xsub.add_parser("sync", help="load a feed from its source now (if it changed)")
    xsync.add_argument("slug")
    xsync.add_argument("--force", action="store_true", help="load even if unchanged")
    xsub.add_parser("list", help="list transit feeds, their loaded version and findings")
    xsub.add_parser("remove", help="remove a feed and every version of it").add_argument("slug")

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
    settings = get_settings()
    # The long-running processes write lines for a log pipeline; a one-shot command's reader is
    # a person, and its output is on stdout.
    long_running = args.command in LONG_RUNNING
    configure_logging(
        settings.log_level or ("INFO" if long_running else "WARNING"),
        settings.log_format or ("json" if long_running else "text"),
    )
    # After the arguments parse: `mobility --help` and a usage error need none of what it
    # loads (SQLAlchemy, cryptography: a quarter of a second of start-up).
    from app.platform import secret_box

    try:
        if args.command == "secrets" and args.secrets_command == "new-key":
            say(secret_box.new_key())
            return 0
        # Every command reading or writing the database seals with these keys.
        secret_box.configure(settings)
        return _run(args, settings)
    except DomainError as exc:
        return fail(f"{exc.message} [{exc.code}]")
    except (secret_box.SecretsMisconfigured, secret_box.SecretUnreadable) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"{exc} (are PostgreSQL and Redis running? see `make install`)", 1)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    # Each branch imports its command's module only when that command runs: the modules of
    # app/commands/ load what their commands need (the database driver and models, uvicorn,
    # taskiq: up to a second of start-up), which `mobility --help`, `secrets new-key` and the
    # other commands need none of.
    if args.command == "secrets":
        from app.commands import secret_keys

        return asyncio.run(secret_keys.reseal(settings))
    if args.command == "migrate":
        from app.commands import migrate

        return asyncio.run(migrate.run(settings))
    if args.command == "serve":
        from app.commands import serve

        if not 1 <= args.workers <= 64:
            return fail("--workers must be between 1 and 64")
        return serve.run(settings, args.host, args.port, args.no_sync, workers=args.workers)
    port = getattr(args, "metrics_port", None)
    if port is not None and not 0 < port < 65536:
        return fail("--metrics-port must be a TCP port (1-65535)")
    if args.command == "worker":
        if args.processes < 1 or (args.concurrency is not None and args.concurrency < 1):
            return fail("--processes and --concurrency must be at least 1")
        from app.commands import worker

        return worker.run(
            args.processes,
            args.concurrency,
            settings,
            metrics_at=_metrics_address(args),
        )
    if args.command == "scheduler":
        from app.commands import scheduler

        return asyncio.run(scheduler.run(settings, metrics_at=_metrics_address(args)))
    if args.command == "providers":
        from app.commands import providers

        if args.providers_command == "add":
            return asyncio.run(providers.add(settings, args))
        if args.providers_command == "list":
            return asyncio.run(providers.list_all(settings))
        if args.providers_command == "show":
            return asyncio.run(providers.show(settings, args.slug))
        if args.providers_command == "overrides":
            try:
                return asyncio.run(providers.show_or_set_overrides(settings, args))
            except ValueError as exc:
                return fail(str(exc))
        if args.providers_command == "push-secret":
            return asyncio.run(providers.push_secret(settings, args.slug, args.remove))
        if args.providers_command == "remove":
            return asyncio.run(providers.remove_provider(settings, args.slug))
        try:
            return asyncio.run(providers.manage(settings, args))
        except (ValueError, OSError) as exc:
            return fail(str(exc))
    if args.command == "transit":
        from app.commands import transit

        if args.transit_command == "add":
            return asyncio.run(transit.add(settings, args))
        if args.transit_command == "sync":
            return asyncio.run(transit.sync(settings, args.slug, args.force))
        if args.transit_command == "list":
            return asyncio.run(transit.list_feeds(settings))
        return asyncio.run(transit.remove(settings, args.slug))
    if args.command == "staff-token":
        from app.commands import staff_tokens

        return asyncio.run(staff_tokens.run(settings, args))
    if args.command == "sync":
        if not args.slugs and not args.all:
            return fail("name at least one provider, or use --all")
        from app.commands import sync

        started = time.perf_counter()
        code = asyncio.run(sync.run(settings, args.slugs, args.all))
        say(f"done in {time.perf_counter() - started:.1f}s")
        return code
    if args.command == "demo":
        from app.commands import demo

        return asyncio.run(demo.run(settings, not args.no_sync))
    return 2


if __name__ == "__main__":
    sys.exit(main())
