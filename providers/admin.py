"""Provider administration for staff: the one implementation behind the CLI and the admin
GraphQL mutations (add, update, enable, disable, delete, force a sync, set credentials, set
feed overrides).

Every function validates before writing and raises a :class:`DomainError` with a stable code;
callers own the transaction (``app.platform.db.transaction``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import AdapterConfigError
from adapters.booking import load_booking_operator
from adapters.credentials import (
    CredentialsError,
    OperatorCredentials,
    credentials_values,
    parse_credentials,
)
from app.models import Organisation, Provider, ProviderCredentials
from app.platform.errors import DomainError, InvalidInput, NotFound
from providers import repository
from providers.service import register_provider


class ProviderExists(DomainError):
    code = "PROVIDER_EXISTS"


def _not_found(slug: str) -> NotFound:
    return NotFound(f"no provider {slug!r}", code="PROVIDER_NOT_FOUND")


async def _get(session: AsyncSession, slug: str) -> Provider:
    provider = await repository.get(session, slug)
    if provider is None:
        raise _not_found(slug)
    return provider


async def add_provider(
    session: AsyncSession,
    *,
    slug: str,
    name: str | None,
    adapter: str,
    config: dict[str, Any],
    enabled: bool = True,
) -> Provider:
    if await repository.get(session, slug) is not None:
        raise ProviderExists(f"provider {slug!r} exists already; update it instead")
    provider, _ = await register_provider(
        session, slug=slug, name=name, adapter=adapter, config=config
    )
    provider.enabled = enabled
    await session.flush()
    return provider


@dataclass(frozen=True, slots=True)
class ProviderUpdate:
    name: str | None = None
    adapter: str | None = None
    config: dict[str, Any] | None = None


async def update_provider(session: AsyncSession, slug: str, changes: ProviderUpdate) -> Provider:
    provider = await _get(session, slug)
    if changes.adapter is None and changes.config is None:
        if changes.name is not None:
            provider.name = changes.name
        await session.flush()
        return provider
    # A new adapter or config is validated as a whole, exactly as when it was added.
    updated, _ = await register_provider(
        session,
        slug=slug,
        name=changes.name or provider.name,
        adapter=changes.adapter or provider.adapter,
        config=changes.config if changes.config is not None else dict(provider.config),
    )
    return updated


async def set_overrides(
    session: AsyncSession, slug: str, overrides: dict[str, Any] | None
) -> Provider:
    """Replace the provider's feed overrides (``None`` removes them), keeping the rest of its
    config. Validated with the whole config by its adapter, as when it was added: a bad
    override is ``INVALID_PROVIDER_CONFIG`` and nothing changes."""
    provider = await _get(session, slug)
    config = {key: value for key, value in provider.config.items() if key != "overrides"}
    if overrides:
        config["overrides"] = overrides
    return await update_provider(session, slug, ProviderUpdate(config=config))


_MASK = "***"


def config_view(config: dict[str, Any]) -> dict[str, Any]:
    """The provider's config as staff may see it: header values (API keys, say) masked.

    Credentials belong in ``set_credentials``, which never shows them; a header given in the
    config is treated the same way, since that is what it usually carries."""
    view = dict(config)
    headers = view.get("headers")
    if isinstance(headers, dict):
        view["headers"] = {name: _MASK for name in headers}
    return view


@dataclass(frozen=True, slots=True)
class OverridesSummary:
    """What a provider's feed overrides do, by id (for the API and the CLI)."""

    vehicle_type_ids: list[str]
    pricing_plan_ids: list[str]
    vehicle_type_map: dict[str, str]
    pricing_plan_map: dict[str, str]
    excluded_feeds: list[str]
    language: str | None


def overrides_summary(config: dict[str, Any]) -> OverridesSummary | None:
    """None when the provider has no overrides. Reads the stored config, which its adapter
    validated when it was stored."""
    raw = config.get("overrides")
    if not isinstance(raw, dict) or not raw:
        return None

    def ids(section: str, key: str) -> list[str]:
        records = raw.get(section)
        return [str(r.get(key)) for r in records if isinstance(r, dict)] if records else []

    def mapping(name: str) -> dict[str, str]:
        # By operator id: the database does not keep an object's key order.
        value = raw.get(name)
        return {str(k): str(value[k]) for k in sorted(value)} if isinstance(value, dict) else {}

    language = config.get("language")
    return OverridesSummary(
        vehicle_type_ids=ids("vehicle_types", "vehicle_type_id"),
        pricing_plan_ids=ids("pricing_plans", "plan_id"),
        vehicle_type_map=mapping("vehicle_type_map"),
        pricing_plan_map=mapping("pricing_plan_map"),
        excluded_feeds=[str(name) for name in raw.get("exclude_feeds") or []],
        language=language if isinstance(language, str) else None,
    )


def validate_booking(booking: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"operator": "<entry point>", "config": {…}}``, checked by loading the operator."""
    if booking is None:
        return None
    unknown = set(booking) - {"operator", "config"}
    if unknown or not isinstance(booking.get("operator"), str):
        raise InvalidInput(
            'booking must be {"operator": "<name>", "config": {...}}',
            code="INVALID_BOOKING_CONFIG",
        )
    config = booking.get("config") or {}
    if not isinstance(config, dict):
        raise InvalidInput("booking config must be an object", code="INVALID_BOOKING_CONFIG")
    try:
        load_booking_operator(booking["operator"], config)
    except AdapterConfigError as exc:
        raise InvalidInput(str(exc), code="INVALID_BOOKING_CONFIG") from exc
    return {"operator": booking["operator"], "config": config}


async def set_booking(session: AsyncSession, slug: str, booking: dict[str, Any] | None) -> Provider:
    """Give the provider a booking API (or take it away: riders then book in its own app)."""
    provider = await _get(session, slug)
    provider.booking = validate_booking(booking)
    provider.updated_at = datetime.now(UTC)
    await session.flush()
    return provider


async def set_private_to(
    session: AsyncSession, slug: str, organisation_id: uuid.UUID | None
) -> Provider:
    """Make the provider an organisation's private fleet (only its members and keys see and
    book it), or public again with None."""
    provider = await _get(session, slug)
    if organisation_id is not None and await session.get(Organisation, organisation_id) is None:
        raise NotFound(f"no organisation {organisation_id}", code="ORGANISATION_NOT_FOUND")
    provider.private_to = organisation_id
    provider.updated_at = datetime.now(UTC)
    await session.flush()
    return provider


async def set_enabled(session: AsyncSession, slug: str, enabled: bool) -> Provider:
    provider = await _get(session, slug)
    provider.enabled = enabled
    provider.updated_at = datetime.now(UTC)
    if enabled:
        provider.next_sync_at = None  # due at once: its data is probably old
    await session.flush()
    return provider


async def delete_provider(session: AsyncSession, slug: str) -> None:
    """Delete the provider and all its data (rows cascade). Clear its search index entries
    after the commit (:meth:`VehicleIndex.remove_provider`); until then, and if that fails,
    search does not show them anyway: it checks the enabled providers."""
    provider = await _get(session, slug)
    await session.delete(provider)
    await session.flush()


async def set_credentials(
    session: AsyncSession, slug: str, kind: str | None, values: dict[str, Any] | None
) -> OperatorCredentials | None:
    """Set (or with ``kind=None`` clear) the provider's operator credentials."""
    await _get(session, slug)
    if kind is None:
        await session.execute(
            delete(ProviderCredentials).where(ProviderCredentials.provider_id == slug)
        )
        return None
    try:
        credentials = parse_credentials(kind, values or {})
    except CredentialsError as exc:
        raise DomainError(str(exc), code="INVALID_CREDENTIALS") from exc
    # An upsert, not load-and-change: loading would open the old secret, and credentials that
    # cannot be opened (a key gone from MOBILITY_SECRETS_KEYS) are exactly what gets replaced.
    upsert = pg_insert(ProviderCredentials).values(
        provider_id=slug,
        kind=credentials.kind,
        secret=credentials_values(credentials),
        updated_at=datetime.now(UTC),
    )
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=[ProviderCredentials.provider_id],
            set_={
                "kind": upsert.excluded.kind,
                "secret": upsert.excluded.secret,
                "updated_at": upsert.excluded.updated_at,
            },
        ),
        execution_options={"synchronize_session": False},
    )
    # A ProviderCredentials row this session already holds must not keep the old values.
    for held in list(session.identity_map.values()):
        if isinstance(held, ProviderCredentials) and held.provider_id == slug:
            session.expire(held)
    return credentials


async def credentials_for(session: AsyncSession, slug: str) -> OperatorCredentials | None:
    """The stored credentials, for the adapter's outbound calls only."""
    row = await session.get(ProviderCredentials, slug)
    return parse_credentials(row.kind, row.secret) if row is not None else None


async def credentials_kinds(
    session: AsyncSession, slugs: list[str]
) -> dict[str, tuple[str, datetime]]:
    """Which providers have credentials, of what kind, since when: never the secret."""
    rows = await session.execute(
        select(
            ProviderCredentials.provider_id,
            ProviderCredentials.kind,
            ProviderCredentials.updated_at,
        ).where(ProviderCredentials.provider_id.in_(slugs))
    )
    return {r.provider_id: (r.kind, r.updated_at) for r in rows}
