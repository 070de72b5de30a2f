"""Settings from the environment, prefix ``MOBILITY_``. Tests build ``Settings(...)`` explicitly.

Each concern's settings are a class of their own in this package (app/settings/search.py:
:class:`SearchSettings`, …), all derived from :class:`MobilityBaseSettings` (the prefix, and
``environment``); :class:`Settings` is all of them at once, and is what the code base passes
around. A variable is named after its field whichever class reads it: ``MOBILITY_MAX_FIRST`` is
``max_first``. The published GBFS feeds' own settings (prefix ``MOBILITY_GBFS_PUBLISH_``) stay
with that feature, in app/gbfs_publish/settings.py.
"""

from __future__ import annotations

from functools import lru_cache

from app.settings.accounts import AccountSettings
from app.settings.base import MobilityBaseSettings
from app.settings.booking import BookingSettings
from app.settings.breaker import BreakerSettings
from app.settings.demo import DemoSettings
from app.settings.freshness import FreshnessSettings
from app.settings.graphql import GraphQLSettings
from app.settings.http import HttpSettings
from app.settings.live_updates import LiveUpdateSettings
from app.settings.mail import MailSettings
from app.settings.passwords import PasswordSettings
from app.settings.paths import PROJECT_ROOT, PathSettings
from app.settings.quotes import QuoteSettings
from app.settings.rate_limits import RateLimitSettings
from app.settings.sealing import SealingSettings
from app.settings.search import SearchSettings
from app.settings.stores import StoreSettings
from app.settings.sync import SyncSettings

__all__ = [
    "PROJECT_ROOT",
    "AccountSettings",
    "BookingSettings",
    "BreakerSettings",
    "DemoSettings",
    "FreshnessSettings",
    "GraphQLSettings",
    "HttpSettings",
    "LiveUpdateSettings",
    "MailSettings",
    "MobilityBaseSettings",
    "PasswordSettings",
    "PathSettings",
    "QuoteSettings",
    "RateLimitSettings",
    "SealingSettings",
    "SearchSettings",
    "Settings",
    "StoreSettings",
    "SyncSettings",
    "get_settings",
]


# The bases are listed last concern first: pydantic collects fields from the end of the MRO, so
# listed so the fields come concern by concern in the order of the one class they were before
# (environment, stores, search, … rate limits): repr(), model_dump() and the order of several
# validation errors keep that order.
class Settings(
    RateLimitSettings,
    BookingSettings,
    QuoteSettings,
    PasswordSettings,
    MailSettings,
    SealingSettings,
    AccountSettings,
    DemoSettings,
    LiveUpdateSettings,
    BreakerSettings,
    FreshnessSettings,
    SyncSettings,
    PathSettings,
    HttpSettings,
    GraphQLSettings,
    SearchSettings,
    StoreSettings,
):
    """Every concern's settings; model_config (prefix, nested delimiter, hidden input) is
    MobilityBaseSettings', which every base shares."""


@lru_cache
def get_settings() -> Settings:
    return Settings()
