"""A RAPTOR answer (`app/transit/raptor.py`): the journey and its legs, stops and trips as
indices into the `Timetable`; and the realtime override a search takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

# Times of one trip on one date: (arrivals, departures), seconds since the service day's
# start, one per stop of the trip; or None: the trip is cancelled that date.
TripTimes = tuple[tuple[int, ...], tuple[int, ...]]
Realtime = Mapping[tuple[int, date], TripTimes | None]


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class AccessLeg:
    """The first mile, as far as this module knows it: the rider is at `stop` at `arrival`."""

    stop: int
    arrival: datetime


@dataclass(frozen=True, slots=True)
class TransitLeg:
    """A ride on one trip. Stops are indices into `Timetable.stops`, positions into the
    trip's `stops` (a trip may serve a stop twice); `trip` indexes `Timetable.trips`."""

    trip: int
    route: int
    service_date: date
    board_stop: int
    board_position: int
    departure: datetime
    alight_stop: int
    alight_position: int
    arrival: datetime
    realtime: bool  # times from the realtime override, not the timetable


@dataclass(frozen=True, slots=True)
class WalkLeg:
    """A footpath between two stops (a transfer, or from an access stop)."""

    from_stop: int
    to_stop: int
    departure: datetime
    arrival: datetime
    seconds: int


@dataclass(frozen=True, slots=True)
class EgressLeg:
    """From the last stop to the destination, as the caller's egress said."""

    stop: int
    departure: datetime
    arrival: datetime
    seconds: int


Leg = AccessLeg | TransitLeg | WalkLeg | EgressLeg


@dataclass(frozen=True, slots=True)
class Journey:
    """One member of the Pareto set: legs in order, always AccessLeg first and EgressLeg last.
    `departure` is the access instant; waiting at stops is implicit between legs."""

    legs: tuple[Leg, ...]
    departure: datetime
    arrival: datetime
    transit_legs: int

    @property
    def transfers(self) -> int:
        return max(0, self.transit_legs - 1)

    @property
    def access(self) -> AccessLeg:
        leg = self.legs[0]
        assert isinstance(leg, AccessLeg)
        return leg

    @property
    def egress(self) -> EgressLeg:
        leg = self.legs[-1]
        assert isinstance(leg, EgressLeg)
        return leg
