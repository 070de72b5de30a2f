"""The tile scheme: XYZ tiles over Web Mercator (EPSG:3857), as MapLibre, Mapbox and every
slippy map count them (x eastwards from the antimeridian, y southwards from the north edge).

A tile *owns* the points inside its bounds with the west and north edges included and the east
and south edges excluded, so that a point on a shared edge is drawn by exactly one tile, and the
clusters of neighbouring tiles never count a vehicle twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.platform.errors import InvalidInput

__all__ = ["EXTENT", "MAX_MERCATOR_LAT", "InvalidTile", "TileAddress"]

# Coordinates per tile side inside a tile (MVT's conventional extent).
EXTENT = 4096
# Web Mercator's edge: the latitude whose Mercator y equals the equator's length over 2π · π.
MAX_MERCATOR_LAT = math.degrees(math.atan(math.sinh(math.pi)))


class InvalidTile(InvalidInput):
    code = "INVALID_TILE"


@dataclass(frozen=True, slots=True)
class TileAddress:
    z: int
    x: int
    y: int

    @classmethod
    def parse(cls, z: int, x: int, y: int, *, max_zoom: int) -> TileAddress:
        if not 0 <= z <= max_zoom:
            raise InvalidTile(f"zoom {z} is outside 0 to {max_zoom}")
        side = 1 << z
        if not (0 <= x < side and 0 <= y < side):
            raise InvalidTile(f"tile {z}/{x}/{y} does not exist: x and y run from 0 to {side - 1}")
        return cls(z, x, y)

    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in WGS 84 degrees."""
        side = 1 << self.z
        west = self.x / side * 360.0 - 180.0
        east = (self.x + 1) / side * 360.0 - 180.0
        return west, _lat(self.y + 1, side), east, _lat(self.y, side)


def _lat(row: int, side: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1.0 - 2.0 * row / side))))
