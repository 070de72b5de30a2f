"""Before any load: both servers must give the same answer for the same points.

Same vehicles in the same order, every field equal, distances within a centimetre (the API
computes geodesic distances with geographiclib, PostGIS with its own spheroid code). A
benchmark of two endpoints that answer different questions would measure nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import orjson

from bench.servers import Server
from bench.targets import Row

DISTANCE_TOLERANCE_M = 0.01
COORDINATE_TOLERANCE_DEG = 1e-9


@dataclass(slots=True)
class VerifyReport:
    points: int = 0
    vehicles: int = 0  # answers compared, summed over the points
    max_distance_diff_m: float = 0.0
    min_results: int | None = None
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.points > 0 and (self.min_results or 0) > 0


def _fetch(client: httpx.Client, server: Server, lat: str, lon: str) -> list[Row]:
    response = client.post(
        server.url,
        content=server.target.body(lat, lon),
        headers={"Content-Type": "application/json"},
    )
    if response.status_code != 200:
        raise RuntimeError(
            f"{server.target.key} answered {response.status_code}: {response.text[:500]}"
        )
    return server.target.rows(orjson.loads(response.content))


def _compare(point: str, a: Sequence[Row], b: Sequence[Row], report: VerifyReport) -> None:
    if [r[0] for r in a] != [r[0] for r in b]:
        ids_a, ids_b = [r[0] for r in a], [r[0] for r in b]
        first = next(
            (i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y),
            min(len(ids_a), len(ids_b)),
        )
        report.mismatches.append(
            f"{point}: ids differ from position {first} "
            f"(graphql {len(ids_a)} results, baseline {len(ids_b)}): "
            f"{ids_a[first : first + 3]} vs {ids_b[first : first + 3]}"
        )
        return
    for x, y in zip(a, b, strict=True):
        diff = abs(x[6] - y[6])
        report.max_distance_diff_m = max(report.max_distance_diff_m, diff)
        same = (
            x[1:4] == y[1:4]
            and abs(x[4] - y[4]) <= COORDINATE_TOLERANCE_DEG
            and abs(x[5] - y[5]) <= COORDINATE_TOLERANCE_DEG
            and diff <= DISTANCE_TOLERANCE_M
            and x[7:] == y[7:]
        )
        if not same:
            report.mismatches.append(f"{point}: {x[0]} differs: {x} vs {y}")
            return


def verify(graphql: Server, baseline: Server, points: Sequence[tuple[str, str]]) -> VerifyReport:
    report = VerifyReport()
    with httpx.Client(timeout=30.0) as client:
        for lat, lon in points:
            a = _fetch(client, graphql, lat, lon)
            b = _fetch(client, baseline, lat, lon)
            report.points += 1
            report.vehicles += len(a)
            report.min_results = (
                len(a) if report.min_results is None else min(report.min_results, len(a))
            )
            _compare(f"({lat}, {lon})", a, b, report)
    return report
