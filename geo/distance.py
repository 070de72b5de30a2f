"""Geodesic distances on the WGS84 ellipsoid (the same model PostGIS geography uses)."""

from __future__ import annotations

import math

# geopy's geodesic distance is geographiclib underneath; calling it directly avoids building
# geopy Point objects per vehicle on the search hot path.
from geographiclib.geodesic import Geodesic

_WGS84 = Geodesic.WGS84
_EARTH_RADIUS_M = 6_371_008.8
WALKING_SPEED_M_PER_S = 1.3


def geodesic_meters(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    result = _WGS84.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)
    return float(result["s12"])


def haversine_meters(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Spherical distance; cheaper, within ~0.5% of geodesic. For rough bounds only."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def walking_seconds(meters: float) -> float:
    return meters / WALKING_SPEED_M_PER_S
