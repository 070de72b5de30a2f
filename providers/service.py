"""Registering providers: validate the slug, the adapter and its config before storing."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import AdapterConfigError, load_adapter
from app.models import Provider
from app.platform.errors import InvalidInput
from providers import repository

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


async def register_provider(
    session: AsyncSession, *, slug: str, name: str | None, adapter: str, config: dict[str, Any]
) -> tuple[Provider, bool]:
    """Create or update a provider. Raises :class:`InvalidInput` with a clear message."""
    if not SLUG.match(slug):
        raise InvalidInput(
            f"provider id {slug!r} must be 1-63 characters of lowercase letters, digits, '-' or "
            "'_', starting with a letter or digit",
            code="INVALID_PROVIDER_ID",
        )
    try:
        load_adapter(adapter, config)
    except AdapterConfigError as exc:
        raise InvalidInput(str(exc), code="INVALID_PROVIDER_CONFIG") from exc
    return await repository.upsert(
        session, provider_id=slug, name=name or slug, adapter=adapter, config=config
    )
