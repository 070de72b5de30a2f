"""The benchmark's answer check accepts near-ties in either order, and nothing else."""

from __future__ import annotations

from bench.targets import Row
from bench.verify import VerifyReport, _compare


def row(vid: str, distance: float, range_meters: float = 1000.0) -> Row:
    return (
        vid,
        "p",
        "SCOOTER_STANDING",
        "ELECTRIC",
        52.5,
        13.4,
        distance,
        range_meters,
        False,
        "x",
    )


def mismatches(a: list[Row], b: list[Row]) -> list[str]:
    report = VerifyReport()
    _compare("(52.5, 13.4)", a, b, report, ("graphql", "baseline"))
    return report.mismatches


def test_vehicles_a_millimetre_apart_may_come_in_either_order() -> None:
    # The API: the same millimetre, so by id; the baseline: by its sub-millimetre distances.
    api = [row("a", 10.0), row("b", 20.0004), row("c", 20.0), row("d", 30.0)]
    baseline = [row("a", 10.0), row("c", 20.0), row("b", 20.0004), row("d", 30.0)]
    assert mismatches(api, baseline) == []


def test_a_tie_at_the_cut_may_be_either_vehicle() -> None:
    api = [row("a", 10.0), row("b", 20.0)]
    baseline = [row("a", 10.0), row("z", 20.003)]
    assert mismatches(api, baseline) == []


def test_a_different_order_beyond_the_tolerance_is_a_mismatch() -> None:
    api = [row("a", 10.0), row("b", 20.0), row("c", 20.5)]
    baseline = [row("a", 10.0), row("c", 20.5), row("b", 20.0)]
    assert mismatches(api, baseline)


def test_a_missing_vehicle_that_is_no_tie_is_a_mismatch() -> None:
    assert mismatches([row("a", 10.0), row("b", 20.0)], [row("a", 10.0), row("z", 25.0)])
    assert mismatches([row("a", 10.0), row("b", 20.0)], [row("z", 10.0), row("b", 20.0)])


def test_fields_of_a_tied_vehicle_are_still_compared() -> None:
    api = [row("b", 20.0004), row("c", 20.0, range_meters=999.0)]
    baseline = [row("c", 20.0), row("b", 20.0004)]
    assert mismatches(api, baseline)
