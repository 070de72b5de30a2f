"""The TOMP simulator's operator state: offers, bookings and legs, and the TOMP-API 1.6.1 state
machine they follow (``conformance/tomp/NOTES.md`` §8). No HTTP and no locking here: the server
(:mod:`providers.simulators.tomp_server`) serialises calls and turns :class:`Reply` into
responses.

Choices where the spec leaves room, so a client knows what to expect:
- A repeated ``POST /bookings`` with a known id answers 409 without a body (issue #264).
- An offer past its ``validUntil`` answers 410 (PR #298); an unknown offer id 404.
- An offer whose vehicle was booked in the meantime gives a booking in state REJECTED (201
  with the booking): REJECTED was restored because "returning 409 is not enough" (#239, PR
  #240), and 409 already means "duplicate" to clients (#264).
- Any event that is illegal in the current state answers 403 with errorcode x004 ("Operation
  {} is illegal in current status"), including a COMMIT on an EXPIRED booking, as the
  ``/bookings/{id}/events`` description says.
- PENDING bookings expire ``pending_ttl`` after creation; CONFIRMED ones whose leg has not
  started expire ``reservation_ttl`` after the commit. Both become EXPIRED and free the vehicle.
- ``booking.pricing`` is authoritative; a leg returned on its own (``GET /legs/{id}``, leg
  events) carries the same fare in ``pricing``; legs inside a booking carry none, so nobody
  adds the fare twice.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any, Final, TypeAlias

from geo.distance import geodesic_meters
from providers.simulators.tomp_fleet import (
    ESTIMATE_MINUTES_WITHOUT_DESTINATION,
    FleetKind,
    SimVehicle,
    tomp_fare,
)

__all__ = ["Reply", "SimBooking", "TompOperatorState", "error_body"]

Document: TypeAlias = dict[str, Any]

_ACTIVE: Final = frozenset({"PENDING", "CONFIRMED", "STARTED"})
_NEARBY_RADIUS_M: Final = 500
_MAX_OPTIONS: Final = 5
# Offers are kept this long past their validity, to tell "expired" (410) from "unknown" (404).
_OFFER_MEMORY_SECONDS: Final = 3600.0


@dataclass(slots=True)
class Reply:
    status: int
    body: Any = None  # None: no body (TOMP 404/409/410 have no content schema)
    headers: dict[str, str] = field(default_factory=dict)


def error_body(status: int, errorcode: int, title: str, detail: str, instance: str) -> Document:
    """A TOMP 1.6.1 ``error`` (RFC 7807 shaped)."""
    return {
        "errorcode": errorcode,
        "type": f"https://github.com/TOMP-WG/TOMP-API/wiki/Error-handling-in-TOMP#{errorcode}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }


def _error(status: int, errorcode: int, title: str, detail: str, instance: str) -> Reply:
    return Reply(status, error_body(status, errorcode, title, detail, instance))


def _illegal(module: int, operation: str, state: str, instance: str) -> Reply:
    return _error(
        403,
        module * 1000 + 4,
        f"Operation {operation} is illegal in current status.",
        f"{operation} is not allowed while the booking is {state}",
        instance,
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _place(lat: float, lon: float) -> Document:
    return {"coordinates": {"lat": lat, "lng": lon}}


@dataclass(slots=True)
class _Offer:
    offer_id: str
    vehicle_id: str
    to: tuple[float, float] | None
    valid_until: float
    fare: Document


@dataclass(slots=True)
class SimBooking:
    booking_id: str
    leg_id: str
    vehicle_id: str
    state: str  # TOMP bookingState
    leg_state: str  # TOMP legState
    created_at: float
    expires_at: float | None  # PENDING: until commit; CONFIRMED: reservation end
    start: tuple[float, float]  # where the vehicle was
    to: tuple[float, float] | None
    fare: Document  # estimated until FINISH, then final
    started_at: float | None = None
    finished_at: float | None = None
    end: tuple[float, float] | None = None
    distance_m: int | None = None
    price_minor: int | None = None  # final price, minor units


def _actual_times(booking: SimBooking) -> Document:
    """TOMP's ``actualDepartureTime`` and ``actualArrivalTime``, as far as the ride has got:
    a leg and its booking state them alike."""
    times: Document = {}
    if booking.started_at is not None:
        times["actualDepartureTime"] = _iso(booking.started_at)
    if booking.finished_at is not None:
        times["actualArrivalTime"] = _iso(booking.finished_at)
    return times


def _coordinates(raw: object) -> tuple[float, float] | None:
    """(lat, lon) of a TOMP ``place``, or None when it is not one."""
    if not isinstance(raw, Mapping):
        return None
    coordinates = raw.get("coordinates")
    if not isinstance(coordinates, Mapping):
        return None
    lat, lon = coordinates.get("lat"), coordinates.get("lng")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
        return None
    assert isinstance(lat, int | float) and isinstance(lon, int | float)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return float(lat), float(lon)


class TompOperatorState:
    """One operator's offers, bookings and vehicles, advanced by TOMP calls and the clock."""

    def __init__(
        self,
        kind: FleetKind,
        vehicles: list[SimVehicle],
        *,
        system_id: str,
        offer_ttl: float,
        pending_ttl: float,
        reservation_ttl: float,
    ) -> None:
        self.kind = kind
        self.system_id = system_id
        self.vehicles = {v.vehicle_id: v for v in vehicles}
        self.offer_ttl = offer_ttl
        self.pending_ttl = pending_ttl
        self.reservation_ttl = reservation_ttl
        self.offers: dict[str, _Offer] = {}
        self.bookings: dict[str, SimBooking] = {}
        self._legs: dict[str, str] = {}  # leg id -> booking id
        # A per-process token in every id: references a client kept from an earlier run of the
        # simulator never name a booking of this run.
        self._run = secrets.token_hex(3)
        self._counter = itertools.count(1)

    # -- clock ----------------------------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Expire what is due: PENDING past its expiry, reservations never started."""
        for booking in self.bookings.values():
            if booking.expires_at is None or now < booking.expires_at:
                continue
            if booking.state == "PENDING" or (
                booking.state == "CONFIRMED" and booking.leg_state == "NOT_STARTED"
            ):
                booking.state = "EXPIRED"
                booking.expires_at = None
        stale = [
            o.offer_id for o in self.offers.values() if now - o.valid_until > _OFFER_MEMORY_SECONDS
        ]
        for offer_id in stale:
            del self.offers[offer_id]

    def booked_vehicles(self) -> dict[str, str]:
        """Vehicle id -> state of its active booking."""
        return {b.vehicle_id: b.state for b in self.bookings.values() if b.state in _ACTIVE}

    # -- representations ----------------------------------------------------------------------

    def _asset_type(self) -> Document:
        return {"id": self.kind.vehicle_type_id, "assetClass": self.kind.asset_class}

    def _leg(self, booking: SimBooking, *, standalone: bool) -> Document:
        leg: Document = {
            "id": booking.leg_id,
            "from": _place(*booking.start),
            "state": booking.leg_state,
            "legSequenceNumber": 1,
            "assetType": self._asset_type(),
            "asset": {"id": booking.vehicle_id},
            "departureTime": _iso(booking.created_at),
        }
        if booking.to is not None:
            leg["to"] = _place(*booking.to)
        if booking.end is not None:
            leg["to"] = _place(*booking.end)
        leg.update(_actual_times(booking))
        if booking.distance_m is not None:
            leg["distance"] = booking.distance_m
        if standalone:
            leg["pricing"] = booking.fare
        return leg

    def booking_document(self, booking: SimBooking) -> Document:
        document: Document = {
            "id": booking.booking_id,
            "state": booking.state,
            "from": _place(*booking.start),
            "legs": [self._leg(booking, standalone=False)],
            "pricing": booking.fare,
            "departureTime": _iso(booking.created_at),
            "mainAssetType": self._asset_type(),
        }
        if booking.to is not None:
            document["to"] = _place(*booking.to)
        document.update(_actual_times(booking))
        return document

    def _booking_reply(self, booking: SimBooking, status: int) -> Reply:
        headers = {}
        # PENDING: until the commit; CONFIRMED: until the reservation lapses. A booking that
        # cannot expire any more has "expired" at its creation: 1.6.1 makes Expires required
        # on every 201 of POST /bookings and every 200 of POST /bookings/{id}/events.
        expires = booking.expires_at if booking.expires_at is not None else booking.created_at
        headers["Expires"] = formatdate(expires, usegmt=True)
        return Reply(status, self.booking_document(booking), headers)

    # -- planning -----------------------------------------------------------------------------

    def plan(self, body: object, now: float) -> Reply:
        instance = "/planning/offers"
        if not isinstance(body, Mapping):
            return _error(400, 2002, "Invalid", "the body must be a planningRequest", instance)
        origin = _coordinates(body.get("from"))
        if origin is None:
            return _error(400, 2001, "Missing", "`from.coordinates` (lat, lng) needed", instance)
        destination = None
        if body.get("to") is not None:
            destination = _coordinates(body.get("to"))
            if destination is None:
                return _error(400, 2002, "Invalid", "`to` is not a place", instance)
        wanted = body.get("useAssets")
        if wanted is not None and (
            not isinstance(wanted, list) or not all(isinstance(a, str) for a in wanted)
        ):
            return _error(400, 2002, "Invalid", "`useAssets` must be a list of ids", instance)
        radius = body.get("radius", _NEARBY_RADIUS_M)
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
            return _error(400, 2002, "Invalid", "`radius` must be a whole number", instance)
        booked = self.booked_vehicles()
        free = [v for v in self.vehicles.values() if v.vehicle_id not in booked]
        if wanted:
            ids = set(wanted)
            candidates = [v for v in free if v.vehicle_id in ids]
        else:
            near = [(geodesic_meters(*origin, v.lat, v.lon), v) for v in free]
            candidates = [v for d, v in sorted(near, key=lambda p: p[0]) if d <= radius]
            candidates = candidates[:_MAX_OPTIONS]
        valid_until = now + self.offer_ttl
        options = [self._offer(v, destination, valid_until) for v in candidates]
        return Reply(201, {"validUntil": _iso(valid_until), "options": options})

    def _offer(
        self, vehicle: SimVehicle, destination: tuple[float, float] | None, valid_until: float
    ) -> Document:
        if destination is not None:
            km = geodesic_meters(vehicle.lat, vehicle.lon, *destination) / 1000.0
            minutes = km / self.kind.speed_kmh * 60.0
        else:
            minutes = ESTIMATE_MINUTES_WITHOUT_DESTINATION
            km = self.kind.speed_kmh * minutes / 60.0
        fare, _ = tomp_fare(self.kind.plan, minutes=minutes, kilometers=km, estimated=True)
        offer_id = f"{self.system_id}-{self._run}-{next(self._counter):05d}"
        self.offers[offer_id] = _Offer(offer_id, vehicle.vehicle_id, destination, valid_until, fare)
        leg: Document = {
            "from": _place(vehicle.lat, vehicle.lon),
            "assetType": self._asset_type(),
            "asset": {"id": vehicle.vehicle_id},
        }
        option: Document = {
            "id": offer_id,
            "state": "NEW",
            "from": _place(vehicle.lat, vehicle.lon),
            "legs": [leg],
            "pricing": fare,
            "mainAssetType": self._asset_type(),
        }
        if destination is not None:
            leg["to"] = option["to"] = _place(*destination)
        return option

    # -- booking ------------------------------------------------------------------------------

    def create_booking(self, body: object, now: float) -> Reply:
        instance = "/bookings"
        if not isinstance(body, Mapping) or not isinstance(body.get("id"), str):
            return _error(400, 3001, "Missing", "a bookingRequest with the offer `id`", instance)
        booking_id = str(body["id"])
        if booking_id in self.bookings:
            return Reply(409)  # a duplicate: the client looks up the state (GET /bookings/{id})
        offer = self.offers.get(booking_id)
        if offer is None:
            return Reply(404)
        if now > offer.valid_until:
            return Reply(410)
        vehicle = self.vehicles[offer.vehicle_id]
        taken = offer.vehicle_id in self.booked_vehicles()
        booking = SimBooking(
            booking_id=booking_id,
            leg_id=f"{booking_id}-leg-1",
            vehicle_id=offer.vehicle_id,
            state="REJECTED" if taken else "PENDING",
            leg_state="NOT_STARTED" if not taken else "CANCELLED",
            created_at=now,
            expires_at=None if taken else now + self.pending_ttl,
            start=(vehicle.lat, vehicle.lon),
            to=offer.to,
            fare=offer.fare,
        )
        self.bookings[booking_id] = booking
        self._legs[booking.leg_id] = booking_id
        return self._booking_reply(booking, 201)

    def get_booking(self, booking_id: str) -> Reply:
        booking = self.bookings.get(booking_id)
        return Reply(404) if booking is None else self._booking_reply(booking, 200)

    def booking_event(self, booking_id: str, body: object, now: float) -> Reply:
        instance = f"/bookings/{booking_id}/events"
        booking = self.bookings.get(booking_id)
        if booking is None:
            return Reply(404)
        operation = body.get("operation") if isinstance(body, Mapping) else None
        if not isinstance(operation, str):
            return _error(400, 3001, "Missing", "a bookingOperation with `operation`", instance)
        if operation == "COMMIT":
            if booking.state != "PENDING":
                return _illegal(3, operation, booking.state, instance)
            booking.state = "CONFIRMED"
            booking.expires_at = now + self.reservation_ttl
        elif operation == "CANCEL":
            if booking.state not in ("PENDING", "CONFIRMED"):
                return _illegal(3, operation, booking.state, instance)
            booking.state = "CANCELLED"
            booking.leg_state = "CANCELLED"
            booking.expires_at = None
        elif operation in ("DENY", "EXTEND_EXPIRY_TIME"):
            # No postponed commit and no ALLOW_EXTEND_BOOKING_EXPIRY_TIME here.
            return _illegal(3, operation, booking.state, instance)
        else:
            return _error(400, 3002, "Invalid", f"unknown operation {operation!r}", instance)
        return self._booking_reply(booking, 200)

    # -- trip execution -------------------------------------------------------------------------

    def _leg_booking(self, leg_id: str) -> SimBooking | None:
        booking_id = self._legs.get(leg_id)
        return None if booking_id is None else self.bookings.get(booking_id)

    def get_leg(self, leg_id: str) -> Reply:
        booking = self._leg_booking(leg_id)
        return Reply(404) if booking is None else Reply(200, self._leg(booking, standalone=True))

    def leg_event(self, leg_id: str, body: object, now: float) -> Reply:
        instance = f"/legs/{leg_id}/events"
        booking = self._leg_booking(leg_id)
        if booking is None:
            return Reply(404)
        if not isinstance(body, Mapping) or not isinstance(body.get("event"), str):
            return _error(400, 4001, "Missing", "a legEvent with `event` and `time`", instance)
        if not isinstance(body.get("time"), str):
            return _error(400, 4001, "Missing", "a legEvent needs its `time`", instance)
        event = str(body["event"])
        state, leg_state = booking.state, booking.leg_state
        if event == "SET_IN_USE":
            if state == "CONFIRMED" and leg_state == "NOT_STARTED":
                booking.state, booking.leg_state = "STARTED", "IN_USE"
                booking.started_at = now
                booking.expires_at = None
            elif state == "STARTED" and leg_state == "PAUSED":
                booking.leg_state = "IN_USE"
            else:
                return _illegal(4, event, f"{state}/{leg_state}", instance)
        elif event == "PAUSE":
            if state != "STARTED" or leg_state != "IN_USE":
                return _illegal(4, event, f"{state}/{leg_state}", instance)
            booking.leg_state = "PAUSED"
        elif event == "FINISH":
            if state != "STARTED" or leg_state not in ("IN_USE", "PAUSED"):
                return _illegal(4, event, f"{state}/{leg_state}", instance)
            end = _coordinates(body.get("userLocation"))
            if end is None:
                return _error(
                    400, 4001, "Missing", "FINISH needs `userLocation.coordinates`", instance
                )
            self._finish(booking, end, now)
        elif event == "CANCEL":
            if state != "CONFIRMED" or leg_state != "NOT_STARTED":
                return _illegal(4, event, f"{state}/{leg_state}", instance)
            booking.state, booking.leg_state = "CANCELLED", "CANCELLED"
            booking.expires_at = None
        else:
            return _illegal(4, event, f"{state}/{leg_state}", instance)
        return Reply(200, self._leg(booking, standalone=True))

    def _finish(self, booking: SimBooking, end: tuple[float, float], now: float) -> None:
        assert booking.started_at is not None
        meters = geodesic_meters(*booking.start, *end)
        minutes = max(0.0, now - booking.started_at) / 60.0
        fare, breakdown = tomp_fare(
            self.kind.plan, minutes=minutes, kilometers=meters / 1000.0, estimated=False
        )
        booking.state, booking.leg_state = "FINISHED", "FINISHED"
        booking.finished_at = now
        booking.end = end
        booking.distance_m = round(meters)
        booking.fare = fare
        booking.price_minor = breakdown.total_minor
        vehicle = self.vehicles[booking.vehicle_id]
        vehicle.lat, vehicle.lon = round(end[0], 6), round(end[1], 6)
        vehicle.range_m = max(0, vehicle.range_m - round(meters))
        vehicle.last_reported = int(now)
