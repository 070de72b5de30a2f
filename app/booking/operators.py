"""Operator calls and compensation: which booking API a provider uses, with which credentials,
every call under the booking deadline, and the cancel that undoes an operator's booking we
could not keep.

Compensation (DESIGN.md, "Booking"): when our side fails after the operator may have said yes,
the operator's booking is cancelled. A cancel that does not get through leaves ours PENDING,
its vehicle held, and marked ``COMPENSATION_DUE``: maintenance cancels it later
(``app/booking/maintenance.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, TypeVar

import orjson

from adapters.base import AdapterConfigError
from adapters.booking import (
    BookingCapability,
    BookingContext,
    BookingNotFoundAtOperator,
    BookingOperator,
    OperatorBooking,
    OperatorBookingState,
    OperatorOffer,
    Position,
    ReservationRequest,
    load_booking_operator,
)
from adapters.booking import OperatorRejected as OperatorSaidNo
from adapters.booking import OperatorUnavailable as OperatorDown
from adapters.credentials import OperatorAuth
from app.booking import repository
from app.booking.core import BookingCore
from app.booking.states import BookingEvent
from app.models import Provider
from app.platform import metrics
from app.platform.db import transaction
from providers.admin import credentials_for

log = logging.getLogger(__name__)

__all__ = ["MeteredOperator", "Operators"]

_T = TypeVar("_T")


class Operators:
    """The operators' booking APIs, for one booking service (it caches each provider's loaded
    operator and its credentials)."""

    def __init__(self, core: BookingCore, http: Any) -> None:
        self.core = core
        self.http = http
        self._operators: dict[str, tuple[str, BookingOperator]] = {}
        self._auths: dict[str, OperatorAuth] = {}

    def operator_for(self, provider: Provider) -> BookingOperator | None:
        """The provider's booking operator (cached per configuration), None if it has none."""
        if not provider.booking:
            return None
        signature = orjson.dumps(provider.booking, option=orjson.OPT_SORT_KEYS).decode()
        cached = self._operators.get(provider.id)
        if cached is not None and cached[0] == signature:
            return cached[1]
        operator = MeteredOperator(
            load_booking_operator(
                str(provider.booking.get("operator", "")), provider.booking.get("config") or {}
            ),
            provider.id,
        )
        self._operators[provider.id] = (signature, operator)
        return operator

    async def operator_of(self, provider_id: str) -> BookingOperator | None:
        """The provider's booking operator; None if it has none now or its configuration is
        unusable (logged: staff must mend it)."""
        async with self.core.sessions() as session:
            provider = await session.get(Provider, provider_id)
        if provider is None:
            return None
        try:
            return self.operator_for(provider)
        except AdapterConfigError as exc:
            log.error("provider %s has an unusable booking configuration: %s", provider_id, exc)
            return None

    async def context(self, provider_id: str) -> BookingContext:
        async with self.core.sessions() as session:
            credentials = await credentials_for(session, provider_id)
        if credentials is None:
            self._auths.pop(provider_id, None)
            return BookingContext(http=self.http)
        auth = self._auths.get(provider_id)
        if auth is None or auth.credentials != credentials:
            auth = self._auths[provider_id] = OperatorAuth(credentials)
        return BookingContext(http=self.http, auth=auth)

    async def call(self, call: Awaitable[OperatorBooking]) -> OperatorBooking:
        deadline = self.core.settings.booking_deadline_seconds
        try:
            async with asyncio.timeout(deadline):
                return await call
        except TimeoutError:
            raise OperatorDown(f"the operator did not answer within {deadline:g}s") from None

    # ------------------------------------------------------------------ compensation

    async def fail_compensated(
        self,
        operator: BookingOperator,
        ctx: BookingContext,
        reference: str,
        booking_id: uuid.UUID,
        known: OperatorBooking | None,
        failure_code: str,
        error: str,
    ) -> None:
        """Cancel at the operator, then fail ours; if the cancel did not get through, the
        booking stays PENDING (vehicle held) and marked, and maintenance cancels it later:
        a vehicle must not be free here while the operator may still hold it for us."""
        if await self.compensate(operator, ctx, reference, booking_id, known):
            await self.core.settle(
                booking_id,
                BookingEvent.FAIL,
                "compensation",
                {"error": error},
                failure_code=failure_code,
            )
        else:
            await self.compensation_due(booking_id, error)

    async def compensation_due(self, booking_id: uuid.UUID, error: str) -> None:
        async with transaction(self.core.sessions) as session:
            await repository.mark_compensation_due(session, booking_id, self.core.now())
        log.warning("booking %s: cancel at the operator still due (%s)", booking_id, error)

    async def compensate(
        self,
        operator: BookingOperator,
        ctx: BookingContext,
        reference: str,
        booking_id: uuid.UUID,
        known: OperatorBooking | None = None,
    ) -> bool:
        """Cancel at the operator (best effort, recorded). True if the operator confirmed."""
        target = known or OperatorBooking(reference=reference, state=OperatorBookingState.PENDING)
        try:
            await self.call(
                operator.cancel(ctx, target, idempotency_key=f"{booking_id}:compensate")
            )
            ok, detail = True, "cancelled at the operator"
        except (OperatorSaidNo, BookingNotFoundAtOperator) as exc:
            # Nothing to cancel there (never created, or already gone).
            ok, detail = True, f"nothing to cancel: {exc.message}"
        except OperatorDown as exc:
            ok, detail = False, f"cancel failed: {exc.message}; reconciliation will retry"
        log.info("booking %s: compensation: %s", booking_id, detail)
        return ok


class MeteredOperator:
    """A provider's booking operator with every call timed and counted by outcome
    (``mobility_operator_call_duration_seconds``): the one place all booking calls pass."""

    name: ClassVar[str] = "metered"

    def __init__(self, inner: BookingOperator, provider_id: str) -> None:
        self.inner = inner
        self.provider_id = provider_id

    @property
    def capabilities(self) -> frozenset[BookingCapability]:
        return self.inner.capabilities

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BookingOperator:
        raise TypeError("a metered operator wraps a loaded operator; it is not configured")

    async def _timed(self, action: str, call: Awaitable[_T]) -> _T:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await call
            outcome = "ok"
            return result
        except OperatorSaidNo:
            outcome = "rejected"
            raise
        except BookingNotFoundAtOperator:
            outcome = "not_found"
            raise
        except (OperatorDown, asyncio.CancelledError):
            # Cancelled: the booking deadline (Operators.call) ran out while waiting.
            outcome = "unavailable"
            raise
        finally:
            metrics.OPERATOR_CALLS.labels(self.provider_id, action, outcome).observe(
                time.perf_counter() - started
            )

    async def prepare(self, ctx: BookingContext, request: ReservationRequest) -> OperatorOffer:
        return await self._timed("prepare", self.inner.prepare(ctx, request))

    async def reserve(
        self, ctx: BookingContext, offer: OperatorOffer, request: ReservationRequest
    ) -> OperatorBooking:
        return await self._timed("reserve", self.inner.reserve(ctx, offer, request))

    async def start(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking:
        return await self._timed(
            "start", self.inner.start(ctx, booking, idempotency_key=idempotency_key)
        )

    async def pause(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking:
        return await self._timed(
            "pause", self.inner.pause(ctx, booking, idempotency_key=idempotency_key)
        )

    async def resume(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking:
        return await self._timed(
            "resume", self.inner.resume(ctx, booking, idempotency_key=idempotency_key)
        )

    async def end(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str, at: Position
    ) -> OperatorBooking:
        return await self._timed(
            "end", self.inner.end(ctx, booking, idempotency_key=idempotency_key, at=at)
        )

    async def cancel(
        self, ctx: BookingContext, booking: OperatorBooking, *, idempotency_key: str
    ) -> OperatorBooking:
        return await self._timed(
            "cancel", self.inner.cancel(ctx, booking, idempotency_key=idempotency_key)
        )

    async def status(self, ctx: BookingContext, reference: str) -> OperatorBooking:
        return await self._timed("status", self.inner.status(ctx, reference))
