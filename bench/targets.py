"""The two servers under load: how to start each, what to send, how to read the answer.

Both answer the same question (available vehicles within 500 m, nearest 50, ten fields each)
over the same data; only the path through the code differs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bench import config

# What a map client asks for: the ten fields the later issue names. The schema has no plain
# pricing plan id field, so that one is read through the relation, as a client has to.
GRAPHQL_QUERY = (
    "query Nearby($lat: Float!, $lon: Float!, $radius: Float!, $first: Int!) { "
    "vehicles(near: {lat: $lat, lon: $lon, radiusMeters: $radius}, first: $first) { "
    "id providerId formFactor propulsionType lat lon distanceMeters currentRangeMeters "
    "isReserved pricingPlan { id } } }"
)

# One vehicle, normalised: id, provider id, form factor, propulsion, lat, lon, distance (m),
# range (m), reserved, pricing plan id.
Row = tuple[str, str, str, str, float, float, float, float | None, bool, str | None]


class AnswerError(Exception):
    """The server answered, but not with a list of vehicles."""


def _graphql_body(lat: str, lon: str) -> str:
    # Coordinates are inserted as the exact text of the points file, as the Lua script does.
    return (
        '{"query":'
        + orjson.dumps(GRAPHQL_QUERY).decode()
        + ',"variables":{"lat":'
        + lat
        + ',"lon":'
        + lon
        + f',"radius":{config.RADIUS_METERS:g},"first":{config.FIRST}}}}}'
    )


def _baseline_body(lat: str, lon: str) -> str:
    return (
        '{"lat":'
        + lat
        + ',"lon":'
        + lon
        + f',"radius":{config.RADIUS_METERS:g},"first":{config.FIRST}}}'
    )


def _graphql_rows(payload: Any) -> list[Row]:
    if not isinstance(payload, dict) or payload.get("errors"):
        raise AnswerError(f"GraphQL errors: {orjson.dumps(payload).decode()[:500]}")
    return [
        (
            v["id"],
            v["providerId"],
            v["formFactor"],
            v["propulsionType"],
            v["lat"],
            v["lon"],
            v["distanceMeters"],
            v["currentRangeMeters"],
            v["isReserved"],
            v["pricingPlan"]["id"] if v["pricingPlan"] else None,
        )
        for v in payload["data"]["vehicles"]
    ]


def _baseline_rows(payload: Any) -> list[Row]:
    if not isinstance(payload, list):
        raise AnswerError(f"not a list: {orjson.dumps(payload).decode()[:500]}")
    return [
        (
            v["id"],
            v["providerId"],
            v["formFactor"],
            v["propulsionType"],
            v["lat"],
            v["lon"],
            v["distanceMeters"],
            v["currentRangeMeters"],
            v["isReserved"],
            v["pricingPlanId"],
        )
        for v in payload
    ]


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    label: str
    app: str  # uvicorn import string
    factory: bool
    path: str
    # A JSON body with `%s` for lat and lon, as the Lua script fills it in per request.
    body_template: str
    # How a sampled response must begin: a non-empty list of vehicles, no error envelope.
    ok_prefix: str
    body: Callable[[str, str], str]
    rows: Callable[[Any], list[Row]]

    def uvicorn_command(self, port: int, workers: int) -> list[str]:
        command = [sys.executable, "-m", "uvicorn", self.app]
        if self.factory:
            command.append("--factory")
        # Identical server settings for both: access logs off (a log line per request would be
        # measured too), uvloop and httptools named rather than left to auto-detection.
        command += [
            "--workers",
            str(workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ]
        return command


GRAPHQL = Target(
    key="graphql",
    label="GraphQL `vehicles(near:)`",
    app="app.main:create_app",
    factory=True,
    path="/graphql",
    body_template=_graphql_body("%s", "%s"),
    ok_prefix='{"data":{"vehicles":[{',
    body=_graphql_body,
    rows=_graphql_rows,
)

BASELINE = Target(
    key="baseline",
    label="Baseline `POST /vehicles`",
    app="bench.baseline:app",
    factory=False,
    path="/vehicles",
    body_template=_baseline_body("%s", "%s"),
    ok_prefix='[{"id":',
    body=_baseline_body,
    rows=_baseline_rows,
)

TARGETS: tuple[Target, ...] = (GRAPHQL, BASELINE)
