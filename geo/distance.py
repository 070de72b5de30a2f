"""Geodesic distances on the WGS84 ellipsoid (the same model PostGIS geography uses)."""

from __future__ import annotations

import math

# geopy's geodesic distance is geographiclib underneath; calling it directly avoids building
# geopy Point objects per vehicle on the search hot path.
from geographiclib.geodesic import Geodesic

_WGS84 = Geodesic.WGS84


def geodesic_meters(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    result = _WGS84.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)
    return float(result["s12"])


# The sphere Redis GEO measures on (its GEOSEARCH distances and radius filter).
_REDIS_EARTH_RADIUS_M = 6_372_797.560856


def sphere_meters(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on Redis GEO's sphere: the order its radius searches return."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * _REDIS_EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


# WGS84 ellipsoid.
_A = 6_378_137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
# Where the plane approximation below stays within a millimetre of the exact geodesic (checked
# in tests/geo/test_distance.py); elsewhere the exact solution is used.
SHORT_DISTANCE_LIMIT_M = 6_000.0
SHORT_DISTANCE_MAX_LAT = 60.0


def short_geodesic_meters(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance for points a few kilometres apart, about 50x cheaper than
    :func:`geodesic_meters`.

    Over such spans the ellipsoid is, to within a millimetre, a plane scaled by its two radii of
    curvature at the mean latitude (meridional M and prime-vertical N). Towards the poles the
    meridians converge too fast for that, so beyond ``SHORT_DISTANCE_MAX_LAT`` or
    ``SHORT_DISTANCE_LIMIT_M`` it returns the exact solution: correct everywhere, fast where
    shared vehicles are.
    """
    phi = math.radians((lat1 + lat2) / 2)
    sin_phi = math.sin(phi)
    w2 = 1 - _E2 * sin_phi * sin_phi
    n = _A / math.sqrt(w2)  # prime-vertical radius of curvature
    m = n * (1 - _E2) / w2  # meridional radius of curvature
    dlon = lon2 - lon1
    if dlon > 180:
        dlon -= 360
    elif dlon < -180:
        dlon += 360
    north = m * math.radians(lat2 - lat1)
    east = n * math.cos(phi) * math.radians(dlon)
    distance = math.hypot(north, east)
    if (
        distance > SHORT_DISTANCE_LIMIT_M
        or abs(lat1) > SHORT_DISTANCE_MAX_LAT
        or abs(lat2) > SHORT_DISTANCE_MAX_LAT
    ):
        return geodesic_meters(lat1, lon1, lat2, lon2)
    return distance


def ranking_meters(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The distance search ranks, shows and pages by: :func:`short_geodesic_meters` rounded
    to the millimetre.

    One function of the stored coordinates, whichever store (Redis or PostGIS) supplied the
    vehicle, so a page cursor's distance compares exactly with the next page's distances and
    vehicles at one spot tie exactly (then the id decides). Rounding also makes those
    comparisons robust to last-bit differences of floating point (another libm, another CPU):
    only a distance within a few ulps of a half-millimetre boundary could come out differently.
    A millimetre is far below what a vehicle's reported position means.

    The formula of :func:`short_geodesic_meters`, inlined: this runs for every candidate of
    every search, and the call and the module lookups were a tenth of a search's own time.
    """
    phi = (lat1 + lat2) * _HALF_RADIAN
    sin_phi = _sin(phi)
    w2 = 1.0 - _E2 * sin_phi * sin_phi
    n = _A / _sqrt(w2)
    dlon = lon2 - lon1
    if dlon > 180.0:
        dlon -= 360.0
    elif dlon < -180.0:
        dlon += 360.0
    distance = _hypot(
        n * _ONE_MINUS_E2 / w2 * (lat2 - lat1) * _RADIAN, n * _cos(phi) * dlon * _RADIAN
    )
    if (
        distance > SHORT_DISTANCE_LIMIT_M
        or abs(lat1) > SHORT_DISTANCE_MAX_LAT
        or abs(lat2) > SHORT_DISTANCE_MAX_LAT
    ):
        distance = geodesic_meters(lat1, lon1, lat2, lon2)
    return round(distance * 1000.0) / 1000.0


_RADIAN = math.pi / 180.0
_HALF_RADIAN = _RADIAN / 2.0
_ONE_MINUS_E2 = 1.0 - _E2
_sin, _cos, _sqrt, _hypot = math.sin, math.cos, math.sqrt, math.hypot
