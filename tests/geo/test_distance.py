"""The cheap short-range geodesic agrees with geographiclib's exact solution."""

from __future__ import annotations

import random

from geographiclib.geodesic import Geodesic

from geo.areas import BBox
from geo.distance import ranking_meters, short_geodesic_meters


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


def test_ranking_distance_is_the_geodesic_in_whole_millimetres() -> None:
    rng = random.Random(7)
    for _ in range(5_000):
        lat, lon = rng.uniform(-70, 70), rng.uniform(-180, 180)
        dest = Geodesic.WGS84.Direct(lat, lon, rng.uniform(0, 360), rng.uniform(0, 20_000))
        got = ranking_meters(lat, lon, dest["lat2"], dest["lon2"])
        assert abs(got - dest["s12"]) < 0.0015
        assert got == round(got * 1000) / 1000  # a whole number of millimetres, exactly
    # The same spot gives the same distance, to the bit: ties are ties.
    assert ranking_meters(52.5, 13.4, 52.51, 13.41) == ranking_meters(52.5, 13.4, 52.51, 13.41)


def test_no_point_of_a_box_is_farther_from_its_centre_than_its_farthest_corner() -> None:
    rng = random.Random(11)
    for _ in range(200):
        lat, lon = rng.uniform(-80, 78), rng.uniform(-178, 176)
        box = BBox(lat, lon, lat + rng.uniform(0.001, 2.0), lon + rng.uniform(0.001, 2.0))
        centre, reach = box.centre, box.farthest_corner_meters()
        for _ in range(50):
            # Points on the edges (where the farthest ones are) and inside.
            p_lat = rng.choice([box.min_lat, box.max_lat, rng.uniform(box.min_lat, box.max_lat)])
            p_lon = rng.choice([box.min_lon, box.max_lon, rng.uniform(box.min_lon, box.max_lon)])
            assert Geodesic.WGS84.Inverse(*centre, p_lat, p_lon)["s12"] <= reach + 0.001
