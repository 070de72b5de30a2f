"""GTFS-Realtime in, as plain, immutable data: what a FeedMessage says (TripUpdates,
VehiclePositions and ServiceAlerts may come in one feed or, as most agencies publish them, in
three) as a `RealtimeSnapshot`, once parsed and validated (`app/transit/realtime_parse.py`);
`merge_snapshots` joins the kinds of one transit feed into the one snapshot departures and
journeys read (`app/transit/realtime_times.py` applies it to the timetable). Which alerts inform
what a rider looks at (`alerts_for`) is the informed entities' rule, here beside them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

__all__ = [
    "Alert",
    "AlertContext",
    "InformedEntity",
    "RealtimeSnapshot",
    "StopRelationship",
    "StopTimeEvent",
    "StopTimeUpdate",
    "TimeRange",
    "Translation",
    "TripDescriptor",
    "TripRelationship",
    "TripUpdate",
    "VehicleDescriptor",
    "VehiclePosition",
    "alerts_for",
    "merge_snapshots",
]


class TripRelationship(StrEnum):
    SCHEDULED = "SCHEDULED"
    ADDED = "ADDED"
    UNSCHEDULED = "UNSCHEDULED"
    CANCELED = "CANCELED"
    REPLACEMENT = "REPLACEMENT"
    DUPLICATED = "DUPLICATED"
    DELETED = "DELETED"
    NEW = "NEW"


class StopRelationship(StrEnum):
    SCHEDULED = "SCHEDULED"
    SKIPPED = "SKIPPED"
    NO_DATA = "NO_DATA"
    UNSCHEDULED = "UNSCHEDULED"


@dataclass(frozen=True, slots=True)
class TripDescriptor:
    trip_id: str | None
    route_id: str | None = None
    direction_id: int | None = None
    start_time: int | None = None  # seconds since the service day's start
    start_date: date | None = None
    schedule_relationship: TripRelationship = TripRelationship.SCHEDULED


@dataclass(frozen=True, slots=True)
class VehicleDescriptor:
    id: str | None
    label: str | None = None
    license_plate: str | None = None


@dataclass(frozen=True, slots=True)
class StopTimeEvent:
    """A predicted (or past) arrival or departure: a delay against the schedule, an absolute
    time, or both (then the time wins: `realtime_times.py`)."""

    delay: int | None = None
    time: int | None = None  # POSIX seconds
    uncertainty: int | None = None  # seconds; 0 means certain (a past event)


@dataclass(frozen=True, slots=True)
class StopTimeUpdate:
    stop_sequence: int | None
    stop_id: str | None
    arrival: StopTimeEvent | None = None
    departure: StopTimeEvent | None = None
    schedule_relationship: StopRelationship = StopRelationship.SCHEDULED
    assigned_stop_id: str | None = None  # a platform change (experimental in the spec)


@dataclass(frozen=True, slots=True)
class TripUpdate:
    entity_id: str
    trip: TripDescriptor
    stop_time_updates: tuple[StopTimeUpdate, ...] = ()
    vehicle: VehicleDescriptor | None = None
    timestamp: int | None = None  # when the vehicle's progress was measured
    delay: int | None = None  # the trip's delay, for stops without a stop time update


@dataclass(frozen=True, slots=True)
class VehiclePosition:
    entity_id: str
    trip: TripDescriptor | None
    vehicle: VehicleDescriptor | None
    lat: float | None
    lon: float | None
    bearing: float | None = None
    speed: float | None = None  # metres per second
    timestamp: int | None = None
    current_stop_sequence: int | None = None
    stop_id: str | None = None
    current_status: str | None = None  # INCOMING_AT, STOPPED_AT, IN_TRANSIT_TO
    occupancy_status: str | None = None


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: int | None  # POSIX seconds; None: since ever
    end: int | None  # None: for ever

    def contains(self, instant: float) -> bool:
        # The spec's interval: active from start (inclusive) to end (exclusive).
        return (self.start is None or instant >= self.start) and (
            self.end is None or instant < self.end
        )


@dataclass(frozen=True, slots=True)
class InformedEntity:
    """Whom an alert concerns: every field given must match (route and stop together mean
    that route at that stop)."""

    agency_id: str | None = None
    route_id: str | None = None
    route_type: int | None = None
    direction_id: int | None = None
    trip: TripDescriptor | None = None
    stop_id: str | None = None


@dataclass(frozen=True, slots=True)
class Translation:
    text: str
    language: str | None  # None: the feed's default language


@dataclass(frozen=True, slots=True)
class Alert:
    entity_id: str
    informed_entities: tuple[InformedEntity, ...]
    active_periods: tuple[TimeRange, ...] = ()  # none: active while it is in the feed
    cause: str = "UNKNOWN_CAUSE"
    effect: str = "UNKNOWN_EFFECT"
    severity: str = "UNKNOWN_SEVERITY"
    header: tuple[Translation, ...] = ()
    description: tuple[Translation, ...] = ()
    url: tuple[Translation, ...] = ()

    def active_at(self, instant: float) -> bool:
        return not self.active_periods or any(p.contains(instant) for p in self.active_periods)


def translated(texts: tuple[Translation, ...], language: str | None) -> str | None:
    """The text in ``language`` (its primary subtag matching: "en" finds "en-US"), else the
    untagged one, else the first."""
    if not texts:
        return None
    if language:
        wanted = language.lower().split("-")[0]
        for t in texts:
            if t.language and t.language.lower().split("-")[0] == wanted:
                return t.text
    for t in texts:
        if t.language is None:
            return t.text
    return texts[0].text


@dataclass(frozen=True, slots=True)
class AlertContext:
    """What the rider is looking at, as an alert's informed entities select it: a stop (its
    ids: a platform and its station, say), a route (its agency and type), a trip (its
    direction and service day)."""

    agency_id: str | None = None
    route_id: str | None = None
    route_type: int | None = None
    direction_id: int | None = None
    trip_id: str | None = None
    service_date: date | None = None
    stop_ids: Collection[str] = ()

    def selected_by(self, entity: InformedEntity) -> bool:
        # Every field the selector gives must be one the context has, and equal.
        given: list[tuple[object, object]] = [
            (entity.agency_id, self.agency_id),
            (entity.route_id, self.route_id),
            (entity.route_type, self.route_type),
            (entity.direction_id, self.direction_id),
        ]
        if entity.trip is not None:
            t = entity.trip
            given += [
                (t.trip_id, self.trip_id),
                (t.start_date, self.service_date),
                (t.route_id, self.route_id),
                (t.direction_id, self.direction_id),
            ]
        if entity.stop_id is not None and entity.stop_id not in self.stop_ids:
            return False
        return all(wanted is None or wanted == have for wanted, have in given)


def alerts_for(alerts: Iterable[Alert], at: float, context: AlertContext) -> list[Alert]:
    """The alerts active at ``at`` (POSIX seconds) that inform the context given. A selector
    naming a route and a stop applies only where both are in the context; one naming only a
    stop applies to everything at that stop."""
    return [
        alert
        for alert in alerts
        if alert.active_at(at) and any(context.selected_by(e) for e in alert.informed_entities)
    ]


@dataclass(frozen=True, slots=True)
class RealtimeSnapshot:
    """One feed's live data at one moment: what every API process reads."""

    timestamp: int | None  # the header's: when the producer made the feed (POSIX seconds)
    trip_updates: tuple[TripUpdate, ...] = ()
    vehicle_positions: tuple[VehiclePosition, ...] = ()
    alerts: tuple[Alert, ...] = ()
    # What validation dropped, by reason ("stop_time_update.no_stop": 2, ...).
    dropped: Mapping[str, int] = field(default_factory=dict)
    _by_trip: Mapping[str, tuple[TripUpdate, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_trip: dict[str, list[TripUpdate]] = {}
        for update in self.trip_updates:
            if update.trip.trip_id is not None:
                by_trip.setdefault(update.trip.trip_id, []).append(update)
        object.__setattr__(self, "_by_trip", {k: tuple(v) for k, v in by_trip.items()})

    def updates_for(self, trip_id: str) -> tuple[TripUpdate, ...]:
        """The trip updates naming this GTFS trip id (one per service day and start time)."""
        return self._by_trip.get(trip_id, ())

    def vehicle_for(self, trip_id: str) -> VehiclePosition | None:
        """The newest position of a vehicle serving this GTFS trip id."""
        found = [v for v in self.vehicle_positions if v.trip and v.trip.trip_id == trip_id]
        return max(found, key=lambda v: v.timestamp or 0, default=None)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


def merge_snapshots(snapshots: Iterable[RealtimeSnapshot]) -> RealtimeSnapshot:
    """One transit feed's kinds (TripUpdates, VehiclePositions, Alerts fetched apart) as one
    snapshot; its timestamp is the oldest of theirs (what it says holds since then)."""
    parts = list(snapshots)
    stamps = [s.timestamp for s in parts if s.timestamp is not None]
    dropped: Counter[str] = Counter()
    for s in parts:
        dropped.update(s.dropped)
    return RealtimeSnapshot(
        timestamp=min(stamps) if stamps else None,
        trip_updates=tuple(u for s in parts for u in s.trip_updates),
        vehicle_positions=tuple(v for s in parts for v in s.vehicle_positions),
        alerts=tuple(a for s in parts for a in s.alerts),
        dropped=dict(dropped),
    )
