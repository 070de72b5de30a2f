"""The GBFS availability adapter (v1.x, v2.x, 3.0; 3.1 release candidates tolerated).

``adapter`` fetches (discovery, conditional GET, freshness); ``parse`` turns the documents into the
canonical snapshot and is pure, so it is tested without a network.
"""

from adapters.gbfs.adapter import GbfsAdapter
from adapters.gbfs.catalog import DEFAULT_VEHICLE_TYPE_ID
from adapters.gbfs.parse import parse_snapshot

__all__ = ["DEFAULT_VEHICLE_TYPE_ID", "GbfsAdapter", "parse_snapshot"]
