"""Interleaved rounds are merged into one figure per target the way bench/measure.py says."""

from __future__ import annotations

from typing import Any

import pytest

from bench.measure import merge_rounds


def _round(
    requests: int, seconds: float, p99: float, busy: float, server_ms: float
) -> dict[str, Any]:
    return {
        "label": "GraphQL",
        "url": "http://x",
        "connections": 16,
        "wrk": {
            "requests": requests,
            "duration_s": seconds,
            "bytes": requests * 10,
            "rps": requests / seconds,
            "errors": {"timeout": 1},
            "latency_ms": {"p50": p99 / 3, "p99": p99},
            "distribution_ms": [[50.0, p99 / 3], [99.0, p99]],
            "responses": requests,
            "bad_status": 0,
            "checked": requests // 50,
            "bad_body": 0,
            "example": "",
        },
        "warmup": None,
        "fallbacks": 2,
        "cpu": {
            "server_ms_per_request": server_ms,
            "postgres_ms_per_request": 0.0,
            "redis_ms_per_request": 0.5,
            "wrk_ms_per_request": 0.1,
            "machine_busy_percent": busy,
            "seconds": seconds,
        },
    }


def test_rounds_merge_into_totals_and_request_weighted_figures() -> None:
    a, b = _round(1000, 10.0, 30.0, 90.0, 1.0), _round(3000, 10.0, 10.0, 70.0, 0.6)
    merged = merge_rounds([a, b])
    assert merged["wrk"]["requests"] == 4000
    assert merged["wrk"]["rps"] == pytest.approx(4000 / 20.0)
    assert merged["wrk"]["latency_ms"]["p99"] == pytest.approx((30.0 * 1000 + 10.0 * 3000) / 4000)
    assert merged["wrk"]["distribution_ms"][1] == [99.0, pytest.approx(15.0)]
    assert merged["wrk"]["errors"] == {"timeout": 2}
    assert merged["fallbacks"] == 4
    assert merged["cpu"]["server_ms_per_request"] == pytest.approx((1.0 * 1000 + 0.6 * 3000) / 4000)
    assert merged["cpu"]["machine_busy_percent"] == pytest.approx(80.0)
    assert merged["rounds"] == 2 and merged["round_rps"] == [100.0, 300.0]


def test_one_round_is_left_as_measured() -> None:
    one = _round(500, 5.0, 20.0, 50.0, 1.0)
    assert merge_rounds([one]) == {**one, "rounds": 1}
