"""The GBFS availability adapter (v1.x, v2.x, 3.0; 3.1 release candidates tolerated).

``adapter`` fetches (discovery, conditional GET, freshness); ``parse`` turns the documents into the
canonical snapshot and is pure, so it is tested without a network; ``overrides`` reads what a
deployment adds to or corrects in a provider's feed (docs/adapters.md, section 7).
"""

from adapters.gbfs.adapter import GbfsAdapter
from adapters.gbfs.catalog import DEFAULT_VEHICLE_TYPE_ID
from adapters.gbfs.overrides import FeedOverrides, parse_overrides
from adapters.gbfs.parse import parse_snapshot

__all__ = [
    "DEFAULT_VEHICLE_TYPE_ID",
    "FeedOverrides",
    "GbfsAdapter",
    "parse_overrides",
    "parse_snapshot",
]
