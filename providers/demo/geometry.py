"""Geometry over a few kilometres of central Berlin: flat-earth offsets, polygons, sampling, ids.

Rings are closed (lon, lat) tuples, counter-clockwise as RFC 7946 wants exterior rings; the
hand-drawn places here are where the operators' zones are and where vehicles may not park.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from typing import Final, TypeAlias

LonLat: TypeAlias = tuple[float, float]
Ring: TypeAlias = tuple[LonLat, ...]

_METRES_PER_DEGREE_LAT: Final = 111_320.0


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """Move by metres on a local flat approximation: exact enough over a few kilometres."""
    return (
        lat + north_m / _METRES_PER_DEGREE_LAT,
        lon + east_m / (_METRES_PER_DEGREE_LAT * math.cos(math.radians(lat))),
    )


def _inside(ring: Ring, lat: float, lon: float) -> bool:
    """Ray casting point-in-polygon on a closed (lon, lat) ring."""
    inside = False
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _closed(points: list[LonLat]) -> Ring:
    return (*points, points[0])


def circle(centre: tuple[float, float], radius_m: float, sides: int = 16) -> Ring:
    """A regular polygon, counter-clockwise as RFC 7946 wants exterior rings."""
    points = []
    for i in range(sides):
        angle = 2 * math.pi * i / sides
        lat, lon = _offset(*centre, radius_m * math.sin(angle), radius_m * math.cos(angle))
        points.append((round(lon, 6), round(lat, 6)))
    return _closed(points)


# Hand-drawn outlines (lon, lat), counter-clockwise.
MUSEUM_ISLAND: Final = _closed(
    [
        (13.3955, 52.5228),
        (13.3975, 52.5182),
        (13.4010, 52.5164),
        (13.4036, 52.5174),
        (13.4016, 52.5214),
        (13.3986, 52.5236),
    ]
)
ALEXANDERPLATZ_PEDESTRIAN: Final = _closed(
    [(13.4098, 52.5211), (13.4156, 52.5210), (13.4161, 52.5233), (13.4114, 52.5241)]
)
VOLKSPARK_FRIEDRICHSHAIN: Final = _closed(
    [(13.4265, 52.5262), (13.4395, 52.5252), (13.4402, 52.5300), (13.4290, 52.5312)]
)


def sample_point(
    rng: random.Random,
    around: tuple[float, float],
    radius_m: float,
    excluded: tuple[Ring, ...],
    fallback: tuple[float, float],
) -> tuple[float, float]:
    """A uniform point within ``radius_m`` of ``around``, outside every ``excluded`` ring."""
    for _ in range(64):
        distance = radius_m * math.sqrt(rng.random())
        angle = rng.uniform(0.0, 2 * math.pi)
        lat, lon = _offset(*around, distance * math.sin(angle), distance * math.cos(angle))
        if not any(_inside(ring, lat, lon) for ring in excluded):
            return lat, lon
    return fallback  # practically unreachable: the exclusions are small next to the radius


def token(*parts: object) -> str:
    """A stable random-looking id: GBFS wants vehicle ids that reveal nothing."""
    text = ":".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
