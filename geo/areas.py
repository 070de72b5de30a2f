"""Search areas as data: a radius around a point, or a lat/lon bounding box."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Near:
    lat: float
    lon: float
    radius_meters: float


@dataclass(frozen=True, slots=True)
class BBox:
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float

    def contains(self, lat: float, lon: float) -> bool:
        return self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon


def valid_lat(value: float) -> bool:
    return -90.0 <= value <= 90.0


def valid_lon(value: float) -> bool:
    return -180.0 <= value <= 180.0
