"""The body of a push request: its envelope (size, JSON, the ``vehicles`` and ``removed``
arrays) and each vehicle's record, validated into a :class:`PushBatch`.

Envelope problems refuse the whole request (:class:`~providers.push.signing.PushRejected`);
a bad record is reported (:class:`RecordProblem`) and skipped, the others apply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from adapters.dto import VehicleEquipment
from adapters.uris import MAX_URI_LENGTH, safe_link
from providers.push.signing import PushRejected

MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_RECORDS = 5_000
MAX_ID_LENGTH = 255
# A status reported this far in the future is a clock error; storing it would block every
# honest update until that time.
MAX_FUTURE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class RecordProblem:
    index: int | None  # position in "vehicles" (None for "removed" entries)
    vehicle_id: str | None
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "vehicleId": self.vehicle_id,
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class PushedVehicle:
    index: int
    vehicle_id: str
    lat: float
    lon: float
    vehicle_type_id: str | None
    pricing_plan_id: str | None
    is_reserved: bool
    is_disabled: bool
    current_range_meters: float | None
    current_fuel_percent: float | None
    rental_uris: dict[str, str | None] | None
    last_reported: datetime
    # None: not sent (the stored value is kept); []: none.
    vehicle_equipment: list[str] | None = None


@dataclass(slots=True)
class PushBatch:
    vehicles: list[PushedVehicle] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rejected: list[RecordProblem] = field(default_factory=list)
    # Records superseded by a later status of the same vehicle in this batch.
    ignored: list[RecordProblem] = field(default_factory=list)


class _Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message


def _number(raw: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise _Invalid("MISSING_FIELD", f"{name} is required")
        return None
    # bool is an int in Python; true/false is no coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid("INVALID_FIELD", f"{name} must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise _Invalid("INVALID_FIELD", f"{name} must be finite")
    return number


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name)
    if not isinstance(value, bool):
        raise _Invalid(
            "INVALID_FIELD" if name in raw else "MISSING_FIELD", f"{name} must be true or false"
        )
    return value


def _ident(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("INVALID_FIELD", f"{name} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise _Invalid(
            "INVALID_FIELD", f"{name} must be at most {MAX_ID_LENGTH} characters, no NUL"
        )
    return value


def _timestamp(value: object, now: datetime) -> datetime:
    if isinstance(value, bool) or value is None:
        raise _Invalid(
            "MISSING_FIELD" if value is None else "INVALID_FIELD",
            "last_reported is required: POSIX seconds or an RFC 3339 time",
        )
    try:
        if isinstance(value, int | float):
            at = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if at.tzinfo is None:
                raise ValueError("no UTC offset")
            at = at.astimezone(UTC)
        else:
            raise ValueError(type(value).__name__)
    except (ValueError, OverflowError, OSError) as exc:
        raise _Invalid(
            "INVALID_FIELD", f"last_reported must be POSIX seconds or RFC 3339 with offset ({exc})"
        ) from None
    if (at - now).total_seconds() > MAX_FUTURE_SECONDS:
        raise _Invalid("FUTURE_TIMESTAMP", "last_reported is in the future; check the clock")
    return at


def _uris(value: object) -> dict[str, str | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= {"android", "ios", "web"}:
        raise _Invalid("INVALID_FIELD", "rental_uris must be an object of android, ios, web")
    uris: dict[str, str | None] = {}
    for key in ("android", "ios", "web"):
        uri = value.get(key)
        if uri is not None and (not isinstance(uri, str) or safe_link(uri) is None):
            raise _Invalid(
                "INVALID_FIELD",
                f"rental_uris.{key} must be an http(s) or app link of at most "
                f"{MAX_URI_LENGTH} characters, without spaces or control characters",
            )
        uris[key] = uri
    return uris if any(uris.values()) else None


_EQUIPMENT = tuple(e.value for e in VehicleEquipment)


def _equipment(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(v in _EQUIPMENT for v in value):
        raise _Invalid(
            "INVALID_FIELD",
            f"vehicle_equipment must be an array of {', '.join(_EQUIPMENT)}",
        )
    return [e for e in _EQUIPMENT if e in value]


def _record(index: int, raw: object, now: datetime) -> PushedVehicle:
    if not isinstance(raw, dict):
        raise _Invalid("INVALID_RECORD", "each vehicle must be a JSON object")
    vehicle_id = _ident(raw.get("vehicle_id"), "vehicle_id")
    lat = _number(raw, "lat", required=True)
    lon = _number(raw, "lon", required=True)
    assert lat is not None and lon is not None
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise _Invalid("COORDINATES_OUT_OF_RANGE", "lat must be in [-90, 90], lon in [-180, 180]")
    type_id = raw.get("vehicle_type_id")
    plan_id = raw.get("pricing_plan_id")
    current_range = _number(raw, "current_range_meters", required=False)
    if current_range is not None and current_range < 0:
        raise _Invalid("INVALID_FIELD", "current_range_meters must not be negative")
    fuel = _number(raw, "current_fuel_percent", required=False)
    if fuel is not None and not 0 <= fuel <= 1:
        raise _Invalid("INVALID_FIELD", "current_fuel_percent must be between 0 and 1")
    return PushedVehicle(
        index=index,
        vehicle_id=vehicle_id,
        lat=lat,
        lon=lon,
        vehicle_type_id=None if type_id is None else _ident(type_id, "vehicle_type_id"),
        pricing_plan_id=None if plan_id is None else _ident(plan_id, "pricing_plan_id"),
        is_reserved=_flag(raw, "is_reserved"),
        is_disabled=_flag(raw, "is_disabled"),
        current_range_meters=current_range,
        current_fuel_percent=fuel,
        rental_uris=_uris(raw.get("rental_uris")),
        last_reported=_timestamp(raw.get("last_reported"), now),
        vehicle_equipment=_equipment(raw.get("vehicle_equipment")),
    )


def parse_batch(body: bytes, *, now: datetime) -> PushBatch:
    """Validate a request body. Envelope problems raise :class:`PushRejected`; record problems
    are collected in ``rejected`` and the record is skipped."""
    if len(body) > MAX_BODY_BYTES:
        raise PushRejected(413, "BODY_TOO_LARGE", f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PushRejected(400, "MALFORMED_BODY", f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PushRejected(400, "MALFORMED_BODY", "the body must be a JSON object")
    vehicles = document.get("vehicles", [])
    removed = document.get("removed", [])
    if not isinstance(vehicles, list) or not isinstance(removed, list):
        raise PushRejected(400, "MALFORMED_BODY", '"vehicles" and "removed" must be arrays')
    if "vehicles" not in document and "removed" not in document:
        raise PushRejected(400, "MALFORMED_BODY", 'give "vehicles", "removed" or both')
    if len(vehicles) + len(removed) > MAX_RECORDS:
        raise PushRejected(
            413, "TOO_MANY_RECORDS", f"at most {MAX_RECORDS} records per request; split the batch"
        )
    batch = PushBatch()
    latest: dict[str, PushedVehicle] = {}
    for index, raw in enumerate(vehicles):
        try:
            vehicle = _record(index, raw, now)
        except _Invalid as problem:
            vid = raw.get("vehicle_id") if isinstance(raw, dict) else None
            batch.rejected.append(
                RecordProblem(
                    index, vid if isinstance(vid, str) else None, problem.code, problem.message
                )
            )
            continue
        seen = latest.get(vehicle.vehicle_id)
        if seen is not None:
            # One status per vehicle and statement; the later report wins, as it would have
            # in two requests.
            older, vehicle = (
                (vehicle, seen) if vehicle.last_reported < seen.last_reported else (seen, vehicle)
            )
            batch.ignored.append(
                RecordProblem(
                    older.index,
                    older.vehicle_id,
                    "SUPERSEDED",
                    "a later status of this vehicle is in the same batch",
                )
            )
        latest[vehicle.vehicle_id] = vehicle
    batch.vehicles = sorted(latest.values(), key=lambda v: v.index)
    for raw_id in removed:
        try:
            batch.removed.append(_ident(raw_id, "removed[]"))
        except _Invalid as problem:
            batch.rejected.append(RecordProblem(None, None, problem.code, problem.message))
    return batch
