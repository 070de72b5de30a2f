"""Before any load: the servers must answer correctly, or their numbers mean nothing.

- :func:`verify`: the GraphQL API and the baseline give the same answer for the same points:
  same vehicles in the same order, every field equal, distances within a centimetre (the API
  computes geodesic distances with its own formula, in whole millimetres, PostGIS with its own
  spheroid code); vehicles within that centimetre of each other are ties, in either order.
- :func:`check_filtered`: with ``filter: {formFactors: [CAR]}``, the API returns exactly
  ``min(first, available cars within the radius)`` cars, the count taken straight from PostGIS
  with a plain SQL ``count(*)``, not through the API; and they are the nearest ones.
- :func:`check_apq`: the persisted-query protocol (unknown hash, registering, hash only).
- :func:`compare_with`: a server's answers against answers kept from an earlier check (the
  Redis-down server against the baseline's).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import orjson

from app.platform.vocabulary import FormFactor
from bench import config
from bench.servers import Server
from bench.targets import (
    FILTERED_QUERY,
    GRAPHQL_APQ,
    GRAPHQL_QUERY,
    AnswerError,
    Row,
    Target,
    apq_body,
    graphql_body,
    graphql_rows,
)

DISTANCE_TOLERANCE_M = 0.01
COORDINATE_TOLERANCE_DEG = 1e-9
Point = tuple[str, str]


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

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "points": self.points,
            "vehicles": self.vehicles,
            "max_distance_diff_m": self.max_distance_diff_m,
            "min_results": self.min_results,
            "mismatches": self.mismatches[:10],
        }


def _rows(target: Target, response: httpx.Response) -> list[Row]:
    if response.status_code != 200:
        raise RuntimeError(f"{target.key} answered {response.status_code}: {response.text[:500]}")
    return target.rows(orjson.loads(response.content))


async def _fetch_all(
    url: str, target: Target, points: Sequence[Point], concurrency: int, timeout_s: float
) -> list[list[Row]]:
    # Concurrent: a server whose every answer is slow (Redis down, retries) is checked in the
    # time of a few requests, not of all of them.
    gate = asyncio.Semaphore(concurrency)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=timeout_s) as client:

        async def one(lat: str, lon: str) -> list[Row]:
            async with gate:
                response = await client.post(url, content=target.body(lat, lon), headers=headers)
            return _rows(target, response)

        return list(await asyncio.gather(*(one(lat, lon) for lat, lon in points)))


def fetch_answers(
    url: str,
    target: Target,
    points: Sequence[Point],
    *,
    concurrency: int = 1,
    timeout_s: float = 60.0,
) -> list[list[Row]]:
    return asyncio.run(_fetch_all(url, target, points, concurrency, timeout_s))


def _order_mismatch(a: Sequence[Row], b: Sequence[Row]) -> str | None:
    """Why the two answers are not the same vehicles in the same order, or None.

    Vehicles less than ``DISTANCE_TOLERANCE_M`` apart in distance are ties: the API ranks by
    the distance in whole millimetres and then by id, the baseline by PostGIS's own spheroid
    distance, so such a pair may come in either order, and at the cut either may be the last
    one. Anything else must agree: the distance at every rank, and every vehicle not in both
    answers must be a tie of the last one."""
    if len(a) != len(b):
        return f"{len(a)} results vs {len(b)}"
    for rank, (x, y) in enumerate(zip(a, b, strict=True)):
        if abs(x[6] - y[6]) > DISTANCE_TOLERANCE_M:
            return f"at rank {rank}: {x[0]} at {x[6]:.3f} m vs {y[0]} at {y[6]:.3f} m"
    ids_a, ids_b = {r[0] for r in a}, {r[0] for r in b}
    for rows, others, last in (
        (a, ids_b, b[-1][6] if b else 0.0),
        (b, ids_a, a[-1][6] if a else 0.0),
    ):
        for r in rows:
            if r[0] not in others and r[6] < last - DISTANCE_TOLERANCE_M:
                return f"{r[0]} at {r[6]:.3f} m is missing from the other answer"
    return None


def _compare(
    point: str, a: Sequence[Row], b: Sequence[Row], report: VerifyReport, names: tuple[str, str]
) -> None:
    if [r[0] for r in a] != [r[0] for r in b]:
        problem = _order_mismatch(a, b)
        if problem is not None:
            ids_a, ids_b = [r[0] for r in a], [r[0] for r in b]
            first = next(
                (i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y),
                min(len(ids_a), len(ids_b)),
            )
            report.mismatches.append(
                f"{point}: ids differ from position {first} "
                f"({names[0]} {len(ids_a)} results, {names[1]} {len(ids_b)}; {problem}): "
                f"{ids_a[first : first + 3]} vs {ids_b[first : first + 3]}"
            )
            return
    by_id = {r[0]: r for r in b}
    for x in a:
        y = by_id.get(x[0])
        if y is None:
            continue  # a tie at the cut (above)
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


def compare_with(
    answers: Sequence[Sequence[Row]],
    expected: Sequence[Sequence[Row]],
    points: Sequence[Point],
    names: tuple[str, str],
) -> VerifyReport:
    report = VerifyReport()
    for (lat, lon), a, b in zip(points, answers, expected, strict=True):
        report.points += 1
        report.vehicles += len(a)
        report.min_results = (
            len(a) if report.min_results is None else min(report.min_results, len(a))
        )
        _compare(f"({lat}, {lon})", a, b, report, names)
    return report


def verify(
    graphql: Server, baseline: Server, points: Sequence[Point]
) -> tuple[VerifyReport, list[list[Row]], list[list[Row]]]:
    """Compare the two servers; also returns both sets of answers, for later checks."""
    a = fetch_answers(graphql.url, graphql.target, points)
    b = fetch_answers(baseline.url, baseline.target, points)
    return compare_with(a, b, points, ("graphql", "baseline")), a, b


# --- target 3: the car filter against PostGIS ----------------------------------------------

_POINT = "ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography"
_AVAILABLE_WITHIN = f"""
FROM vehicles v JOIN providers p ON p.id = v.provider_id
WHERE p.enabled AND NOT v.is_reserved AND NOT v.is_disabled AND v.form_factor = $4
  AND ST_DWithin(v.geom::geography, {_POINT}, $3)
"""
# A plain count: how many vehicles the answer must hold (up to `first`).
COUNT_SQL = "SELECT count(*) " + _AVAILABLE_WITHIN
# Which ones: the nearest by geodesic (spheroid) distance, as the API orders them.
NEAREST_SQL = (
    f"SELECT v.id, ST_Distance(v.geom::geography, {_POINT}) AS d "
    + _AVAILABLE_WITHIN
    + ' ORDER BY d, v.id COLLATE "C" LIMIT $5'
)
# first = 50 (the load's) and a small one, so that "exactly `first` when that many exist" is
# exercised on a small fleet too, where 50 cars within 500 m are rare.
FILTER_FIRSTS: tuple[int, ...] = (config.FIRST, 3)
# Answers whose last two candidates are this close may legitimately swap at the cut.
_TIE_M = 0.01


@dataclass(slots=True)
class FilteredReport:
    points: int = 0
    requests: int = 0
    vehicles: int = 0
    # Per `first`: at how many points at least `first` cars were available (answer full).
    full: dict[int, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.requests > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "points": self.points,
            "requests": self.requests,
            "vehicles": self.vehicles,
            "firsts": list(FILTER_FIRSTS),
            "full": {str(k): v for k, v in self.full.items()},
            "mismatches": self.mismatches[:10],
        }


async def _check_filtered(url: str, points: Sequence[Point]) -> FilteredReport:
    report = FilteredReport(full={f: 0 for f in FILTER_FIRSTS})
    car = FormFactor.CAR.value
    radius = config.RADIUS_METERS
    conn = await asyncpg.connect(config.DATABASE_URL)
    try:
        async with httpx.AsyncClient(timeout=60.0) as client:
            for lat, lon in points:
                x, y = float(lon), float(lat)
                count = int(await conn.fetchval(COUNT_SQL, x, y, radius, car))
                nearest = await conn.fetch(NEAREST_SQL, x, y, radius, car, max(FILTER_FIRSTS) + 1)
                report.points += 1
                for first in FILTER_FIRSTS:
                    response = await client.post(
                        url,
                        content=graphql_body(FILTERED_QUERY, lat, lon, first),
                        headers={"Content-Type": "application/json"},
                    )
                    report.requests += 1
                    where = f"({lat}, {lon}) first {first}"
                    try:
                        if response.status_code != 200:
                            raise AnswerError(f"status {response.status_code}")
                        rows = graphql_rows(orjson.loads(response.content))
                    except (AnswerError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                        report.mismatches.append(f"{where}: {exc}")
                        continue
                    report.vehicles += len(rows)
                    expected = min(first, count)
                    if count >= first:
                        report.full[first] += 1
                    if len(rows) != expected:
                        report.mismatches.append(
                            f"{where}: {len(rows)} results, PostGIS counts {count} available "
                            f"cars within {radius:g} m, so {expected} expected"
                        )
                        continue
                    if any(r[2] != "CAR" for r in rows):
                        report.mismatches.append(f"{where}: a result that is not a CAR")
                        continue
                    want = {r["id"] for r in nearest[:first]}
                    got = {r[0] for r in rows}
                    tie = (
                        len(nearest) > first
                        and nearest[first]["d"] - nearest[first - 1]["d"] < _TIE_M
                    )
                    if got != want and not tie:
                        report.mismatches.append(
                            f"{where}: not the nearest cars: {sorted(got - want)[:3]} instead "
                            f"of {sorted(want - got)[:3]}"
                        )
    finally:
        await conn.close()
    return report


def check_filtered(url: str, points: Sequence[Point]) -> FilteredReport:
    return asyncio.run(_check_filtered(url, points))


# --- target 6: the persisted-query protocol ------------------------------------------------


@dataclass(slots=True)
class ApqReport:
    not_found_code: str | None = None  # errors[0].extensions.code for an unknown hash
    registered: bool = False  # the request with query + hash answered
    hash_only: VerifyReport = field(default_factory=VerifyReport)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.not_found_code == "PERSISTED_QUERY_NOT_FOUND"
            and self.registered
            and self.hash_only.ok
            and not self.problems
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "not_found_code": self.not_found_code,
            "registered": self.registered,
            "hash_only": self.hash_only.to_json(),
            "problems": self.problems[:10],
        }


def _post(client: httpx.Client, url: str, body: str) -> Any:
    response = client.post(url, content=body, headers={"Content-Type": "application/json"})
    if response.status_code != 200:
        raise AnswerError(f"status {response.status_code}: {response.text[:300]}")
    return orjson.loads(response.content)


def check_apq(url: str, points: Sequence[Point], expected: Sequence[Sequence[Row]]) -> ApqReport:
    """Unknown hash, then register the benchmark query's hash once, then hash-only requests
    whose answers must equal the full query's (``expected``, from the check before)."""
    report = ApqReport()
    lat, lon = points[0]
    with httpx.Client(timeout=60.0) as client:
        try:
            # A hash nobody registered (random text): the protocol's "send the query" answer.
            unknown = hashlib.sha256(os.urandom(16)).hexdigest()
            payload = _post(client, url, apq_body(lat, lon, digest=unknown))
            errors = payload.get("errors") or [{}]
            report.not_found_code = (errors[0].get("extensions") or {}).get("code")
            if report.not_found_code != "PERSISTED_QUERY_NOT_FOUND":
                report.problems.append(f"unknown hash answered {orjson.dumps(payload)[:300]!r}")
            graphql_rows(_post(client, url, apq_body(lat, lon, query=GRAPHQL_QUERY)))
            report.registered = True
        except (AnswerError, KeyError, TypeError, AttributeError, httpx.HTTPError) as exc:
            report.problems.append(f"registering the query failed: {exc}")
            return report
    try:
        answers = fetch_answers(url, GRAPHQL_APQ, points)
    except (AnswerError, RuntimeError, KeyError, TypeError, httpx.HTTPError) as exc:
        report.problems.append(f"hash-only request failed: {exc}")
        return report
    report.hash_only = compare_with(answers, expected, points, ("apq", "graphql"))
    return report
