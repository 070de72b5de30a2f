"""GTFS-Realtime parsing: the real Caltrain files (counts from the generated bindings, decoded
here directly), and validation on messages the tests build."""

from __future__ import annotations

from datetime import date

import pytest
from google.transit import gtfs_realtime_pb2 as pb

from app.transit.realtime import StopRelationship, TripRelationship, merge_snapshots, translated
from app.transit.realtime_parse import RealtimeFeedError, parse_feed, parse_gtfs_time
from tests.transit.caltrain import caltrain_dir


def _raw(name: str) -> pb.FeedMessage:
    message = pb.FeedMessage()
    message.ParseFromString((caltrain_dir() / name).read_bytes())
    return message


def test_caltrain_trip_updates_parse_whole() -> None:
    raw = _raw("ct-trip-updates.pb")
    snapshot = parse_feed((caltrain_dir() / "ct-trip-updates.pb").read_bytes())

    assert snapshot.timestamp == raw.header.timestamp
    assert len(snapshot.trip_updates) == sum(1 for e in raw.entity if e.HasField("trip_update"))
    assert len(snapshot.trip_updates) == 19
    assert snapshot.dropped == {}
    for entity, update in zip(raw.entity, snapshot.trip_updates, strict=True):
        tu = entity.trip_update
        assert update.entity_id == entity.id
        assert update.trip.trip_id == tu.trip.trip_id
        y, m, d = tu.trip.start_date[:4], tu.trip.start_date[4:6], tu.trip.start_date[6:]
        assert update.trip.start_date == date(int(y), int(m), int(d))
        h, mi, s = (int(p) for p in tu.trip.start_time.split(":"))
        assert update.trip.start_time == h * 3600 + mi * 60 + s
        assert update.trip.route_id == tu.trip.route_id
        assert update.trip.schedule_relationship is TripRelationship.SCHEDULED
        assert update.vehicle is not None and update.vehicle.id == tu.vehicle.id
        assert update.timestamp == tu.timestamp
        assert len(update.stop_time_updates) == len(tu.stop_time_update)
        for raw_stu, stu in zip(tu.stop_time_update, update.stop_time_updates, strict=True):
            assert stu.stop_sequence == raw_stu.stop_sequence
            assert stu.stop_id == raw_stu.stop_id
            assert stu.schedule_relationship is StopRelationship.SCHEDULED
            for name in ("arrival", "departure"):
                event = getattr(stu, name)
                if raw_stu.HasField(name):
                    assert event is not None and event.time == getattr(raw_stu, name).time
                    assert event.delay is None
                else:
                    assert event is None


def test_caltrain_vehicle_positions_parse_whole() -> None:
    raw = _raw("ct-vehicle-positions.pb")
    snapshot = parse_feed((caltrain_dir() / "ct-vehicle-positions.pb").read_bytes())

    assert snapshot.timestamp == raw.header.timestamp
    assert len(snapshot.vehicle_positions) == 14 == len(raw.entity)
    assert snapshot.dropped == {}
    for entity, position in zip(raw.entity, snapshot.vehicle_positions, strict=True):
        v = entity.vehicle
        assert position.trip is not None and position.trip.trip_id == v.trip.trip_id
        assert position.trip.start_date is None  # Caltrain's positions give none
        assert position.lat == pytest.approx(v.position.latitude)
        assert position.lon == pytest.approx(v.position.longitude)
        assert position.timestamp == v.timestamp
        assert position.vehicle is not None and position.vehicle.id == v.vehicle.id
    first = snapshot.vehicle_positions[0]
    assert first.trip is not None and first.trip.trip_id is not None
    assert snapshot.vehicle_for(first.trip.trip_id) == first


def test_kinds_merge_into_one_snapshot() -> None:
    updates = parse_feed((caltrain_dir() / "ct-trip-updates.pb").read_bytes())
    positions = parse_feed((caltrain_dir() / "ct-vehicle-positions.pb").read_bytes())
    merged = merge_snapshots([updates, positions])
    assert merged.trip_updates == updates.trip_updates
    assert merged.vehicle_positions == positions.vehicle_positions
    assert merged.timestamp == min(
        _raw("ct-trip-updates.pb").header.timestamp,
        _raw("ct-vehicle-positions.pb").header.timestamp,
    )
    assert len(merged.updates_for("124")) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Service unavailable</body></html>",
        b"\xff\xff\xff\xff",
        b'{"data": {}}',
    ],
)
def test_bytes_that_are_no_feed_message_are_a_clear_error(body: bytes) -> None:
    with pytest.raises(RealtimeFeedError, match="FeedMessage"):
        parse_feed(body)


def test_a_message_without_its_header_is_refused() -> None:
    message = pb.FeedMessage()
    entity = message.entity.add()
    entity.id = "1"
    with pytest.raises(RealtimeFeedError, match="header"):
        parse_feed(message.SerializePartialToString())


def _header(message: pb.FeedMessage, *, version: str = "2.0") -> None:
    message.header.gtfs_realtime_version = version
    message.header.timestamp = 1_700_000_000


def test_unknown_versions_and_differential_feeds_are_refused() -> None:
    message = pb.FeedMessage()
    _header(message, version="9.9")
    with pytest.raises(RealtimeFeedError, match=r"9\.9"):
        parse_feed(message.SerializeToString())
    _header(message)
    message.header.incrementality = pb.FeedHeader.DIFFERENTIAL
    with pytest.raises(RealtimeFeedError, match="DIFFERENTIAL"):
        parse_feed(message.SerializeToString())


def test_values_out_of_range_are_dropped_and_counted() -> None:
    message = pb.FeedMessage()
    _header(message)
    e = message.entity.add()
    e.id = "t1"
    tu = e.trip_update
    tu.trip.trip_id = "A"
    tu.trip.start_date = "20231345"  # no such day: the date is dropped, the update kept
    tu.trip.start_time = "25:99:00"
    good = tu.stop_time_update.add()
    good.stop_sequence = 1
    good.arrival.delay = 60
    nostop = tu.stop_time_update.add()  # names no stop: dropped
    nostop.arrival.delay = 60
    bad_delay = tu.stop_time_update.add()
    bad_delay.stop_sequence = 3
    bad_delay.arrival.delay = 5 * 86_400  # a time sent as a delay: the event is dropped
    bad_delay.departure.time = 1_700_000_123
    bad_delay.departure.uncertainty = -5
    no_time = tu.stop_time_update.add()  # SCHEDULED without a time
    no_time.stop_sequence = 4
    skipped = tu.stop_time_update.add()
    skipped.stop_sequence = 5
    skipped.schedule_relationship = pb.TripUpdate.StopTimeUpdate.SKIPPED

    e = message.entity.add()
    e.id = "v1"
    e.vehicle.trip.trip_id = "A"
    e.vehicle.position.latitude = 91.0
    e.vehicle.position.longitude = 10.0
    e.vehicle.position.bearing = 400.0
    e.vehicle.timestamp = 42  # 1970: not an instant we take

    e = message.entity.add()
    e.id = "v2"  # nothing at all
    e.vehicle.SetInParent()

    e = message.entity.add()
    e.id = "a1"
    e.alert.header_text.translation.add(text="Nobody")  # informs nobody: dropped
    e = message.entity.add()
    e.id = "a2"
    e.alert.informed_entity.add(stop_id="S1")
    period = e.alert.active_period.add()
    period.start, period.end = 1_700_000_500, 1_700_000_100  # ends before it starts
    e = message.entity.add()
    e.id = "gone"
    e.is_deleted = True

    snapshot = parse_feed(message.SerializeToString())
    assert snapshot.dropped == {
        "trip_update.trip.start_date": 1,
        "trip_update.trip.start_time": 1,
        "stop_time_update.no_stop": 1,
        "stop_time_event.delay": 1,
        "stop_time_event.uncertainty": 1,
        "stop_time_update.no_time": 1,
        "vehicle.position": 1,
        "vehicle.bearing": 1,
        "vehicle.timestamp": 1,
        "vehicle.empty": 1,
        "alert.no_informed_entity": 1,
        "alert.active_period": 1,
        "alert.no_period": 1,
        "entity.deleted": 1,
    }
    assert snapshot.dropped_total == 14
    (update,) = snapshot.trip_updates
    assert update.trip.start_date is None and update.trip.start_time is None
    assert [u.stop_sequence for u in update.stop_time_updates] == [1, 3, 5]
    third = update.stop_time_updates[1]
    assert third.arrival is None
    assert third.departure is not None and third.departure.time == 1_700_000_123
    assert third.departure.uncertainty is None
    assert update.stop_time_updates[2].schedule_relationship is StopRelationship.SKIPPED
    (vehicle,) = snapshot.vehicle_positions
    assert vehicle.lat is None and vehicle.bearing is None and vehicle.timestamp is None
    assert snapshot.alerts == ()


def test_alerts_keep_their_texts_periods_and_entities() -> None:
    message = pb.FeedMessage()
    _header(message)
    e = message.entity.add()
    e.id = "works"
    a = e.alert
    a.cause = pb.Alert.CONSTRUCTION
    a.effect = pb.Alert.REDUCED_SERVICE
    a.header_text.translation.add(text="Track work", language="en")
    a.header_text.translation.add(text="Obras en la vía", language="es")
    a.description_text.translation.add(text="Trains every 30 minutes")
    a.url.translation.add(text="https://example.org/works")
    a.active_period.add(start=1_700_000_000)
    selector = a.informed_entity.add(route_id="L1", stop_id="70011")
    selector.trip.trip_id = "124"
    snapshot = parse_feed(message.SerializeToString())
    (alert,) = snapshot.alerts
    assert alert.cause == "CONSTRUCTION" and alert.effect == "REDUCED_SERVICE"
    assert translated(alert.header, "es-MX") == "Obras en la vía"
    assert translated(alert.header, "fr") == "Track work"  # none untagged: the first
    assert translated(alert.description, "de") == "Trains every 30 minutes"
    assert translated(alert.url, None) == "https://example.org/works"
    assert alert.active_periods[0].start == 1_700_000_000
    assert alert.active_periods[0].end is None
    (informed,) = alert.informed_entities
    assert (informed.route_id, informed.stop_id) == ("L1", "70011")
    assert informed.trip is not None and informed.trip.trip_id == "124"
    assert alert.active_at(1_700_000_000) and not alert.active_at(1_699_999_999)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:00:00", 0),
        ("7:05:09", 25509),
        ("25:10:00", 90600),
        ("24:5:00", None),
        ("12:60:00", None),
        ("1:2", None),
        ("x:00:00", None),
        ("49:00:00", None),
    ],
)
def test_gtfs_times(text: str, seconds: int | None) -> None:
    assert parse_gtfs_time(text) == seconds
