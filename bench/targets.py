"""What is sent under load: the servers' apps, the request bodies, how to read the answers.

Every GraphQL target asks the question of the baseline (available vehicles within 500 m,
nearest 50, ten fields each) over the same data; they differ in how it is asked (a filter, a
persisted-query hash instead of the document) or in what the server has behind it (Redis down).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bench import config

# What a map client asks for: the ten fields the later issue names. The schema has no plain
# pricing plan id field, so that one is read through the relation, as a client has to.
_FIELDS = (
    "id providerId formFactor propulsionType lat lon distanceMeters currentRangeMeters "
    "isReserved pricingPlan { id }"
)
_VARIABLES = "$lat: Float!, $lon: Float!, $radius: Float!, $first: Int!"
_NEAR = "near: {lat: $lat, lon: $lon, radiusMeters: $radius}, first: $first"

GRAPHQL_QUERY = f"query Nearby({_VARIABLES}) {{ vehicles({_NEAR}) {{ {_FIELDS} }} }}"
# A map viewport: the vehicles of a box, nearest its centre (bench.profile --within).
WITHIN_QUERY = (
    f"query InBox($box: WithinInput!, $first: Int!) {{ vehicles(within: $box, first: $first) "
    f"{{ {_FIELDS} }} }}"
)
# Target 3: a selective filter (cars are about 5% of the fleet), the same fields.
FILTERED_QUERY = (
    f"query NearbyCars({_VARIABLES}) {{ "
    f"vehicles({_NEAR}, filter: {{formFactors: [CAR]}}) {{ {_FIELDS} }} }}"
)
# Target 6: Apollo APQ, the hash of the exact query text.
APQ_HASH = hashlib.sha256(GRAPHQL_QUERY.encode()).hexdigest()

# One vehicle, normalised: id, provider id, form factor, propulsion, lat, lon, distance (m),
# range (m), reserved, pricing plan id.
Row = tuple[str, str, str, str, float, float, float, float | None, bool, str | None]


class AnswerError(Exception):
    """The server answered, but not with a list of vehicles."""


def _variables(lat: str, lon: str, first: int) -> str:
    # Coordinates are inserted as the exact text of the points file, as the Lua script does.
    return (
        '{"lat":' + lat + ',"lon":' + lon + f',"radius":{config.RADIUS_METERS:g},"first":{first}}}'
    )


def graphql_body(query: str, lat: str, lon: str, first: int = config.FIRST) -> str:
    return (
        '{"query":'
        + orjson.dumps(query).decode()
        + ',"variables":'
        + _variables(lat, lon, first)
        + "}"
    )


def _persisted(digest: str) -> str:
    return '{"persistedQuery":{"version":1,"sha256Hash":"' + digest + '"}}'


def apq_body(lat: str, lon: str, *, digest: str = APQ_HASH, query: str | None = None) -> str:
    """A persisted-query request: the hash only, or (``query`` given) the registering one."""
    head = "" if query is None else '"query":' + orjson.dumps(query).decode() + ","
    return (
        "{"
        + head
        + '"extensions":'
        + _persisted(digest)
        + ',"variables":'
        + _variables(lat, lon, config.FIRST)
        + "}"
    )


def _baseline_body(lat: str, lon: str) -> str:
    return _variables(lat, lon, config.FIRST)


def graphql_rows(payload: Any) -> list[Row]:
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
    app: str  # uvicorn import string of the server that answers it
    factory: bool
    path: str
    # A JSON body with `%s` for lat and lon, as the Lua script fills it in per request.
    body_template: str
    # How a sampled response must begin (no error envelope; the Lua script also rejects any
    # body containing "errors").
    ok_prefix: str
    body: Callable[[str, str], str]
    rows: Callable[[Any], list[Row]]
    # "GET" targets (vector tiles) send no body: each request is a GET of ``path_template``
    # with ``%s`` filled by the fields of one line of the request list (``z x y``).
    method: str = "POST"
    path_template: str = ""
    # JSON answers are sampled for ``ok_prefix`` and an error envelope; binary ones (MVT) only
    # for not being a JSON document (every status is checked either way).
    json_answers: bool = True
    # The interpreter that runs uvicorn: this one, or another environment's (the tipg baseline
    # has a virtualenv of its own, bench/tipg.py).
    python: str | None = None
    health_path: str = "/health"

    def uvicorn_command(self, port: int, workers: int) -> list[str]:
        command = [self.python or sys.executable, "-m", "uvicorn", self.app]
        if self.factory:
            command.append("--factory")
        # Identical server settings for all: access logs off (a log line per request would be
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


def _graphql_target(key: str, label: str, body: Callable[[str, str], str], ok: str) -> Target:
    return Target(
        key=key,
        label=label,
        app="app.main:create_app",
        factory=True,
        path="/graphql",
        body_template=body("%s", "%s"),
        ok_prefix=ok,
        body=body,
        rows=graphql_rows,
    )


# A non-empty list: every query point lies inside a city box, where vehicles always are.
_NON_EMPTY = '{"data":{"vehicles":[{'

GRAPHQL = _graphql_target(
    "graphql",
    "GraphQL `vehicles(near:)`",
    lambda lat, lon: graphql_body(GRAPHQL_QUERY, lat, lon),
    _NON_EMPTY,
)
# Cars are sparse: a point with no car within 500 m is a correct, empty answer.
GRAPHQL_CARS = _graphql_target(
    "graphql_cars",
    "GraphQL, `filter: {formFactors: [CAR]}`",
    lambda lat, lon: graphql_body(FILTERED_QUERY, lat, lon),
    '{"data":{"vehicles":[',
)
GRAPHQL_APQ = _graphql_target(
    "graphql_apq", "GraphQL, persisted query (APQ hash only)", apq_body, _NON_EMPTY
)
# Same request as GRAPHQL, to a server whose Redis URL points where nothing listens.
GRAPHQL_REDIS_DOWN = _graphql_target(
    "graphql_redis_down",
    "GraphQL, Redis down (PostGIS fallback)",
    lambda lat, lon: graphql_body(GRAPHQL_QUERY, lat, lon),
    _NON_EMPTY,
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

TARGETS: tuple[Target, ...] = (GRAPHQL, BASELINE, GRAPHQL_CARS, GRAPHQL_APQ, GRAPHQL_REDIS_DOWN)


def _no_body(lat: str, lon: str) -> str:
    raise TypeError("a tile target is a GET without a body")


def _no_rows(payload: Any) -> list[Row]:
    raise TypeError("a tile target answers a vector tile, not vehicle rows")


def tile_target(
    key: str,
    label: str,
    *,
    app: str,
    factory: bool,
    path_template: str,
    python: str | None = None,
    health_path: str = "/health",
) -> Target:
    """A vector-tile load (bench/tiles.py): a GET of ``path_template`` per ``z x y`` line of
    the tile list; the answers are binary (MVT)."""
    return Target(
        key=key,
        label=label,
        app=app,
        factory=factory,
        path=path_template.split("%s", 1)[0].rstrip("/"),
        body_template="",
        ok_prefix="",
        body=_no_body,
        rows=_no_rows,
        method="GET",
        path_template=path_template,
        json_answers=False,
        python=python,
        health_path=health_path,
    )
