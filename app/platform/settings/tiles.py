"""Vector tiles (``GET /tiles/...``): from which zoom points replace clusters, how many points a
tile may carry, how long clients may cache a tile, and how many tile queries run at once.

Read by app/tiles/service.py and app/rest/tiles.py; docs/tiles.md describes them to clients.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from app.platform.settings.base import MobilityBaseSettings


class TileSettings(MobilityBaseSettings):
    # The highest zoom tiles are served at (MapLibre overzooms past it on its own).
    tiles_max_zoom: int = Field(default=20, ge=0, le=24)
    # Below this zoom, tiles are empty: a z4 tile over Europe reads most of the vehicles table
    # (1.6 to 2.3 s at a million vehicles), and a z0 tile of 5,000 zones takes a second, for a
    # map nobody rides from.
    tiles_min_zoom: int = Field(default=9, ge=0, le=24)
    # Vehicles are points from this zoom up and clusters (a count per cell) below it: a whole
    # city at zoom 11 is a few hundred clusters instead of tens of thousands of points.
    tiles_vehicle_points_from_zoom: int = Field(default=14, ge=0, le=24)
    # Stations are fewer and bigger: points from a lower zoom.
    tiles_station_points_from_zoom: int = Field(default=12, ge=0, le=24)
    # A point tile holding more than this many features is sent clustered instead, whatever
    # the zoom: never a truncated tile that silently leaves vehicles out.
    tiles_max_points: int = Field(default=10_000, ge=1)
    # Cache-Control max-age of a tile: short, since vehicles move; a client revalidates with
    # If-None-Match and gets 304 when its tile has not changed.
    tiles_max_age_seconds: int = Field(default=10, ge=0)
    # Cluster and zone tiles are kept this long per process and drawn once for every request
    # of the same tile at once (0: drawn for each request). A client may then see counts up to
    # this plus its own max-age old.
    tiles_cluster_cache_seconds: float = Field(default=5.0, ge=0)
    # How long a tile request waits for a slot (below), and how long a tile statement may run,
    # before it is answered 503 TILES_BUSY (Retry-After): a flood of expensive tiles is refused
    # after a moment instead of queueing without end.
    tiles_slot_wait_seconds: float = Field(default=2.0, gt=0)
    tiles_statement_timeout_seconds: float = Field(default=5.0, gt=0)
    # Tile queries running at once per process; more wait for a turn holding no database
    # connection, so a map flood never takes every connection of the search's pool.
    tiles_max_concurrent: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _zooms_in_range(self) -> TileSettings:
        for name in (
            "tiles_min_zoom",
            "tiles_vehicle_points_from_zoom",
            "tiles_station_points_from_zoom",
        ):
            if getattr(self, name) > self.tiles_max_zoom:
                raise ValueError(f"MOBILITY_{name.upper()} is past MOBILITY_TILES_MAX_ZOOM")
        return self
