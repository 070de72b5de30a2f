"""GBFS 3.0 geofencing precedence, rule by rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from geo.zones import Rule, ZoneCandidate, decide

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def rule(end: bool, types: tuple[str, ...] | None = None) -> Rule:
    return Rule(types, ride_start_allowed=end, ride_end_allowed=end, ride_through_allowed=True)


def test_earlier_polygon_wins_over_later_overlapping_polygon() -> None:
    zones = [ZoneCandidate("late", 5, (rule(True),)), ZoneCandidate("early", 1, (rule(False),))]
    decision = decide(zones, [rule(True)], "t", NOW)
    assert (decision.zone_id, decision.rule and decision.rule.ride_end_allowed) == ("early", False)


def test_earlier_rule_wins_within_a_polygon() -> None:
    zone = ZoneCandidate("z", 0, (rule(False, ("t",)), rule(True)))
    assert decide([zone], [], "t", NOW).rule == rule(False, ("t",))
    assert decide([zone], [], "other", NOW).rule == rule(True)


def test_zone_without_a_rule_for_the_type_defers_to_global_rules() -> None:
    zone = ZoneCandidate("z", 0, (rule(True, ("bike",)),))
    decision = decide([zone], [rule(False)], "car", NOW)
    assert (decision.source, decision.zone_id) == ("global", None)
    assert decision.rule == rule(False)


def test_zone_outside_its_time_window_is_ignored() -> None:
    expired = ZoneCandidate("z", 0, (rule(False),), end=NOW - timedelta(minutes=1))
    future = ZoneCandidate("f", 1, (rule(False),), start=NOW + timedelta(hours=1))
    assert decide([expired, future], [rule(True)], "t", NOW).source == "global"


def test_no_zone_and_no_global_rule_means_unrestricted() -> None:
    decision = decide([], [], "t", NOW)
    assert (decision.rule, decision.source) == (None, "none")
