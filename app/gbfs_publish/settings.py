"""What the published GBFS feeds say about us, the re-publisher, rather than about an operator.

Env prefix ``MOBILITY_GBFS_PUBLISH_``. Kept apart from :class:`app.platform.settings.Settings`
because
only this feature reads it; tests override :func:`get_publish_settings` through FastAPI's
``dependency_overrides`` instead of patching the environment.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GbfsPublishSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOBILITY_GBFS_PUBLISH_")

    # GBFS 3.0 requires a technical contact for *this* feed: consumers report our outages to
    # us, not to the operator. A deployment sets its own.
    feed_contact_email: str = "gbfs-feeds@example.org"
    # When a provider's feeds give no ttl (GBFS 1.x files may omit it) or for the manifest.
    default_ttl_seconds: int = Field(default=60, ge=0)
    # Required in 3.0. The source's opening hours are not kept by the sync, and a v1/v2 feed
    # without system_hours means "24/7" (GBFS 2.3 §system_hours.json), so that is the default.
    opening_hours: str = "24/7"
    # Required in 3.0; for a provider whose feeds named no (valid IANA) time zone.
    fallback_timezone: str = "Etc/UTC"

    @field_validator("feed_contact_email")
    @classmethod
    def _looks_like_email(cls, value: str) -> str:
        local, at, domain = value.partition("@")
        if not (local and at and "." in domain):
            raise ValueError("MOBILITY_GBFS_PUBLISH_FEED_CONTACT_EMAIL must be an email address")
        return value

    @field_validator("fallback_timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        if value not in available_timezones():
            raise ValueError(f"{value!r} is not an IANA time zone")
        return value


@lru_cache
def get_publish_settings() -> GbfsPublishSettings:
    return GbfsPublishSettings()
