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
    # Journeys (app/transit/journeys.py, docs/transit.md "Journeys"): stops this far from the
    # origin or destination are walked to or from; a shared vehicle may take the rider to or
    # from stops this far away; at most this many vehicles (the nearest of each operator and
    # form factor) are tried for the first and for the last mile.
    transit_access_walk_meters: float = Field(default=1_000.0, gt=0, le=5_000)
    transit_vehicle_access_meters: float = Field(default=3_000.0, gt=0, le=20_000)
    transit_vehicle_options: int = Field(default=4, ge=0, le=10)
    # A vehicle for the last mile is one parked at most this far from the stop alighted at.
    transit_egress_vehicle_walk_meters: float = Field(default=250.0, gt=0, le=2_000)
    # Parking a shared vehicle at a stop and reaching the platform: added between the ride's
    # end and the earliest boarding.
    transit_vehicle_handover_minutes: float = Field(default=2.0, ge=0, le=30)
    transit_max_transfers: int = Field(default=4, ge=0, le=8)
    transit_horizon_minutes: int = Field(default=360, ge=10, le=1_440)
    # Shared vehicles are offered only for a journey departing within this many minutes of
    # now: where they will be later is not known.
    transit_vehicles_within_minutes: int = Field(default=15, ge=0, le=120)
