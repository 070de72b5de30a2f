"""Public transport: how GTFS feeds are fetched and which stops count as a walk apart.

Read by app/transit/loader.py (docs/transit.md, "Loading a feed").
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class TransitSettings(MobilityBaseSettings):
    # Stops at most this far apart (geodesic) are joined by a footpath, walked at the walking
    # model's speed (walking_speed_kmh); transfers.txt adds and overrides pairs.
    transit_footpath_radius_m: float = Field(default=400.0, gt=0, le=5_000)
    # A feed fetched by URL: at most this many bytes (a large city's zip is 100-200 MB), within
    # this many seconds for the whole download.
    transit_max_feed_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    transit_download_timeout_seconds: float = Field(default=300.0, gt=0)
