"""The provider-administration service the API calls (DESIGN.md: ``graphql_schema`` talks to
``app`` services only). The rules live with the provider records in ``providers/``; this module
is the one door to them from the API layer, so the API does not depend on how ``providers/`` is
organised inside."""

from __future__ import annotations

from providers.admin import (
    OverridesSummary,
    ProviderExists,
    ProviderUpdate,
    add_provider,
    config_view,
    credentials_kinds,
    delete_provider,
    overrides_summary,
    set_booking,
    set_credentials,
    set_enabled,
    set_overrides,
    set_private_to,
    update_provider,
)
from providers.dispatch import ProviderDisabled, force_sync
from providers.repository import get as get_provider
from providers.repository import health_records

__all__ = [
    "OverridesSummary",
    "ProviderDisabled",
    "ProviderExists",
    "ProviderUpdate",
    "add_provider",
    "config_view",
    "credentials_kinds",
    "delete_provider",
    "force_sync",
    "get_provider",
    "health_records",
    "overrides_summary",
    "set_booking",
    "set_credentials",
    "set_enabled",
    "set_overrides",
    "set_private_to",
    "update_provider",
]
