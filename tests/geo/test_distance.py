"""The cheap short-range geodesic agrees with geographiclib's exact solution."""

from __future__ import annotations

import random

from geographiclib.geodesic import Geodesic

from geo.distance import short_geodesic_meters


def test_short_geodesic_matches_geographiclib_within_a_millimetre() -> None:
    rng = random.Random(20261127)
    worst = 0.0
    for _ in range(20_000):
        lat = rng.uniform(-89, 89)
        lon = rng.uniform(-180, 180)
        # A destination up to 6 km away in any direction, solved exactly by geographiclib.
        azimuth, span = rng.uniform(0, 360), rng.uniform(0, 6_000)
        dest = Geodesic.WGS84.Direct(lat, lon, azimuth, span)
        got = short_geodesic_meters(lat, lon, dest["lat2"], dest["lon2"])
        worst = max(worst, abs(got - span))
    assert worst < 0.001, f"worst error {worst * 1000:.3f} mm"


def test_long_distances_and_the_antimeridian_fall_back_to_the_exact_solution() -> None:
    exact = Geodesic.WGS84.Inverse(52.52, 13.40, 48.85, 2.35)["s12"]
    assert short_geodesic_meters(52.52, 13.40, 48.85, 2.35) == exact
    across = Geodesic.WGS84.Inverse(0.0, 179.999, 0.0, -179.999)["s12"]
    assert abs(short_geodesic_meters(0.0, 179.999, 0.0, -179.999) - across) < 0.001
