"""Footpaths between a feed's stops: every pair of distinct stops (``location_type`` 0) within
the radius, both ways, at the walking speed; then ``transfers.txt``: a general transfer between
two stops (no route or trip given) is a footpath of its ``min_transfer_time``, or of the walk
between them when it gives none; ``transfer_type`` 3 (not possible) removes the pair. The
loader computes the same with PostGIS (`app/transit/loader.py`); `timetable_from_zip`
(`app/transit/gtfs.py`) needs no database."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from app.transit.gtfs_feed import TransferRow
from app.transit.timetable import FootpathRow, StopRow
from geo.distance import short_geodesic_meters

__all__ = [
    "DEFAULT_FOOTPATH_RADIUS_M",
    "DEFAULT_WALKING_SPEED_KMH",
    "footpath_rows",
    "nearby_stop_pairs",
    "walking_seconds",
]

# The defaults of the settings the loader reads (app/platform/settings/transit.py).
DEFAULT_FOOTPATH_RADIUS_M = 400.0
DEFAULT_WALKING_SPEED_KMH = 4.8  # QuoteSettings.walking_speed_kmh, the walking model's speed


def walking_seconds(meters: float, walking_speed_kmh: float) -> int:
    """The walk's time, whole seconds rounded up (the loader's SQL computes the same)."""
    return math.ceil(meters / (walking_speed_kmh / 3.6))


def nearby_stop_pairs(
    stops: Iterable[StopRow], radius_m: float
) -> Iterator[tuple[str, str, float]]:
    """Every ordered pair of distinct stops (``location_type`` 0) at most ``radius_m`` apart,
    with the geodesic distance: a grid of cells about the radius wide, so each stop is compared
    with its neighbours' cells only."""
    points = [s for s in stops if s.location_type == 0]
    if not points:
        return
    cell_lat = radius_m / 111_000.0  # a degree of latitude is at least 110.57 km
    cells: dict[tuple[int, int], list[StopRow]] = {}
    max_lat = max(abs(s.lat) for s in points)
    # A degree of longitude shrinks with the cosine of the latitude: cells as wide in metres
    # as they are high at the feed's highest latitude cover at least the radius everywhere.
    cell_lon = min(360.0, cell_lat / max(math.cos(math.radians(min(max_lat, 89.0))), 1e-6))
    for s in points:
        cells.setdefault((math.floor(s.lat / cell_lat), math.floor(s.lon / cell_lon)), []).append(s)
    for (i, j), members in cells.items():
        around = [
            other
            for di in (-1, 0, 1)
            for dj in (-1, 0, 1)
            for other in cells.get((i + di, j + dj), ())
        ]
        for a in members:
            for b in around:
                if a.stop_id == b.stop_id:
                    continue
                meters = short_geodesic_meters(a.lat, a.lon, b.lat, b.lon)
                if meters <= radius_m:
                    yield a.stop_id, b.stop_id, meters


def footpath_rows(
    nearby: Iterable[tuple[str, str, float]],
    transfers: Iterable[TransferRow],
    stops: Iterable[StopRow],
    walking_speed_kmh: float,
) -> list[FootpathRow]:
    """The footpaths from the stops near each other (``nearby``: ordered pairs with their
    distance, by `nearby_stop_pairs` or PostGIS) and the general transfers: the rule of the
    module's docstring, the one both the loader and `timetable_from_zip` apply."""
    paths: dict[tuple[str, str], int] = {
        (a, b): walking_seconds(meters, walking_speed_kmh) for a, b, meters in nearby
    }
    where = {s.stop_id: (s.lat, s.lon) for s in stops}
    for t in transfers:
        pair = (t.from_stop_id, t.to_stop_id)
        if t.from_stop_id == t.to_stop_id:
            continue
        if t.transfer_type == 3:
            paths.pop(pair, None)
            continue
        if t.min_transfer_time is not None:
            paths[pair] = t.min_transfer_time
        elif pair not in paths and t.from_stop_id in where and t.to_stop_id in where:
            (lat1, lon1), (lat2, lon2) = where[t.from_stop_id], where[t.to_stop_id]
            paths[pair] = walking_seconds(
                short_geodesic_meters(lat1, lon1, lat2, lon2), walking_speed_kmh
            )
    return [FootpathRow(a, b, s) for (a, b), s in paths.items()]
