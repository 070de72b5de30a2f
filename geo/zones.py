"""Geofencing rules: may a ride end (start, pass) here? GBFS 3.0 precedence, pure logic.

Finding the zones that contain a point is PostGIS's job; deciding what their rules say is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Rule:
    vehicle_type_ids: tuple[str, ...] | None  # None: every vehicle type
    ride_start_allowed: bool
    ride_end_allowed: bool
    ride_through_allowed: bool
    maximum_speed_kph: int | None = None
    # GBFS 2.3+: vehicles may only be parked at stations here.
    station_parking: bool | None = None

    def applies_to(self, vehicle_type_id: str | None) -> bool:
        return self.vehicle_type_ids is None or (
            vehicle_type_id is not None and vehicle_type_id in self.vehicle_type_ids
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rule:
        ids = data.get("vehicle_type_ids")
        return cls(
            vehicle_type_ids=tuple(ids) if ids is not None else None,
            ride_start_allowed=bool(data["ride_start_allowed"]),
            ride_end_allowed=bool(data["ride_end_allowed"]),
            ride_through_allowed=bool(data["ride_through_allowed"]),
            maximum_speed_kph=data.get("maximum_speed_kph"),
            station_parking=data.get("station_parking"),
        )


@dataclass(frozen=True, slots=True)
class ZoneCandidate:
    """A zone that contains the point, in feed order."""

    zone_id: str
    ordinal: int
    rules: tuple[Rule, ...]
    start: datetime | None = None
    end: datetime | None = None

    def active_at(self, now: datetime) -> bool:
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)


@dataclass(frozen=True, slots=True)
class RuleDecision:
    rule: Rule | None  # None: no rule at all applies (GBFS 2.x: unrestricted)
    zone_id: str | None  # None: decided by the global rules or by no rule
    source: str  # "zone", "global", "none"


def decide(
    zones: Sequence[ZoneCandidate],
    global_rules: Sequence[Rule],
    vehicle_type_id: str | None,
    now: datetime,
) -> RuleDecision:
    """The rule that governs ``vehicle_type_id`` at a point covered by ``zones``.

    GBFS 3.0: the earlier polygon wins over later overlapping ones, the earlier rule wins within a
    polygon, a polygon beats ``global_rules``, and polygons outside their start/end are ignored.
    A zone with no rule for this vehicle type does not decide for it.
    """
    for zone in sorted(zones, key=lambda z: z.ordinal):
        if not zone.active_at(now):
            continue
        for rule in zone.rules:
            if rule.applies_to(vehicle_type_id):
                return RuleDecision(rule, zone.zone_id, "zone")
    for rule in global_rules:
        if rule.applies_to(vehicle_type_id):
            return RuleDecision(rule, None, "global")
    return RuleDecision(None, None, "none")
