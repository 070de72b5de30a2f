"""Settings from the environment, prefix ``MOBILITY_``. Tests build ``Settings(...)`` explicitly.

Each concern's settings are a class of their own in this package (app/platform/settings/search.py:
:class:`SearchSettings`, …), all derived from :class:`MobilityBaseSettings` (the prefix, and
``environment``); :class:`Settings` is all of them at once, and is what the code base passes
around. A variable is named after its field whichever class reads it: ``MOBILITY_MAX_FIRST`` is
``max_first``. The published GBFS feeds' own settings (prefix ``MOBILITY_GBFS_PUBLISH_``) stay
with that feature, in app/gbfs_publish/settings.py.
"""

from __future__ import annotations

from functools import lru_cache

from app.platform.settings.accounts import AccountSettings
from app.platform.settings.base import MobilityBaseSettings
from app.platform.settings.booking import BookingSettings
from app.platform.settings.breaker import BreakerSettings
from app.platform.settings.demo import DemoSettings
from app.platform.settings.freshness import FreshnessSettings
from app.platform.settings.graphql import GraphQLSettings
from app.platform.settings.http import HttpSettings
from app.platform.settings.live_updates import LiveUpdateSettings
from app.platform.settings.logs import LogSettings
from app.platform.settings.mail import MailSettings
from app.platform.settings.metrics import MetricsSettings
from app.platform.settings.passwords import PasswordSettings
from app.platform.settings.paths import PROJECT_ROOT, PathSettings
from app.platform.settings.quotes import QuoteSettings
from app.platform.settings.rate_limits import RateLimitSettings
from app.platform.settings.sealing import SealingSettings
from app.platform.settings.search import SearchSettings
from app.platform.settings.shutdown import ShutdownSettings
from app.platform.settings.stores import StoreSettings
from app.platform.settings.sync import SyncSettings
from app.platform.settings.tiles import TileSettings
from app.platform.settings.tracing import TracingSettings
from app.platform.settings.transit import TransitSettings
from app.platform.settings.transit_realtime import TransitRealtimeSettings
from app.platform.settings.web import WebSettings

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
    "LogSettings",
    "MailSettings",
    "MetricsSettings",
    "MobilityBaseSettings",
    "PasswordSettings",
    "PathSettings",
    "QuoteSettings",
    "RateLimitSettings",
    "SealingSettings",
    "SearchSettings",
    "Settings",
    "ShutdownSettings",
    "StoreSettings",
    "SyncSettings",
    "TileSettings",
    "TracingSettings",
    "TransitRealtimeSettings",
    "TransitSettings",
    "WebSettings",
    "get_settings",
]


# The bases are listed last concern first: pydantic collects fields from the end of the MRO, so
# listed so the fields come concern by concern in the order of the one class they were before
# (environment, stores, search, … rate limits): repr(), model_dump() and the order of several
# validation errors keep that order.
class Settings(
    TransitRealtimeSettings,
    TransitSettings,
    ShutdownSettings,
    MetricsSettings,
    LogSettings,
    TracingSettings,
    WebSettings,
    TileSettings,
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
