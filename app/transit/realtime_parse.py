"""GTFS-Realtime's bytes parsed and validated (the plain data they become:
`app/transit/realtime.py`).

Validation. A body that is not a FeedMessage (bad protobuf, required fields missing, an unknown
`gtfs_realtime_version`, a DIFFERENTIAL feed, which we do not support) is a `RealtimeFeedError`:
the whole fetch failed. Inside a good message, a value out of range is dropped, not the message:
a field (a start date that is no date) or the smallest enclosing thing that no longer makes sense
without it (a stop time update naming no stop, a position off the globe, an alert informing
nobody); each drop is counted in `RealtimeSnapshot.dropped` by reason, for the feed's health.

Times stay as the feed gives them: POSIX seconds (`time`, timestamps, active periods) and
seconds of delay; `start_time` ("25:10:00") becomes seconds since the service day's start, the
timetable's own reference.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date

from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2 as pb

from app.transit.realtime import (
    Alert,
    InformedEntity,
    RealtimeSnapshot,
    StopRelationship,
    StopTimeEvent,
    StopTimeUpdate,
    TimeRange,
    Translation,
    TripDescriptor,
    TripRelationship,
    TripUpdate,
    VehicleDescriptor,
    VehiclePosition,
)

__all__ = ["RealtimeFeedError", "parse_feed", "parse_gtfs_time"]

# Versions of the specification whose messages this reads (2.0 added nothing that breaks 1.0).
SUPPORTED_VERSIONS = frozenset({"1.0", "2.0"})
# POSIX seconds we take for an instant: 2000-01-01 to 2100-01-01. A 0 (unset), a millisecond
# value or garbage falls outside.
MIN_POSIX = 946_684_800
MAX_POSIX = 4_102_444_800
# A delay of more than a day either way is not a delay (a time sent in the delay field).
MAX_DELAY_SECONDS = 86_400
# GTFS times run past 24:00:00 for trips after midnight; beyond 48 h nothing real runs.
MAX_GTFS_TIME = 48 * 3600


class RealtimeFeedError(ValueError):
    """The bytes are not a GTFS-Realtime feed we can read; the message says why (no stack,
    no host: it is shown to staff as the feed's last error)."""


def parse_feed(body: bytes) -> RealtimeSnapshot:
    """A FeedMessage's bytes as a validated snapshot; `RealtimeFeedError` if they are not one."""
    message = pb.FeedMessage()
    try:
        message.ParseFromString(body)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise RealtimeFeedError(f"not a GTFS-Realtime FeedMessage ({exc})") from None
    if not message.IsInitialized():  # required fields (the header, entity ids) missing
        missing = ", ".join(message.FindInitializationErrors()[:5])
        raise RealtimeFeedError(f"a GTFS-Realtime FeedMessage without its required {missing}")
    header = message.header
    if header.gtfs_realtime_version not in SUPPORTED_VERSIONS:
        raise RealtimeFeedError(
            f"gtfs_realtime_version {header.gtfs_realtime_version[:20]!r} is not one we read "
            f"({', '.join(sorted(SUPPORTED_VERSIONS))})"
        )
    if header.incrementality == pb.FeedHeader.DIFFERENTIAL:
        raise RealtimeFeedError("DIFFERENTIAL GTFS-Realtime feeds are not supported")
    dropped: Counter[str] = Counter()
    timestamp = (
        _instant(header.timestamp, dropped, "header.timestamp") if header.timestamp else None
    )
    trip_updates: list[TripUpdate] = []
    vehicles: list[VehiclePosition] = []
    alerts: list[Alert] = []
    for entity in message.entity:
        if entity.is_deleted:  # only meaningful in a differential feed
            dropped["entity.deleted"] += 1
            continue
        found = False
        if entity.HasField("trip_update"):
            found = True
            update = _trip_update(entity.id, entity.trip_update, dropped)
            if update is not None:
                trip_updates.append(update)
        if entity.HasField("vehicle"):
            found = True
            position = _vehicle_position(entity.id, entity.vehicle, dropped)
            if position is not None:
                vehicles.append(position)
        if entity.HasField("alert"):
            found = True
            alert = _alert(entity.id, entity.alert, dropped)
            if alert is not None:
                alerts.append(alert)
        if not found:
            # A shape, a stop or trip modifications (experimental), or nothing: not read.
            dropped["entity.unread"] += 1
    return RealtimeSnapshot(
        timestamp=timestamp,
        trip_updates=tuple(trip_updates),
        vehicle_positions=tuple(vehicles),
        alerts=tuple(alerts),
        dropped=dict(dropped),
    )


def parse_gtfs_time(value: str) -> int | None:
    """ "H:MM:SS" or "HH:MM:SS" (past 24:00:00 allowed) as seconds, None if it is not one."""
    parts = value.split(":")
    if (
        len(parts) != 3
        or not all(p.isdigit() for p in parts)
        or not 1 <= len(parts[0]) <= 2
        or len(parts[1]) != 2
        or len(parts[2]) != 2
    ):
        return None
    hours, minutes, seconds = (int(p) for p in parts)
    if minutes > 59 or seconds > 59:
        return None
    total = hours * 3600 + minutes * 60 + seconds
    return total if total <= MAX_GTFS_TIME else None


def _text(value: str) -> str | None:
    return value or None


def _instant(value: int, dropped: Counter[str], what: str) -> int | None:
    if MIN_POSIX <= value <= MAX_POSIX:
        return value
    dropped[what] += 1
    return None


def _delay(value: int, dropped: Counter[str], what: str) -> int | None:
    if abs(value) <= MAX_DELAY_SECONDS:
        return value
    dropped[what] += 1
    return None


def _date(value: str) -> date | None:
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


_TRIP_RELATIONSHIPS = {
    v.number: TripRelationship(v.name)
    for v in pb.TripDescriptor.ScheduleRelationship.DESCRIPTOR.values
    if v.name in TripRelationship.__members__
}
_STOP_RELATIONSHIPS = {
    v.number: StopRelationship(v.name)
    for v in pb.TripUpdate.StopTimeUpdate.ScheduleRelationship.DESCRIPTOR.values
    if v.name in StopRelationship.__members__
}


def _trip_descriptor(
    message: pb.TripDescriptor, dropped: Counter[str], what: str
) -> TripDescriptor | None:
    start_time: int | None = None
    if message.start_time:
        start_time = parse_gtfs_time(message.start_time)
        if start_time is None:
            dropped[f"{what}.start_time"] += 1
    start_date: date | None = None
    if message.start_date:
        start_date = _date(message.start_date)
        if start_date is None:
            # Without it the service day is inferred (realtime_times.py): better than dropping
            # the whole update, and never a wrong date taken on trust.
            dropped[f"{what}.start_date"] += 1
    relationship = _TRIP_RELATIONSHIPS.get(message.schedule_relationship)
    if relationship is None:
        dropped[f"{what}.schedule_relationship"] += 1
        return None
    direction: int | None = None
    if message.HasField("direction_id"):
        if message.direction_id in (0, 1):
            direction = message.direction_id
        else:
            dropped[f"{what}.direction_id"] += 1
    return TripDescriptor(
        trip_id=_text(message.trip_id),
        route_id=_text(message.route_id),
        direction_id=direction,
        start_time=start_time,
        start_date=start_date,
        schedule_relationship=relationship,
    )


def _vehicle_descriptor(message: pb.VehicleDescriptor) -> VehicleDescriptor | None:
    if not (message.id or message.label or message.license_plate):
        return None
    return VehicleDescriptor(
        id=_text(message.id), label=_text(message.label), license_plate=_text(message.license_plate)
    )


def _event(message: pb.TripUpdate.StopTimeEvent, dropped: Counter[str]) -> StopTimeEvent | None:
    delay = (
        _delay(message.delay, dropped, "stop_time_event.delay")
        if message.HasField("delay")
        else None
    )
    time = (
        _instant(message.time, dropped, "stop_time_event.time")
        if message.HasField("time")
        else None
    )
    uncertainty: int | None = None
    if message.HasField("uncertainty"):
        if message.uncertainty >= 0:
            uncertainty = message.uncertainty
        else:
            dropped["stop_time_event.uncertainty"] += 1
    if delay is None and time is None:
        if not (message.HasField("delay") or message.HasField("time")):
            dropped["stop_time_event.empty"] += 1  # else counted above, by what was wrong
        return None
    return StopTimeEvent(delay=delay, time=time, uncertainty=uncertainty)


def _stop_time_update(
    message: pb.TripUpdate.StopTimeUpdate, dropped: Counter[str]
) -> StopTimeUpdate | None:
    sequence = message.stop_sequence if message.HasField("stop_sequence") else None
    stop_id = _text(message.stop_id)
    if sequence is None and stop_id is None:
        dropped["stop_time_update.no_stop"] += 1
        return None
    relationship = _STOP_RELATIONSHIPS.get(message.schedule_relationship)
    if relationship is None:
        dropped["stop_time_update.schedule_relationship"] += 1
        return None
    arrival = _event(message.arrival, dropped) if message.HasField("arrival") else None
    departure = _event(message.departure, dropped) if message.HasField("departure") else None
    if relationship is StopRelationship.SCHEDULED and arrival is None and departure is None:
        # The spec requires a time for a SCHEDULED stop: without one it says nothing.
        dropped["stop_time_update.no_time"] += 1
        return None
    if relationship is StopRelationship.NO_DATA:
        arrival = departure = None  # the spec: no times with NO_DATA
    assigned = None
    if message.HasField("stop_time_properties"):
        assigned = _text(message.stop_time_properties.assigned_stop_id)
    return StopTimeUpdate(
        stop_sequence=sequence,
        stop_id=stop_id,
        arrival=arrival,
        departure=departure,
        schedule_relationship=relationship,
        assigned_stop_id=assigned,
    )


def _trip_update(
    entity_id: str, message: pb.TripUpdate, dropped: Counter[str]
) -> TripUpdate | None:
    trip = _trip_descriptor(message.trip, dropped, "trip_update.trip")
    if trip is None:
        return None
    updates: list[StopTimeUpdate] = []
    for stu in message.stop_time_update:
        parsed = _stop_time_update(stu, dropped)
        if parsed is not None:
            updates.append(parsed)
    sequences = [u.stop_sequence for u in updates]
    if all(s is not None for s in sequences) and sequences != sorted(sequences):  # type: ignore[type-var]
        # The spec orders them by stop_sequence; a producer that does not is read as if it had.
        updates.sort(key=lambda u: u.stop_sequence or 0)
        dropped["trip_update.unordered"] += 1
    delay = (
        _delay(message.delay, dropped, "trip_update.delay") if message.HasField("delay") else None
    )
    timestamp = (
        _instant(message.timestamp, dropped, "trip_update.timestamp")
        if message.HasField("timestamp")
        else None
    )
    return TripUpdate(
        entity_id=entity_id,
        trip=trip,
        stop_time_updates=tuple(updates),
        vehicle=_vehicle_descriptor(message.vehicle) if message.HasField("vehicle") else None,
        timestamp=timestamp,
        delay=delay,
    )


def _finite(value: float, low: float, high: float) -> bool:
    return math.isfinite(value) and low <= value <= high


def _vehicle_position(
    entity_id: str, message: pb.VehiclePosition, dropped: Counter[str]
) -> VehiclePosition | None:
    trip = (
        _trip_descriptor(message.trip, dropped, "vehicle.trip")
        if message.HasField("trip")
        else None
    )
    lat: float | None = None
    lon: float | None = None
    bearing: float | None = None
    speed: float | None = None
    if message.HasField("position"):
        p = message.position
        on_globe = _finite(p.latitude, -90, 90) and _finite(p.longitude, -180, 180)
        if on_globe and not (p.latitude == 0 and p.longitude == 0):  # 0,0: an unset position
            lat, lon = float(p.latitude), float(p.longitude)
        else:
            dropped["vehicle.position"] += 1
        if p.HasField("bearing"):
            if _finite(p.bearing, 0, 360):
                bearing = float(p.bearing) % 360
            else:
                dropped["vehicle.bearing"] += 1
        if p.HasField("speed"):
            # 100 m/s (360 km/h): above every train a GTFS feed describes.
            if _finite(p.speed, 0, 100):
                speed = float(p.speed)
            else:
                dropped["vehicle.speed"] += 1
    vehicle = _vehicle_descriptor(message.vehicle) if message.HasField("vehicle") else None
    if lat is None and trip is None and vehicle is None:
        dropped["vehicle.empty"] += 1
        return None
    status = (
        pb.VehiclePosition.VehicleStopStatus.Name(message.current_status)
        if message.HasField("current_status")
        else None
    )
    occupancy = (
        pb.VehiclePosition.OccupancyStatus.Name(message.occupancy_status)
        if message.HasField("occupancy_status")
        else None
    )
    return VehiclePosition(
        entity_id=entity_id,
        trip=trip,
        vehicle=vehicle,
        lat=lat,
        lon=lon,
        bearing=bearing,
        speed=speed,
        timestamp=(
            _instant(message.timestamp, dropped, "vehicle.timestamp")
            if message.HasField("timestamp")
            else None
        ),
        current_stop_sequence=(
            message.current_stop_sequence if message.HasField("current_stop_sequence") else None
        ),
        stop_id=_text(message.stop_id),
        current_status=status,
        occupancy_status=occupancy,
    )


def _translations(message: pb.TranslatedString) -> tuple[Translation, ...]:
    return tuple(
        Translation(text=t.text, language=_text(t.language))
        for t in message.translation
        if t.text.strip()
    )


def _alert(entity_id: str, message: pb.Alert, dropped: Counter[str]) -> Alert | None:
    periods: list[TimeRange] = []
    for period in message.active_period:
        start = (
            _instant(period.start, dropped, "alert.active_period")
            if period.HasField("start")
            else None
        )
        end = (
            _instant(period.end, dropped, "alert.active_period") if period.HasField("end") else None
        )
        if (period.HasField("start") and start is None) or (period.HasField("end") and end is None):
            continue
        if start is not None and end is not None and end < start:
            dropped["alert.active_period"] += 1
            continue
        periods.append(TimeRange(start, end))
    if message.active_period and not periods:
        # Every period it gave was broken: showing it always would be a guess.
        dropped["alert.no_period"] += 1
        return None
    entities: list[InformedEntity] = []
    for selector in message.informed_entity:
        trip = (
            _trip_descriptor(selector.trip, dropped, "alert.trip")
            if selector.HasField("trip")
            else None
        )
        informed = InformedEntity(
            agency_id=_text(selector.agency_id),
            route_id=_text(selector.route_id),
            route_type=selector.route_type if selector.HasField("route_type") else None,
            direction_id=selector.direction_id if selector.HasField("direction_id") else None,
            trip=trip,
            stop_id=_text(selector.stop_id),
        )
        if informed == InformedEntity():
            dropped["alert.informed_entity"] += 1
            continue
        entities.append(informed)
    if not entities:
        # The spec requires at least one: an alert informing nobody applies nowhere.
        dropped["alert.no_informed_entity"] += 1
        return None
    return Alert(
        entity_id=entity_id,
        informed_entities=tuple(entities),
        active_periods=tuple(periods),
        cause=pb.Alert.Cause.Name(message.cause),
        effect=pb.Alert.Effect.Name(message.effect),
        severity=pb.Alert.SeverityLevel.Name(message.severity_level),
        header=_translations(message.header_text),
        description=_translations(message.description_text),
        url=_translations(message.url),
    )
