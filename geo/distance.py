"""Geodesic distances on the WGS84 ellipsoid (the same model PostGIS geography uses)."""

from __future__ import annotations

# geopy's geodesic distance is geographiclib underneath; calling it directly avoids building
# geopy Point objects per vehicle on the search hot path.
from geographiclib.geodesic import Geodesic

_WGS84 = Geodesic.WGS84


def geodesic_meters(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    result = _WGS84.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)
    return float(result["s12"])
