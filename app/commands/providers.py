"""``mobility providers ...``: adding, listing, showing and removing providers, their feed
overrides, push-ingest secret, credentials, and enabling, disabling or syncing one now: the
same services the admin mutations use."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from app.commands.console import fail, say
from app.commands.database import database
from app.models import Provider
from app.platform.db import transaction
from app.platform.errors import DomainError
from app.platform.settings import Settings
from app.runtime import open_runtime
from app.search.repository import provider_summaries
from providers import admin, repository
from providers.dispatch import force_sync
from providers.push import new_secret
from providers.service import register_provider

__all__ = [
    "add",
    "list_all",
    "manage",
    "push_secret",
    "remove_provider",
    "show",
    "show_or_set_overrides",
]


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


async def add(settings: Settings, args: argparse.Namespace) -> int:
    config: dict[str, Any] = {}
    if args.config:
        try:
            config = _config_argument(args.config)
        except ValueError as exc:
            return fail(str(exc))
    if args.url and args.feed:
        return fail("give either --url or --feed, not both")
    if args.url:
        config["discovery_url"] = args.url
    elif args.feed:
        config["feeds"] = _parse_feeds(args.feed)
    elif args.adapter == "gbfs" and not config:
        return fail("give --url DISCOVERY_URL or at least one --feed NAME=URL")
    if args.language:
        config["language"] = args.language
    if args.overrides:
        try:
            config["overrides"] = _config_argument(args.overrides, "--overrides")
        except ValueError as exc:
            return fail(str(exc))
    async with database(settings) as sessions:
        async with transaction(sessions) as session:
            provider, created = await register_provider(
                session, slug=args.slug, name=args.name, adapter=args.adapter, config=config
            )
        say(f"{'added' if created else 'updated'} provider {provider.id} ({provider.name})")
        say(f"sync it now with: mobility sync {provider.id}")
    return 0


async def push_secret(settings: Settings, slug: str, remove: bool) -> int:
    async with database(settings) as sessions, transaction(sessions) as session:
        provider = await repository.get(session, slug)
        if provider is None:
            return fail(f"unknown provider {slug!r}", 1)
        # Asked without opening it: an unreadable secret can still be replaced.
        had = (
            await session.scalar(
                select(Provider.id).where(Provider.id == slug, Provider.ingest_secret.is_not(None))
            )
            is not None
        )
        vehicle_feeds = {"vehicle_status", "free_bike_status"} & set(provider.feed_names)
        if not remove and vehicle_feeds:
            # Its syncs replace the whole fleet with the feed's: pushed vehicles would be
            # deleted at the next sync, and pushes would race the sync's bulk writes.
            return fail(
                f"{slug} publishes {', '.join(sorted(vehicle_feeds))}: its vehicles come "
                "from that feed, so it cannot also push them (register the pushing "
                "operator as its own provider, e.g. with --adapter push)"
            )
        secret = None if remove else new_secret()
        provider.ingest_secret = secret
    if secret is None:
        say(f"provider {slug} can no longer push" if had else f"{slug} had no ingest secret")
        return 0
    say(f"{'rotated' if had else 'created'} the ingest secret of {slug}; it is shown once:")
    say(f"  {secret}")
    say(
        f"sign each POST /ingest/{slug}/vehicles as docs/push-ingest.md says; API processes "
        f"pick a new secret up within {settings.reference_ttl_seconds:g} s"
    )
    return 0


def _json_text(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


async def show_or_set_overrides(settings: Settings, args: argparse.Namespace) -> int:
    """Show, set (``--set``) or remove (``--clear``) a provider's feed overrides: the same
    service the ``setProviderOverrides`` mutation uses, validated with the whole config."""
    changing = args.set is not None or args.clear
    overrides = _config_argument(args.set, "--set") if args.set is not None else None
    async with database(settings) as sessions, transaction(sessions) as session:
        if changing:
            provider = await admin.set_overrides(session, args.slug, overrides)
        else:
            found = await repository.get(session, args.slug)
            if found is None:
                return fail(f"unknown provider {args.slug!r}", 1)
            provider = found
        current = provider.config.get("overrides")
    if changing:
        say(
            f"overrides of {args.slug} {'removed' if args.clear else 'set'}; they apply from "
            f"its next sync (mobility sync {args.slug})"
        )
    say(_json_text(current) if current else f"{args.slug} has no overrides")
    return 0


async def show(settings: Settings, slug: str) -> int:
    """A provider's adapter, config (header values masked), sync state and latest findings."""
    async with database(settings) as sessions, sessions() as session:
        provider = await repository.get(session, slug)
        if provider is None:
            return fail(f"unknown provider {slug!r}", 1)
        run = await repository.latest_finished_run(session, slug)
    state = "disabled" if not provider.enabled else ("stale" if provider.stale else "ok")
    if provider.last_sync_at is None:
        state = "new"
    say(f"{provider.id} ({provider.name}): adapter {provider.adapter}, {state}")
    say("config:")
    say(_json_text(admin.config_view(dict(provider.config))))
    if provider.last_error:
        say(f"last error: {provider.last_error}")
    if run is None:
        say("not synced yet")
        return 0
    say(
        f"latest sync {run.started_at:%Y-%m-%d %H:%M:%S} {run.status}: "
        f"{run.error_count} error(s), {run.warning_count} warning(s)"
    )
    for f in run.findings[:20]:
        rid = f" [{f['record_id']}]" if f.get("record_id") else ""
        say(f"    {f['severity']:<7} {f['code']:<28} {f['feed']}{rid}: {f['message']}")
    if len(run.findings) > 20:
        say(f"    ... and {len(run.findings) - 20} more (see Provider.validation)")
    return 0


async def list_all(settings: Settings) -> int:
    async with database(settings) as sessions, sessions() as session:
        rows = await provider_summaries(session)
    if not rows:
        say("no providers yet: add one with `mobility providers add` or run `mobility demo`")
        return 0
    header = f"{'id':<24} {'gbfs':<5} {'vehicles':>8} {'stations':>8}  {'status':<8} last sync"
    say(header)
    say("-" * len(header))
    for row in rows:
        p, stats = row.provider, row.stats
        status = "disabled" if not p.enabled else ("stale" if p.stale else "ok")
        if p.last_sync_at is None:
            status = "new"
        last = p.last_sync_at.strftime("%Y-%m-%d %H:%M:%S") if p.last_sync_at else "never"
        say(
            f"{p.id:<24} {p.gbfs_version or '-':<5} {stats.vehicle_count:>8} "
            f"{stats.station_count:>8}  {status:<8} {last}"
        )
        if p.last_error:
            say(f"{'':<24} last error: {p.last_error}")
    return 0


async def remove_provider(settings: Settings, slug: str) -> int:
    async with open_runtime(settings) as rt:
        async with transaction(rt.sessions) as session:
            provider = await repository.get(session, slug)
            if provider is None:
                return fail(f"unknown provider {slug!r}", 1)
            await session.delete(provider)
        try:
            await rt.index.remove_provider(slug)
        except Exception as exc:  # the index is rebuilt from PostGIS at the next start
            say(f"warning: could not clear the search index: {exc}")
    say(f"removed provider {slug} and all its data")
    return 0


async def manage(settings: Settings, args: argparse.Namespace) -> int:
    """enable / disable / sync-now / credentials: the same service the admin mutations use."""
    async with database(settings) as sessions:
        command = args.providers_command
        if command in {"enable", "disable"}:
            async with transaction(sessions) as session:
                await admin.set_enabled(session, args.slug, command == "enable")
            say(f"provider {args.slug} {command}d")
            return 0
        if command == "sync-now":
            if not await force_sync(sessions, [args.slug]):
                return fail(f"unknown provider {args.slug!r}", 1)
            say(f"{args.slug} is due now: the scheduler syncs it within a second")
            return 0
        kind, values = _credentials_arguments(args)
        async with transaction(sessions) as session:
            await admin.set_credentials(session, args.slug, kind, values)
        say(f"credentials of {args.slug}: {kind or 'removed'} (never shown again)")
        return 0


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
