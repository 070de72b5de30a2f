"""Search areas as data: a radius around a point, or a lat/lon bounding box."""

from __future__ import annotations

from dataclasses import dataclass

from geo.distance import short_geodesic_meters


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

    @property
    def centre(self) -> tuple[float, float]:
        """(lat, lon) halfway between the edges: where a box search measures distances from."""
        return (self.min_lat + self.max_lat) / 2, (self.min_lon + self.max_lon) / 2

    def farthest_corner_meters(self) -> float:
        """Geodesic distance (to the millimetre) from the centre to the farthest corner: no
        point of the box is farther from the centre (along a parallel or a meridian edge the
        distance grows towards the corners), so a circle of this radius holds the whole box.
        Every `within` search asks for it: the cheap formula where it holds (a map viewport),
        the exact solution for larger boxes."""
        lat, lon = self.centre
        return max(
            short_geodesic_meters(lat, lon, corner_lat, corner_lon)
            for corner_lat in (self.min_lat, self.max_lat)
            for corner_lon in (self.min_lon, self.max_lon)
        )


def valid_lat(value: float) -> bool:
    return -90.0 <= value <= 90.0


def valid_lon(value: float) -> bool:
    return -180.0 <= value <= 180.0
