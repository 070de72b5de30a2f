"""Unified booking: reserve, start, pause, resume, end and cancel any operator's vehicle.

:class:`BookingService` is the façade the request context and the CLI hand out; the work is in
the package's modules:

- ``reserve.py``: the reserve flow (and ``organisation.py``: booking for an organisation);
- ``actions.py``: the trip actions (start, pause, resume, end, cancel), ``ride_end.py`` the
  rules of where a ride may end;
- ``operators.py``: operator calls and compensation;
- ``receipts.py``: price snapshots and receipts;
- ``effects.py``: what follows a change (search index, live signal, organisation outbox);
- ``repository.py``: every SQL statement and the transition writer;
- ``core.py``: what the flows share (the clock, idempotent answers, leases, settling);
- ``maintenance.py``: expiry and crash reconciliation, run in the background.

The order of a reservation and why it is safe is told in ``reserve.py``; every state change
goes through :func:`app.booking.states.transition` and the transition writer
(:func:`app.booking.repository.write_transition`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, ParamSpec

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.booking import outcomes as out
from app.booking import repository
from app.booking.actions import TripActions
from app.booking.core import BookingCore
from app.booking.effects import SideEffects
from app.booking.eligibility import rules_from_settings
from app.booking.operators import Operators
from app.booking.reserve import Reservations
from app.booking.schemas import BookingChanged, BookingNotFound, OrgBooking, RiderLike
from app.platform import metrics
from app.platform.db import in_session
from app.platform.redis import RedisClient, RedisKeys
from app.platform.settings import Settings
from app.platform.shutdown import RunToEnd
from app.vehicle_index import VehicleIndex

__all__ = ["BookingChanged", "BookingNotFound", "BookingService", "OrgBooking", "RiderLike"]


class BookingService:
    """Booking's one entry point: the reads, ``reserve`` / ``reserve_for_organisation`` and
    ``act``, each the function of the module that does the work (same typed signature)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        redis: RedisClient,
        keys: RedisKeys,
        index: VehicleIndex,
        http: Any,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.redis = redis
        self.keys = keys
        #: The time every part of booking reads; a test may set another.
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.effects = SideEffects(sessions=sessions, redis=redis, keys=keys, index=index)
        # The parts read the time through self.now, not the clock itself, so a clock set on
        # the service later is the one they all follow.
        self.core = BookingCore(
            sessions=sessions, settings=settings, clock=self.now, effects=self.effects
        )
        self.operators = Operators(self.core, http)
        reservations = Reservations(
            self.core, self.operators, rules_from_settings(settings.eligibility_rules)
        )
        # A reservation or trip action runs to its end even if its request is cancelled (a
        # shutdown's grace ran out, the client left): stopped between the operator's answer
        # and our commit it would leave the booking PENDING until reconciliation.
        # open_runtime waits for them (aclose) before it closes the pools.
        self._operations = RunToEnd("booking")
        self.reserve = self._operations.wrap(counted("reserve", reservations.reserve))
        self.reserve_for_organisation = self._operations.wrap(
            counted("reserve", reservations.reserve_for_organisation)
        )
        self.act = self._operations.wrap(counted_act(TripActions(self.core, self.operators).act))
        self.booking_for = in_session(sessions, repository.booking_for)
        self.booking_by_id = in_session(sessions, repository.booking_by_id)
        self.bookings_of = in_session(sessions, repository.bookings_of)
        self.events_of = in_session(sessions, repository.events_of)

    def now(self) -> datetime:
        return self.clock()

    async def aclose(self) -> None:
        """Wait for the booking operations still running, then stop the side effects' retries
        (the process is shutting down)."""
        await self._operations.wait()
        await self.effects.aclose()


_P = ParamSpec("_P")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def outcome_label(outcome: out.Outcome) -> str:
    """``ok``, or the answer's kind in snake case (``vehicle_unavailable``): a closed set."""
    if isinstance(outcome, out.BookingDone):
        return "ok"
    return _CAMEL.sub("_", type(outcome).__name__).lower()


def counted(
    action: str, flow: Callable[_P, Coroutine[Any, Any, out.Outcome]]
) -> Callable[_P, Coroutine[Any, Any, out.Outcome]]:
    """``flow`` with each answer counted in ``mobility_bookings_total`` under ``action``."""

    async def run(*args: _P.args, **kwargs: _P.kwargs) -> out.Outcome:
        try:
            outcome = await flow(*args, **kwargs)
        except Exception:
            metrics.BOOKINGS.labels(action, "error").inc()  # an answer the caller never got
            raise
        metrics.BOOKINGS.labels(action, outcome_label(outcome)).inc()
        return outcome

    return run


def counted_act(
    act: Callable[_P, Coroutine[Any, Any, out.Outcome]],
) -> Callable[_P, Coroutine[Any, Any, out.Outcome]]:
    """The trip actions, counted under the event's name (start, pause, resume, finish,
    cancel)."""

    async def run(*args: _P.args, **kwargs: _P.kwargs) -> out.Outcome:
        event = kwargs.get("event")
        action = str(getattr(event, "value", event)).lower()
        try:
            outcome = await act(*args, **kwargs)
        except Exception:
            metrics.BOOKINGS.labels(action, "error").inc()
            raise
        metrics.BOOKINGS.labels(action, outcome_label(outcome)).inc()
        return outcome

    return run
