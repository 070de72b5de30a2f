"""The reserve flow: a rider (or an organisation, for one of its members) books a vehicle.

The order of things is what makes this safe (DESIGN.md, "Booking"):

1. The idempotency key is claimed (``app/booking/idempotency.py``).
2. Availability and eligibility are checked before any operator is called
   (``app/booking/availability.py``; for an organisation, also its policy:
   ``app/booking/organisation.py``).
3. The booking row is inserted PENDING. The unique partial index over active bookings is the
   arbiter: the loser of a race for one vehicle gets ``VehicleUnavailable`` here, before any
   operator call. The vehicle leaves search in the same transaction (and in the Redis index
   right after).
4. The operator is called outside any transaction, within a deadline. Its reference for the
   booking is stored before the call that binds it, so a crash in between can be reconciled.
5. The confirmation and the idempotent answer are committed together. If that commit fails
   after the operator said yes, the operator's booking is cancelled (compensation,
   ``app/booking/operators.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from adapters.base import AdapterConfigError
from adapters.booking import (
    BookingContext,
    BookingOperator,
    OperatorBooking,
    OperatorBookingState,
    ReservationRequest,
)
from adapters.booking import OperatorRejected as OperatorSaidNo
from adapters.booking import OperatorUnavailable as OperatorDown
from app.booking import idempotency as idem
from app.booking import outcomes as out
from app.booking import repository
from app.booking.availability import find_vehicle, refusal
from app.booking.core import BookingCore, owner_of, quietly
from app.booking.eligibility import EligibilityRules
from app.booking.offers import OfferInvalid, verify_offer
from app.booking.operators import Operators
from app.booking.organisation import on_behalf, policy_refusal
from app.booking.receipts import plan_snapshot
from app.booking.schemas import BookingChanged, OrgBooking, RiderLike
from app.booking.states import BookingEvent, BookingState
from app.fleet.principal import OrgActor
from app.models import Booking, Provider
from app.platform.db import transaction
from app.platform.settings import Settings
from app.vehicle_index import VehicleDoc

log = logging.getLogger(__name__)

__all__ = ["Reservations"]


class _ActiveBookingLimitReached(Exception):
    pass


class Reservations:
    def __init__(self, core: BookingCore, operators: Operators, rules: EligibilityRules) -> None:
        self.core = core
        self.operators = operators
        self.rules = rules

    async def reserve_for_organisation(
        self,
        actor: OrgActor,
        *,
        member_id: uuid.UUID | None,
        cost_centre_id: uuid.UUID | None,
        vehicle_id: str,
        idempotency_key: str,
        offer_id: str | None = None,
    ) -> out.Outcome:
        """Book for a member of ``actor``'s organisation (``member_id`` None: the acting
        member themselves), charged to ``cost_centre_id`` (default: the member's)."""
        who = await on_behalf(
            self.core.sessions, actor, member_id=member_id, cost_centre_id=cost_centre_id
        )
        return await self.reserve(
            who.rider,
            vehicle_id=vehicle_id,
            idempotency_key=idempotency_key,
            offer_id=offer_id,
            org=who.org,
            owner=who.owner,
        )

    async def reserve(
        self,
        rider: RiderLike,
        *,
        vehicle_id: str,
        idempotency_key: str,
        offer_id: str | None = None,
        org: OrgBooking | None = None,
        owner: str | None = None,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> out.Outcome:
        """Reserve ``vehicle_id`` for ``rider``. With ``offer_id`` (from ``quote`` or
        ``tripOptions``), the offer's price is the booking's estimate; an offer that is not
        ours, not for this vehicle, or past its ``validUntil`` is refused before anything.
        ``org``: booked for an organisation (its policy applies); ``owner``: whose the
        idempotency key is (default the rider); ``viewer_orgs``: the caller's organisations,
        whose private fleets it may book."""
        now = self.core.now()
        payload = {
            "vehicleId": vehicle_id,
            "offerId": offer_id,
            "for": str(rider.id),
            "organisation": str(org.organisation_id) if org else None,
            "costCentre": str(org.cost_centre_id) if org and org.cost_centre_id else None,
        }

        async def run(claimed: idem.Claimed) -> out.Outcome:
            estimated_price: tuple[int, str] | None = None
            if offer_id is not None:
                offer = verify_offer(self.core.settings, offer_id, now)
                if offer.vehicle_id != vehicle_id:
                    raise OfferInvalid(
                        f"that offer is for vehicle {offer.vehicle_id}, not {vehicle_id}"
                    )
                estimated_price = offer.estimated_price
            async with self.core.sessions() as session:
                earlier = await repository.booking_of_request(
                    session, rider.id, claimed.owner, claimed.key
                )
            if earlier is not None:
                # The first request with this key died after booking (its lock lapsed, so
                # this retry took the key over): answer with that booking, never with
                # "someone has this vehicle" (it is this rider). Still PENDING: the operator
                # has not been asked yet (reconciliation will), so it is still in progress.
                booking_id, state = earlier
                if state == BookingState.PENDING.value:
                    raise idem.IdempotencyKeyInProgress(
                        f"the booking made with idempotency key {idempotency_key!r} is being "
                        "settled with the operator; retry in a minute"
                    )
                return await self.core.answer(claimed, out.BookingDone(booking_id))
            allowed = frozenset({org.organisation_id}) if org else viewer_orgs
            return await self._reserve(
                rider, claimed, vehicle_id, estimated_price, now, org=org, allowed_orgs=allowed
            )

        # A retry gets the first answer whatever became of the offer since: after a lost answer
        # it must learn of the booking it made, not that the offer has expired meanwhile.
        return await self.core.once(
            owner or owner_of(rider), idempotency_key, "reserveVehicle", payload, now, run
        )

    async def _reserve(
        self,
        rider: RiderLike,
        claimed: idem.Claimed,
        vehicle_id: str,
        estimated_price: tuple[int, str] | None,
        now: datetime,
        *,
        org: OrgBooking | None,
        allowed_orgs: frozenset[uuid.UUID],
    ) -> out.Outcome:
        found = await find_vehicle(
            self.core.sessions,
            vehicle_id,
            allowed_orgs=allowed_orgs,
            for_organisation=org is not None,
        )
        if found is None:
            return await self.core.answer(
                claimed,
                out.VehicleUnavailable(vehicle_id, "NOT_FOUND", f"no vehicle {vehicle_id!r}"),
            )
        vehicle, provider, vtype, plan = found.vehicle, found.provider, found.vtype, found.plan
        refused = refusal(self.rules, rider, vehicle_id, vehicle, now)
        if refused is not None:
            return await self.core.answer(claimed, refused)
        if estimated_price is None and plan is not None:
            # Without an accepted offer, the estimate is what unlocking costs.
            estimated_price = (plan.price_minor, plan.currency)
        if org is not None:
            violated = await policy_refusal(
                self.core.sessions, org, rider.id, vehicle, estimated_price, now, claimed
            )
            if violated is not None:
                return violated
        try:
            operator = self.operators.operator_for(provider)
        except AdapterConfigError as exc:
            log.error("provider %s has an unusable booking configuration: %s", provider.id, exc)
            # Not stored: once staff mend the configuration, a retry with this key must run.
            await idem.release(self.core.sessions, claimed)
            return out.OperatorUnavailable(
                provider.id, None, "booking is not available for this operator right now"
            )
        if operator is None:
            return await self.core.answer(claimed, _external(vehicle, provider))

        # 3. Claim the vehicle: the unique partial index decides who gets it.
        reserve_minutes = (
            vtype.default_reserve_time_minutes
            if vtype and vtype.default_reserve_time_minutes
            else self.core.settings.default_reservation_minutes
        )
        booking = Booking(
            id=uuid.uuid4(),
            user_id=rider.id,
            provider_id=provider.id,
            vehicle_id=vehicle.id,
            vehicle_external_id=vehicle.id.split(":", 1)[-1],
            vehicle_type_id=vehicle.vehicle_type_id,
            form_factor=vehicle.form_factor,
            state=BookingState.PENDING.value,
            pricing_plan=plan_snapshot(plan) if plan else None,
            co2_grams_per_km=vtype.co2_grams_per_km if vtype else None,
            currency=estimated_price[1] if estimated_price else None,
            estimated_price_minor=estimated_price[0] if estimated_price else None,
            start_lat=vehicle.lat,
            start_lon=vehicle.lon,
            idempotency_owner=claimed.owner,
            idempotency_key=claimed.key,
            organisation_id=org.organisation_id if org else None,
            cost_centre_id=org.cost_centre_id if org else None,
            booked_by_user_id=org.booked_by_user_id if org else None,
            booked_by_api_key_id=org.booked_by_api_key_id if org else None,
            created_at=now,
            updated_at=now,
        )
        lost = await self._hold(booking, claimed, vehicle_id, now)
        if lost is not None:
            return lost
        await self.core.effects.refresh_vehicle(vehicle.id)
        return await self._book(operator, rider, claimed, booking.id, vehicle, reserve_minutes)

    async def _hold(
        self, booking: Booking, claimed: idem.Claimed, vehicle_id: str, now: datetime
    ) -> out.Outcome | None:
        """Insert the booking PENDING, its vehicle reserved; the answer if it lost the vehicle
        (or the rider holds as many bookings as one may), None if it holds it now."""
        limit = self.core.settings.max_active_bookings_per_rider
        try:
            async with transaction(self.core.sessions) as session:
                if not await repository.may_hold_another(session, booking.user_id, limit):
                    raise _ActiveBookingLimitReached
                await repository.insert_pending(session, booking, now)
        except _ActiveBookingLimitReached:
            return await self.core.answer(
                claimed,
                out.ActiveBookingLimit(
                    limit,
                    f"at most {limit} active bookings per rider: end or cancel one first",
                ),
            )
        except IntegrityError as exc:
            if "ux_bookings_active_vehicle" not in str(exc.orig):
                raise
            return await self.core.answer(
                claimed,
                out.VehicleUnavailable(vehicle_id, "BOOKED", "someone else has just booked it"),
            )
        return None

    async def _book(
        self,
        operator: BookingOperator,
        rider: RiderLike,
        claimed: idem.Claimed,
        booking_id: uuid.UUID,
        vehicle: VehicleDoc,
        reserve_minutes: int,
    ) -> out.Outcome:
        # 4. The operator, outside any transaction.
        provider_id = vehicle.provider_id
        ctx = await self.operators.context(provider_id)
        request = ReservationRequest(
            idempotency_key=str(booking_id),
            vehicle_external_id=vehicle.id.split(":", 1)[-1],
            lat=vehicle.lat,
            lon=vehicle.lon,
            rider_reference=_rider_reference(rider),
        )
        try:
            async with asyncio.timeout(self.core.settings.booking_deadline_seconds):
                offer = await operator.prepare(ctx, request)
        except (OperatorDown, TimeoutError) as exc:
            # Nothing binding exists at the operator yet: fail, free the vehicle, and let the
            # client retry with the same key.
            message = _message(exc, self.core.settings)
            await self.core.settle(
                booking_id,
                BookingEvent.FAIL,
                "operator",
                {"error": message},
                failure_code="OPERATOR_UNAVAILABLE",
            )
            await idem.release(self.core.sessions, claimed)
            return out.OperatorUnavailable(provider_id, _retry_after(exc), message)
        except OperatorSaidNo as exc:
            return await self._rejected(booking_id, provider_id, claimed, exc)
        async with transaction(self.core.sessions) as session:
            await repository.set_operator_reference(
                session, booking_id, offer.reference, self.core.now()
            )
        try:
            answer = await self.operators.call(operator.reserve(ctx, offer, request))
        except OperatorSaidNo as exc:
            return await self._rejected(booking_id, provider_id, claimed, exc)
        except OperatorDown as exc:
            # The outcome at the operator is unknown: cancel whatever it may hold, so no
            # vehicle stays blocked there with nobody riding it.
            await self.operators.fail_compensated(
                operator,
                ctx,
                offer.reference,
                booking_id,
                None,
                "OPERATOR_UNAVAILABLE",
                exc.message,
            )
            await idem.release(self.core.sessions, claimed)
            return out.OperatorUnavailable(provider_id, exc.retry_after_seconds, exc.message)
        if answer.state is not OperatorBookingState.CONFIRMED:
            message = f"the operator answered {answer.raw_state or answer.state.value}"
            if await self.operators.compensate(operator, ctx, answer.reference, booking_id):
                await self.core.settle(
                    booking_id,
                    BookingEvent.REJECT,
                    "operator",
                    {"error": message},
                    failure_code="OPERATOR_REJECTED",
                )
            else:
                await self.operators.compensation_due(booking_id, message)
            return await self.core.answer(claimed, out.OperatorRejected(provider_id, None, message))
        return await self._confirm(operator, ctx, claimed, booking_id, answer, reserve_minutes)

    async def _rejected(
        self,
        booking_id: uuid.UUID,
        provider_id: str,
        claimed: idem.Claimed,
        exc: OperatorSaidNo,
    ) -> out.Outcome:
        await self.core.settle(
            booking_id,
            BookingEvent.REJECT,
            "operator",
            {"error": exc.message, "operator_code": exc.operator_code},
            failure_code="OPERATOR_REJECTED",
        )
        return await self.core.answer(
            claimed, out.OperatorRejected(provider_id, exc.operator_code, exc.message)
        )

    async def _confirm(
        self,
        operator: BookingOperator,
        ctx: BookingContext,
        claimed: idem.Claimed,
        booking_id: uuid.UUID,
        answer: OperatorBooking,
        reserve_minutes: int,
    ) -> out.Outcome:
        # 5. Confirm and answer in one transaction; compensate if that fails.
        reserved_until = answer.expires_at or (self.core.now() + timedelta(minutes=reserve_minutes))
        done = out.BookingDone(booking_id)
        try:
            async with transaction(self.core.sessions) as session:
                confirmed = await repository.write_transition(
                    session,
                    booking_id,
                    expected=BookingState.PENDING,
                    event=BookingEvent.CONFIRM,
                    cause="operator",
                    detail={"operator_state": answer.raw_state},
                    now=self.core.now(),
                    values={
                        "operator_booking_id": answer.reference,
                        "operator_leg_id": answer.leg_reference,
                        "reserved_until": reserved_until,
                    },
                )
                if not confirmed:
                    raise BookingChanged("the booking was settled meanwhile")
                await idem.complete(session, claimed, out.to_json(done))
        except (SQLAlchemyError, OSError, BookingChanged) as exc:
            log.error(
                "booking %s: confirmation not stored (%s); cancelling at the operator",
                booking_id,
                exc,
            )
            await quietly(
                self.operators.fail_compensated(
                    operator,
                    ctx,
                    answer.reference,
                    booking_id,
                    answer,
                    "COMMIT_FAILED",
                    str(exc)[:500],
                )
            )
            failed = out.BookingFailed(
                booking_id, "the booking could not be completed; nothing was charged"
            )
            await quietly(self.core.answer(claimed, failed))
            return failed
        await self.core.effects.publish(booking_id)
        return done


def _rider_reference(rider: RiderLike) -> str:
    # Operators get a stable pseudonym, never who the rider is.
    return hashlib.sha256(f"rider:{rider.id}".encode()).hexdigest()[:24]


def _external(vehicle: VehicleDoc, provider: Provider) -> out.ExternalBooking:
    uris: dict[str, Any] = {}
    raw = vehicle.rental_uris
    if isinstance(raw, str):
        uris = orjson.loads(raw) or {}
    elif isinstance(raw, dict):
        uris = raw
    info = provider.system_info or {}
    return out.ExternalBooking(
        vehicle_id=vehicle.id,
        provider_id=provider.id,
        provider_name=provider.name,
        android_uri=uris.get("android") or info.get("android_store_uri"),
        ios_uri=uris.get("ios") or info.get("ios_store_uri"),
        web_uri=uris.get("web") or info.get("url"),
        message=f"{provider.name} takes bookings in its own app only",
    )


def _message(exc: BaseException, settings: Settings) -> str:
    if isinstance(exc, TimeoutError):
        return f"the operator did not answer within {settings.booking_deadline_seconds:g}s"
    return getattr(exc, "message", str(exc))


def _retry_after(exc: BaseException) -> float | None:
    return getattr(exc, "retry_after_seconds", None)
