"""Unified booking: reserve, start, pause, resume, end and cancel any operator's vehicle.

The order of things is what makes this safe (DESIGN.md, "Booking"):

1. The idempotency key is claimed (app/booking/idempotency.py).
2. Eligibility and availability are checked before any operator is called.
3. The booking row is inserted PENDING. The unique partial index over active bookings is the
   arbiter: the loser of a race for one vehicle gets ``VehicleUnavailable`` here, before any
   operator call. The vehicle leaves search in the same transaction (and in the Redis index
   right after).
4. The operator is called outside any transaction, within a deadline. Its reference for the
   booking is stored before the call that binds it, so a crash in between can be reconciled.
5. The confirmation and the idempotent answer are committed together. If that commit fails
   after the operator said yes, the operator's booking is cancelled (compensation).

Every state change goes through :func:`app.booking.states.transition` and is written with an
event row (time, cause) in the same transaction, guarded by the state it was read in, so two
concurrent changes cannot both apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from adapters.base import AdapterConfigError
from adapters.booking import (
    BookingContext,
    BookingNotFoundAtOperator,
    BookingOperator,
    OperatorBooking,
    OperatorBookingState,
    ReservationRequest,
    load_booking_operator,
)
from adapters.booking import OperatorRejected as OperatorSaidNo
from adapters.booking import OperatorUnavailable as OperatorDown
from adapters.credentials import OperatorAuth
from app.advisory_locks import RIDER_BOOKINGS_LOCK, VEHICLES_LOCK_SHARED
from app.booking import idempotency as idem
from app.booking import outcomes as out
from app.booking.eligibility import LicenceStatus, refusals, rules_from_settings
from app.booking.offers import OfferInvalid, verify_offer
from app.booking.receipts import plan_snapshot, receipt_for
from app.booking.schemas import (
    BookingBusy,
    BookingChanged,
    BookingNotFound,
    OrgBooking,
    RiderLike,
)
from app.booking.states import ACTIVE, TERMINAL, BookingEvent, BookingState, transition
from app.db import transaction
from app.errors import InvalidInput
from app.fleet.access import BOOKERS
from app.fleet.outbox import EventType, emit
from app.fleet.policies import PolicyRule, check_trip
from app.fleet.principal import ApiKeyPrincipal, OrgActor, Role
from app.models import (
    Booking,
    BookingEventRow,
    OrganisationMember,
    PricingPlan,
    Provider,
    User,
    Vehicle,
    VehicleType,
)
from app.redis import RedisKeys
from app.search import repository as search_repository
from app.search.ride_end import RideEndQuestion, ride_end_check
from app.settings import Settings
from app.staff_auth import Forbidden
from app.vehicle_index import VehicleDoc, VehicleIndex
from app.vocabulary import FormFactor
from geo.distance import geodesic_meters

log = logging.getLogger(__name__)

__all__ = ["BookingChanged", "BookingService", "RiderLike"]

_ACTIVE_NAMES = tuple(s.value for s in ACTIVE)
#: failure_code of a PENDING booking whose cancel at the operator did not get through yet.
COMPENSATION_DUE = "COMPENSATION_DUE"
# Index writes a booking change could not make: retried this often, at most this many held.
_INDEX_RETRY_SECONDS = 1.0
_MAX_INDEX_DEBT = 10_000


@dataclass(frozen=True, slots=True)
class _Action:
    event: BookingEvent
    operation: str  # idempotency operation name, also the mutation's


_ACTIONS = {
    BookingEvent.START: _Action(BookingEvent.START, "startTrip"),
    BookingEvent.PAUSE: _Action(BookingEvent.PAUSE, "pauseTrip"),
    BookingEvent.RESUME: _Action(BookingEvent.RESUME, "resumeTrip"),
    BookingEvent.FINISH: _Action(BookingEvent.FINISH, "endTrip"),
    BookingEvent.CANCEL: _Action(BookingEvent.CANCEL, "cancelBooking"),
}


def _owner(rider: RiderLike) -> str:
    return f"user:{rider.id}"


def _rider_reference(rider: RiderLike) -> str:
    # Operators get a stable pseudonym, never who the rider is.
    return hashlib.sha256(f"rider:{rider.id}".encode()).hexdigest()[:24]


class BookingService:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        redis: Redis,
        keys: RedisKeys,
        index: VehicleIndex,
        http: Any,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.redis = redis
        self.keys = keys
        self.index = index
        self.http = http
        self.rules = rules_from_settings(settings.eligibility_rules)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._operators: dict[str, tuple[str, BookingOperator]] = {}
        self._auths: dict[str, OperatorAuth] = {}
        # Vehicles whose search-index entry a booking change could not write (Redis down or
        # hung): retried every second by one task until written (see _owe_index).
        self._index_debt: set[str] = set()
        self._index_retry: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        return self._clock()

    # ------------------------------------------------------------------ operators

    def operator_for(self, provider: Provider) -> BookingOperator | None:
        """The provider's booking operator (cached per configuration), None if it has none."""
        if not provider.booking:
            return None
        signature = orjson.dumps(provider.booking, option=orjson.OPT_SORT_KEYS).decode()
        cached = self._operators.get(provider.id)
        if cached is not None and cached[0] == signature:
            return cached[1]
        operator = load_booking_operator(
            str(provider.booking.get("operator", "")), provider.booking.get("config") or {}
        )
        self._operators[provider.id] = (signature, operator)
        return operator

    async def _context(self, provider_id: str) -> BookingContext:
        from providers.admin import credentials_for

        async with self.sessions() as session:
            credentials = await credentials_for(session, provider_id)
        if credentials is None:
            self._auths.pop(provider_id, None)
            return BookingContext(http=self.http)
        auth = self._auths.get(provider_id)
        if auth is None or auth.credentials != credentials:
            auth = self._auths[provider_id] = OperatorAuth(credentials)
        return BookingContext(http=self.http, auth=auth)

    async def _call(self, call: Awaitable[OperatorBooking]) -> OperatorBooking:
        try:
            async with asyncio.timeout(self.settings.booking_deadline_seconds):
                return await call
        except TimeoutError:
            raise OperatorDown(
                f"the operator did not answer within {self.settings.booking_deadline_seconds:g}s"
            ) from None

    # ------------------------------------------------------------------ reads

    async def booking_for(
        self,
        rider_id: uuid.UUID | None,
        booking_id: uuid.UUID,
        *,
        api_key: ApiKeyPrincipal | None = None,
    ) -> Booking:
        """The booking, if the caller may see it: the rider it is for; for an organisation's
        booking also its OWNER, ADMIN and BOOKER members and its API keys. Anyone else:
        BOOKING_NOT_FOUND, exactly as for an id that does not exist."""
        async with self.sessions() as session:
            booking = await session.get(Booking, booking_id)
            if booking is not None and await _may_see(session, booking, rider_id, api_key):
                return booking
        raise BookingNotFound(f"no booking {booking_id} of yours")

    async def booking_by_id(self, booking_id: uuid.UUID) -> Booking:
        """No access check: for answering a caller about the booking it has just made."""
        async with self.sessions() as session:
            booking = await session.get(Booking, booking_id)
        if booking is None:
            raise BookingNotFound(f"no booking {booking_id}")
        return booking

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
        from app.accounts import Rider
        from app.fleet.organisations import cost_centre_of, member_of

        async with self.sessions() as session:
            if member_id is None:
                if actor.user_id is None:
                    raise InvalidInput(
                        "an API key books for a member: give onBehalfOf",
                        code="ON_BEHALF_OF_REQUIRED",
                    )
                member = (
                    await session.execute(
                        select(OrganisationMember).where(
                            OrganisationMember.organisation_id == actor.organisation_id,
                            OrganisationMember.user_id == actor.user_id,
                        )
                    )
                ).scalar_one()
            else:
                if actor.api_key is None and actor.role not in BOOKERS:
                    raise Forbidden(
                        "booking for someone else needs the OWNER, ADMIN or BOOKER role"
                    )
                member = await member_of(session, actor.organisation_id, member_id)
            if cost_centre_id is not None:
                await cost_centre_of(session, actor.organisation_id, cost_centre_id)
                if (
                    actor.api_key is None
                    and actor.role not in BOOKERS
                    and cost_centre_id != member.cost_centre_id
                ):
                    # A cost centre's policy may be looser: a rider charges their own only.
                    raise Forbidden("charging another cost centre needs a BOOKER role or above")
            user = await session.get(User, member.user_id)
            assert user is not None
        org = OrgBooking(
            organisation_id=actor.organisation_id,
            cost_centre_id=cost_centre_id or member.cost_centre_id,
            booked_by_user_id=actor.user_id,
            booked_by_api_key_id=actor.api_key.key_id if actor.api_key else None,
        )
        owner = f"key:{actor.api_key.key_id}" if actor.api_key else f"user:{actor.user_id}"
        return await self.reserve(
            Rider.from_user(user),
            vehicle_id=vehicle_id,
            idempotency_key=idempotency_key,
            offer_id=offer_id,
            org=org,
            owner=owner,
        )

    async def bookings_of(
        self, rider_id: uuid.UUID, *, active: bool | None, first: int
    ) -> list[Booking]:
        query = select(Booking).where(Booking.user_id == rider_id)
        if active is True:
            query = query.where(Booking.state.in_(_ACTIVE_NAMES))
        elif active is False:
            query = query.where(Booking.state.not_in(_ACTIVE_NAMES))
        query = query.order_by(Booking.created_at.desc(), Booking.id).limit(first)
        async with self.sessions() as session:
            return list((await session.execute(query)).scalars())

    async def events_of(self, booking_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(BookingEventRow)
                    .where(BookingEventRow.booking_id.in_(booking_ids))
                    .order_by(BookingEventRow.booking_id, BookingEventRow.id)
                )
            ).scalars()
            found: dict[uuid.UUID, list[Any]] = {b: [] for b in booking_ids}
            for row in rows:
                found[row.booking_id].append(row)
        return found

    # ------------------------------------------------------------------ reserve

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
        now = self.now()
        payload = {
            "vehicleId": vehicle_id,
            "offerId": offer_id,
            "for": str(rider.id),
            "organisation": str(org.organisation_id) if org else None,
            "costCentre": str(org.cost_centre_id) if org and org.cost_centre_id else None,
        }
        claimed = await idem.claim(
            self.sessions,
            owner=owner or _owner(rider),
            key=idempotency_key,
            operation="reserveVehicle",
            payload=payload,
            now=now,
            lock_seconds=self.settings.booking_deadline_seconds * 3 + 30,
            ttl_seconds=self.settings.idempotency_ttl_seconds,
        )
        if isinstance(claimed, idem.Replay):
            # Replayed whatever became of the offer since: a retry after a lost answer must
            # learn of the booking it made, not that the offer has expired meanwhile.
            return out.from_json(claimed.response)
        try:
            estimated_price: tuple[int, str] | None = None
            if offer_id is not None:
                offer = verify_offer(self.settings, offer_id, now)
                if offer.vehicle_id != vehicle_id:
                    raise OfferInvalid(
                        f"that offer is for vehicle {offer.vehicle_id}, not {vehicle_id}"
                    )
                estimated_price = offer.estimated_price
            earlier = await self._booking_of_request(rider.id, claimed)
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
                return await self._answer(claimed, out.BookingDone(booking_id))
            allowed = frozenset({org.organisation_id}) if org else viewer_orgs
            return await self._reserve(
                rider, claimed, vehicle_id, estimated_price, now, org=org, allowed_orgs=allowed
            )
        except BaseException:
            await _quietly(idem.release(self.sessions, claimed))
            raise

    async def _booking_of_request(
        self, rider_id: uuid.UUID, claimed: idem.Claimed
    ) -> tuple[uuid.UUID, str] | None:
        """The active booking an earlier request with this key made, if any (id, state)."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Booking.id, Booking.state)
                    .where(
                        Booking.user_id == rider_id,
                        Booking.idempotency_owner == claimed.owner,
                        Booking.idempotency_key == claimed.key,
                        Booking.state.in_(_ACTIVE_NAMES),
                    )
                    .order_by(Booking.created_at.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else (row.id, row.state)

    async def _claim(
        self,
        rider: RiderLike,
        key: str,
        operation: str,
        payload: Mapping[str, Any],
        now: datetime,
    ) -> idem.Claimed | idem.Replay:
        return await idem.claim(
            self.sessions,
            owner=_owner(rider),
            key=key,
            operation=operation,
            payload=payload,
            now=now,
            # Longer than any request can run: past it, the request is presumed dead.
            lock_seconds=self.settings.booking_deadline_seconds * 3 + 30,
            ttl_seconds=self.settings.idempotency_ttl_seconds,
        )

    async def _answer(self, claimed: idem.Claimed, outcome: out.Outcome) -> out.Outcome:
        async with transaction(self.sessions) as session:
            await idem.complete(session, claimed, out.to_json(outcome))
        return outcome

    async def _reserve(
        self,
        rider: RiderLike,
        claimed: idem.Claimed,
        vehicle_id: str,
        estimated_price: tuple[int, str] | None,
        now: datetime,
        *,
        org: OrgBooking | None = None,
        allowed_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> out.Outcome:
        async with self.sessions() as session:
            hit = await search_repository.vehicle_by_id(session, vehicle_id)
            provider = await session.get(Provider, hit.vehicle.provider_id) if hit else None
            vtype = (
                await session.get(VehicleType, hit.vehicle.vehicle_type_id)
                if hit and hit.vehicle.vehicle_type_id
                else None
            )
            plan = (
                await session.get(PricingPlan, hit.vehicle.pricing_plan_id)
                if hit and hit.vehicle.pricing_plan_id
                else None
            )
        if (
            hit is None
            or provider is None
            or (
                # Another organisation's private fleet: not there, as far as this caller knows.
                provider.private_to is not None and provider.private_to not in allowed_orgs
            )
        ):
            return await self._answer(
                claimed,
                out.VehicleUnavailable(vehicle_id, "NOT_FOUND", f"no vehicle {vehicle_id!r}"),
            )
        if provider.private_to is not None and org is None:
            # A pool vehicle is the organisation's: booked for it, within its policy.
            raise InvalidInput(
                "this vehicle is your organisation's: book it with organisationId",
                code="ORGANISATION_REQUIRED",
            )
        vehicle = hit.vehicle
        if vehicle.is_disabled:
            return await self._answer(
                claimed, out.VehicleUnavailable(vehicle_id, "DISABLED", "the vehicle is disabled")
            )
        if vehicle.is_reserved:
            return await self._answer(
                claimed,
                out.VehicleUnavailable(vehicle_id, "RESERVED", "someone else has this vehicle"),
            )
        form_factor = FormFactor(vehicle.form_factor)
        refused = refusals(
            self.rules,
            form_factor,
            licence=LicenceStatus(
                str(getattr(rider.licence_status, "value", rider.licence_status))
            ),
            birth_date=rider.birth_date,
            today=now.date(),
        )
        if refused:
            return await self._answer(
                claimed,
                out.NotEligible(
                    form_factor.value,
                    tuple((r.code, r.message) for r in refused),
                    "; ".join(r.message for r in refused),
                ),
            )
        if estimated_price is None and plan is not None:
            # Without an accepted offer, the estimate is what unlocking costs.
            estimated_price = (plan.price_minor, plan.currency)
        if org is not None:
            violated = await self._policy_refusal(
                org, rider, provider.id, vehicle, estimated_price, now, claimed
            )
            if violated is not None:
                return violated
        try:
            operator = self.operator_for(provider)
        except AdapterConfigError as exc:
            log.error("provider %s has an unusable booking configuration: %s", provider.id, exc)
            # Not stored: once staff mend the configuration, a retry with this key must run.
            await idem.release(self.sessions, claimed)
            return out.OperatorUnavailable(
                provider.id, None, "booking is not available for this operator right now"
            )
        if operator is None:
            return await self._answer(claimed, _external(vehicle, provider))

        # 3. Claim the vehicle: the unique partial index decides who gets it.
        reserve_minutes = (
            vtype.default_reserve_time_minutes
            if vtype and vtype.default_reserve_time_minutes
            else self.settings.default_reservation_minutes
        )
        booking_id = uuid.uuid4()
        limit = self.settings.max_active_bookings_per_rider
        try:
            async with transaction(self.sessions) as session:
                if not await _may_hold_another(session, rider.id, limit):
                    raise _ActiveBookingLimitReached
                session.add(
                    Booking(
                        id=booking_id,
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
                )
                await session.flush()
                _log_event(
                    session, booking_id, "RESERVE", None, BookingState.PENDING, "rider", now, {}
                )
                await lock_vehicles_shared(session, provider.id)
                await session.execute(
                    update(Vehicle).where(Vehicle.id == vehicle.id).values(is_reserved=True)
                )
        except _ActiveBookingLimitReached:
            return await self._answer(
                claimed,
                out.ActiveBookingLimit(
                    limit,
                    f"at most {limit} active bookings per rider: end or cancel one first",
                ),
            )
        except IntegrityError as exc:
            if "ux_bookings_active_vehicle" not in str(exc.orig):
                raise
            return await self._answer(
                claimed,
                out.VehicleUnavailable(vehicle_id, "BOOKED", "someone else has just booked it"),
            )
        await self._refresh_vehicle(vehicle.id)

        # 4. The operator, outside any transaction.
        ctx = await self._context(provider.id)
        request = ReservationRequest(
            idempotency_key=str(booking_id),
            vehicle_external_id=vehicle.id.split(":", 1)[-1],
            lat=vehicle.lat,
            lon=vehicle.lon,
            rider_reference=_rider_reference(rider),
        )
        try:
            async with asyncio.timeout(self.settings.booking_deadline_seconds):
                offer = await operator.prepare(ctx, request)
        except (OperatorDown, TimeoutError) as exc:
            # Nothing binding exists at the operator yet: fail, free the vehicle, and let the
            # client retry with the same key.
            message = _message(exc, self.settings)
            await self._settle(
                booking_id,
                BookingEvent.FAIL,
                "operator",
                {"error": message},
                failure_code="OPERATOR_UNAVAILABLE",
            )
            await idem.release(self.sessions, claimed)
            return out.OperatorUnavailable(provider.id, _retry_after(exc), message)
        except OperatorSaidNo as exc:
            await self._settle(
                booking_id,
                BookingEvent.REJECT,
                "operator",
                {"error": exc.message, "operator_code": exc.operator_code},
                failure_code="OPERATOR_REJECTED",
            )
            return await self._answer(
                claimed, out.OperatorRejected(provider.id, exc.operator_code, exc.message)
            )
        async with transaction(self.sessions) as session:
            await session.execute(
                update(Booking)
                .where(Booking.id == booking_id)
                .values(operator_booking_id=offer.reference, updated_at=self.now())
            )
        try:
            answer = await self._call(operator.reserve(ctx, offer, request))
        except OperatorSaidNo as exc:
            await self._settle(
                booking_id,
                BookingEvent.REJECT,
                "operator",
                {"error": exc.message, "operator_code": exc.operator_code},
                failure_code="OPERATOR_REJECTED",
            )
            return await self._answer(
                claimed, out.OperatorRejected(provider.id, exc.operator_code, exc.message)
            )
        except OperatorDown as exc:
            # The outcome at the operator is unknown: cancel whatever it may hold, so no
            # vehicle stays blocked there with nobody riding it.
            await self._fail_compensated(
                operator,
                ctx,
                offer.reference,
                booking_id,
                None,
                "OPERATOR_UNAVAILABLE",
                exc.message,
            )
            await idem.release(self.sessions, claimed)
            return out.OperatorUnavailable(provider.id, exc.retry_after_seconds, exc.message)
        if answer.state is not OperatorBookingState.CONFIRMED:
            message = f"the operator answered {answer.raw_state or answer.state.value}"
            if await self._compensate(operator, ctx, answer.reference, booking_id):
                await self._settle(
                    booking_id,
                    BookingEvent.REJECT,
                    "operator",
                    {"error": message},
                    failure_code="OPERATOR_REJECTED",
                )
            else:
                await self._compensation_due(booking_id, message)
            return await self._answer(claimed, out.OperatorRejected(provider.id, None, message))

        # 5. Confirm and answer in one transaction; compensate if that fails.
        reserved_until = answer.expires_at or (self.now() + timedelta(minutes=reserve_minutes))
        done = out.BookingDone(booking_id)
        try:
            async with transaction(self.sessions) as session:
                confirmed = await self._transition_in(
                    session,
                    booking_id,
                    expected=BookingState.PENDING,
                    event=BookingEvent.CONFIRM,
                    cause="operator",
                    detail={"operator_state": answer.raw_state},
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
            await _quietly(
                self._fail_compensated(
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
            await _quietly(self._answer(claimed, failed))
            return failed
        await self._publish(booking_id)
        return done

    async def _policy_refusal(
        self,
        org: OrgBooking,
        rider: RiderLike,
        provider_id: str,
        vehicle: VehicleDoc,
        estimated_price: tuple[int, str] | None,
        now: datetime,
        claimed: idem.Claimed,
    ) -> out.Outcome | None:
        """The organisation's policy, before any operator call; a refusal is answered and
        reported (``policy.violation`` in the outbox, in the answer's transaction)."""
        async with self.sessions() as session:
            found = await check_trip(
                session,
                organisation_id=org.organisation_id,
                cost_centre_id=org.cost_centre_id,
                member_user_id=rider.id,
                provider_id=provider_id,
                form_factor=vehicle.form_factor,
                estimated_price_minor=estimated_price[0] if estimated_price else None,
                currency=estimated_price[1] if estimated_price else None,
                lat=vehicle.lat,
                lon=vehicle.lon,
                at=now,
            )
        if not found:
            return None
        outcome = out.PolicyViolated(
            tuple((str(v.policy), v.detail) for v in found),
            "; ".join(v.detail for v in found),
        )
        async with transaction(self.sessions) as session:
            await emit(
                session,
                organisation_id=org.organisation_id,
                event_type=EventType.POLICY_VIOLATION,
                payload={
                    "member_user_id": str(rider.id),
                    "vehicle_id": vehicle.id,
                    "provider_id": provider_id,
                    "cost_centre_id": str(org.cost_centre_id) if org.cost_centre_id else None,
                    "violations": [{"policy": p, "detail": d} for p, d in outcome.violations],
                    "at": now.isoformat(),
                },
            )
            await idem.complete(session, claimed, out.to_json(outcome))
        return outcome

    async def _fail_compensated(
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
        if await self._compensate(operator, ctx, reference, booking_id, known):
            await self._settle(
                booking_id,
                BookingEvent.FAIL,
                "compensation",
                {"error": error},
                failure_code=failure_code,
            )
        else:
            await self._compensation_due(booking_id, error)

    async def _compensation_due(self, booking_id: uuid.UUID, error: str) -> None:
        async with transaction(self.sessions) as session:
            await session.execute(
                update(Booking)
                .where(Booking.id == booking_id, Booking.state == BookingState.PENDING.value)
                .values(failure_code=COMPENSATION_DUE, reconcile_after=self.now())
            )
        log.warning("booking %s: cancel at the operator still due (%s)", booking_id, error)

    async def _compensate(
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
            await self._call(
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

    # ------------------------------------------------------------------ ride

    async def act(
        self,
        rider: RiderLike | None,
        *,
        api_key: ApiKeyPrincipal | None = None,
        booking_id: uuid.UUID,
        event: BookingEvent,
        idempotency_key: str,
        lat: float | None = None,
        lon: float | None = None,
    ) -> out.Outcome:
        """Start, pause, resume, end (needs ``lat``/``lon``) or cancel a booking."""
        action = _ACTIONS[event]
        now = self.now()
        payload = {"bookingId": str(booking_id), "lat": lat, "lon": lon}
        if api_key is not None:
            owner = f"key:{api_key.key_id}"
        elif rider is not None:
            owner = _owner(rider)
        else:
            raise ValueError("a rider or an API key acts")
        # Access first: a replayed answer is no way around it (a booker since removed from
        # the organisation must not read the booking through an old key).
        await self.booking_for(rider.id if rider else None, booking_id, api_key=api_key)
        claimed = await idem.claim(
            self.sessions,
            owner=owner,
            key=idempotency_key,
            operation=action.operation,
            payload=payload,
            now=now,
            lock_seconds=self.settings.booking_deadline_seconds * 3 + 30,
            ttl_seconds=self.settings.idempotency_ttl_seconds,
        )
        if isinstance(claimed, idem.Replay):
            return out.from_json(claimed.response)
        try:
            booking = await self.booking_for(
                rider.id if rider is not None else None, booking_id, api_key=api_key
            )
            return await self._act(booking, claimed, booking_id, event, lat, lon)
        except BaseException:
            await _quietly(idem.release(self.sessions, claimed))
            raise

    async def _act(
        self,
        booking: Booking,
        claimed: idem.Claimed,
        booking_id: uuid.UUID,
        event: BookingEvent,
        lat: float | None,
        lon: float | None,
    ) -> out.Outcome:
        state = BookingState(booking.state)
        transition(state, event)  # IllegalTransition before anything else happens
        if event is BookingEvent.FINISH:
            if lat is None or lon is None:
                raise InvalidInput("endTrip needs the vehicle's position (lat, lon)")
            refusal = await self._ride_end_refusal(booking, lat, lon)
            if refusal is not None:
                return await self._answer(claimed, refusal)
            if booking.organisation_id is not None:
                outside = await self._outside_business_area(booking, lat, lon)
                if outside is not None:
                    return await self._answer(claimed, outside)
        operator = await self._operator_of(booking.provider_id)
        if operator is None:
            # Not stored: a retry with this key runs again once the operator is reachable.
            await idem.release(self.sessions, claimed)
            return out.OperatorUnavailable(
                booking.provider_id, None, "this operator's booking API is not available now"
            )
        lease = await self._take_lease(booking_id, state)
        if lease is None:
            raise BookingBusy("another change of this booking is under way; retry in a moment")
        ctx = await self._context(booking.provider_id)
        current = OperatorBooking(
            reference=booking.operator_booking_id or "",
            state=_operator_state(state),
            leg_reference=booking.operator_leg_id,
        )
        key = f"{booking_id}:{claimed.key}"
        try:
            if event is BookingEvent.START:
                answer = await self._call(operator.start(ctx, current, idempotency_key=key))
            elif event is BookingEvent.PAUSE:
                answer = await self._call(operator.pause(ctx, current, idempotency_key=key))
            elif event is BookingEvent.RESUME:
                answer = await self._call(operator.resume(ctx, current, idempotency_key=key))
            elif event is BookingEvent.FINISH:
                assert lat is not None and lon is not None
                answer = await self._call(
                    operator.end(ctx, current, idempotency_key=key, lat=lat, lon=lon)
                )
            else:
                answer = await self._call(operator.cancel(ctx, current, idempotency_key=key))
        except OperatorSaidNo as exc:
            await self._drop_lease(booking_id, lease)
            return await self._answer(
                claimed, out.OperatorRejected(booking.provider_id, exc.operator_code, exc.message)
            )
        except OperatorDown as exc:
            # The operator may have done it anyway: maintenance asks it and settles ours to
            # match; the rider may retry with the same key meanwhile.
            await self._drop_lease(booking_id, lease, reconcile=True)
            await idem.release(self.sessions, claimed)
            return out.OperatorUnavailable(
                booking.provider_id, exc.retry_after_seconds, exc.message
            )
        except BaseException:
            await _quietly(self._drop_lease(booking_id, lease, reconcile=True))
            raise
        now = self.now()
        values: dict[str, Any] = {}
        if event is BookingEvent.START:
            values["started_at"] = now
            position = await self._vehicle_position(booking.vehicle_id)
            if position is not None:
                values["start_lat"], values["start_lon"] = position
        elif event is BookingEvent.FINISH:
            assert lat is not None and lon is not None
            values.update(self._finish_values(booking, answer, lat, lon, now))
        done = out.BookingDone(booking_id)
        try:
            async with transaction(self.sessions) as session:
                applied = await self._transition_in(
                    session,
                    booking_id,
                    expected=state,
                    event=event,
                    cause="rider",
                    detail={"operator_state": answer.raw_state, "lat": lat, "lon": lon},
                    values=values,
                    end_position=(lat, lon) if lat is not None and lon is not None else None,
                    lease=lease,
                )
                if not applied:
                    # Our lease lapsed (a very slow operator) and something else moved.
                    raise BookingChanged("the booking changed meanwhile; read it again")
                await idem.complete(session, claimed, out.to_json(done))
        except BaseException:
            # The operator did it and we could not record it: maintenance re-reads it.
            await _quietly(self._drop_lease(booking_id, lease, reconcile=True))
            raise
        await self._after_change(booking.vehicle_id, booking_id)
        return done

    async def _operator_of(self, provider_id: str) -> BookingOperator | None:
        """The provider's booking operator; None if it has none now or its configuration is
        unusable (logged: staff must mend it)."""
        async with self.sessions() as session:
            provider = await session.get(Provider, provider_id)
        if provider is None:
            return None
        try:
            return self.operator_for(provider)
        except AdapterConfigError as exc:
            log.error("provider %s has an unusable booking configuration: %s", provider_id, exc)
            return None

    async def _take_lease(self, booking_id: uuid.UUID, expected: BookingState) -> str | None:
        """The right to change this booking (call its operator, then record the outcome), if
        it is still in ``expected`` and nobody else holds it; None otherwise."""
        token = secrets.token_hex(8)
        now = self.now()
        until = now + timedelta(seconds=self.settings.booking_deadline_seconds * 2 + 10)
        async with transaction(self.sessions) as session:
            taken = await session.execute(
                update(Booking)
                .where(
                    Booking.id == booking_id,
                    Booking.state == expected.value,
                    or_(Booking.action_until.is_(None), Booking.action_until < now),
                )
                .values(action_token=token, action_until=until)
                .returning(Booking.id)
            )
            return token if taken.first() is not None else None

    async def _drop_lease(
        self, booking_id: uuid.UUID, token: str, *, reconcile: bool = False
    ) -> None:
        values: dict[str, Any] = {"action_token": None, "action_until": None}
        if reconcile:
            values["reconcile_after"] = self.now() + timedelta(
                seconds=self.settings.booking_reconcile_after_seconds
            )
        async with transaction(self.sessions) as session:
            await session.execute(
                update(Booking)
                .where(Booking.id == booking_id, Booking.action_token == token)
                .values(**values)
            )

    def _finish_values(
        self,
        booking: Booking,
        answer: OperatorBooking,
        lat: float | None,
        lon: float | None,
        now: datetime,
    ) -> dict[str, Any]:
        """The final figures; ``lat``/``lon`` None: where the ride ended is not known (settled
        by reconciliation), only the operator's own distance counts."""
        started = booking.started_at or now
        if answer.distance_meters is not None:
            # The operator measured the ride (odometer, telemetry): that is what is billed.
            distance = answer.distance_meters
        elif (
            booking.start_lat is not None
            and booking.start_lon is not None
            and lat is not None
            and lon is not None
        ):
            # Otherwise the straight line from where the ride started to where the rider's
            # app says it ended (a lower bound of the real distance).
            distance = geodesic_meters(booking.start_lat, booking.start_lon, lat, lon)
        else:
            distance = 0.0
        values: dict[str, Any] = {
            "ended_at": now,
            "end_lat": lat,
            "end_lon": lon,
            "distance_meters": distance,
        }
        operator_price = (
            {"amount_minor": answer.price.amount_minor, "currency": answer.price.currency}
            if answer.price
            else None
        )
        if booking.pricing_plan:
            receipt = receipt_for(
                booking.pricing_plan,
                started_at=started,
                ended_at=now,
                distance_meters=distance,
                operator_price=operator_price,
            )
            values.update(
                receipt=receipt,
                final_price_minor=receipt["total_minor"],
                currency=receipt["currency"],
            )
        elif answer.price is not None:
            values.update(
                final_price_minor=answer.price.amount_minor,
                currency=answer.price.currency,
                receipt={
                    "currency": answer.price.currency,
                    "lines": [
                        {
                            "kind": "OPERATOR",
                            "label": "Operator's price",
                            "amount_minor": answer.price.amount_minor,
                        }
                    ],
                    "total_minor": answer.price.amount_minor,
                    "operator_price": operator_price,
                },
            )
        return values

    async def _outside_business_area(
        self, booking: Booking, lat: float, lon: float
    ) -> out.PolicyViolated | None:
        """An organisation's ride must also end inside its business area (the policy's other
        rules were checked when it was booked; its own estimate already counts as spent)."""
        assert booking.organisation_id is not None
        async with self.sessions() as session:
            found = await check_trip(
                session,
                organisation_id=booking.organisation_id,
                cost_centre_id=booking.cost_centre_id,
                member_user_id=booking.user_id,
                provider_id=booking.provider_id,
                form_factor=booking.form_factor,
                estimated_price_minor=booking.estimated_price_minor,
                currency=booking.currency,
                lat=lat,
                lon=lon,
                at=self.now(),
            )
        area = [v for v in found if v.policy is PolicyRule.BUSINESS_AREA]
        if not area:
            return None
        return out.PolicyViolated(
            tuple((str(v.policy), v.detail) for v in area), "; ".join(v.detail for v in area)
        )

    async def _ride_end_refusal(
        self, booking: Booking, lat: float, lon: float
    ) -> out.RideEndNotAllowed | None:
        async with self.sessions() as session:
            if booking.vehicle_type_id:
                types = await search_repository.vehicle_types_by_ids(
                    session, [booking.vehicle_type_id]
                )
                known_type = booking.vehicle_type_id in types
            else:
                known_type = False
            question = RideEndQuestion(
                lat=lat,
                lon=lon,
                vehicle_type_id=booking.vehicle_type_id if known_type else None,
                provider_id=None if known_type else booking.provider_id,
                form_factor=None if known_type else booking.form_factor,
            )
            answer = await ride_end_check(session, question)
        if answer.allowed:
            return None
        zone = answer.zone
        return out.RideEndNotAllowed(
            zone.id if zone else None,
            zone.name if zone else None,
            answer.reason,
        )

    async def _vehicle_position(self, vehicle_id: str) -> tuple[float, float] | None:
        async with self.sessions() as session:
            hit = await search_repository.vehicle_by_id(session, vehicle_id)
        return (hit.vehicle.lat, hit.vehicle.lon) if hit else None

    # ------------------------------------------------------------------ transitions

    async def _transition_in(
        self,
        session: AsyncSession,
        booking_id: uuid.UUID,
        *,
        expected: BookingState,
        event: BookingEvent,
        cause: str,
        detail: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        failure_code: str | None = None,
        end_position: tuple[float, float] | None = None,
        lease: str | None = None,
    ) -> bool:
        """Apply ``event`` to a booking still in ``expected`` and held by ``lease`` (None: by
        nobody); False if that is no longer so. Releases the lease and any reconcile mark."""
        new = transition(expected, event)
        now = self.now()
        changes: dict[str, Any] = {
            "state": new.value,
            "updated_at": now,
            "action_token": None,
            "action_until": None,
            "reconcile_after": None,
            **(values or {}),
        }
        if failure_code is not None:
            changes["failure_code"] = failure_code
        held = (
            Booking.action_token == lease
            if lease is not None
            else or_(Booking.action_until.is_(None), Booking.action_until < now)
        )
        result = await session.execute(
            update(Booking)
            .where(Booking.id == booking_id, Booking.state == expected.value, held)
            .values(**changes)
            .returning(
                Booking.vehicle_id,
                Booking.provider_id,
                Booking.organisation_id,
                Booking.user_id,
                Booking.cost_centre_id,
                Booking.final_price_minor,
                Booking.currency,
            )
        )
        row = result.first()
        if row is None:
            return False
        _log_event(session, booking_id, event, expected, new, cause, now, dict(detail))
        webhook_event = _WEBHOOK_EVENTS.get((expected, new)) or _WEBHOOK_EVENTS.get((None, new))
        if row.organisation_id is not None and webhook_event is not None:
            # In this transaction: the event exists if and only if the change does.
            await emit(
                session,
                organisation_id=row.organisation_id,
                event_type=webhook_event,
                payload={
                    "booking_id": str(booking_id),
                    "state": new.value,
                    "member_user_id": str(row.user_id),
                    "cost_centre_id": str(row.cost_centre_id) if row.cost_centre_id else None,
                    "vehicle_id": row.vehicle_id,
                    "provider_id": row.provider_id,
                    "final_price_minor": row.final_price_minor,
                    "currency": row.currency,
                    "cause": cause,
                    "at": now.isoformat(),
                },
            )
        if new in TERMINAL:
            vehicle_values: dict[str, Any] = {"is_reserved": False}
            if end_position is not None:
                # The vehicle is where the ride ended (until the operator's next feed says).
                vehicle_values["geom"] = func.ST_SetSRID(
                    func.ST_MakePoint(end_position[1], end_position[0]), 4326
                )
            await lock_vehicles_shared(session, row.provider_id)
            await session.execute(
                update(Vehicle).where(Vehicle.id == row.vehicle_id).values(**vehicle_values)
            )
        return True

    async def _settle(
        self,
        booking_id: uuid.UUID,
        event: BookingEvent,
        cause: str,
        detail: Mapping[str, Any],
        *,
        failure_code: str | None = None,
        expected: BookingState | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Apply ``event`` to a booking in ``expected`` (None: whatever active state it is in
        now) that nobody holds a lease on; False if it is not so."""
        async with transaction(self.sessions) as session:
            found = (
                await session.execute(
                    select(Booking.state, Booking.vehicle_id)
                    .where(Booking.id == booking_id)
                    .with_for_update()
                )
            ).first()
            if found is None or BookingState(found.state) in TERMINAL:
                return False
            state = BookingState(found.state)
            if expected is not None and state is not expected:
                return False
            applied = await self._transition_in(
                session,
                booking_id,
                expected=state,
                event=event,
                cause=cause,
                detail=detail,
                failure_code=failure_code,
                values=values,
            )
        if applied:
            await self._after_change(found.vehicle_id, booking_id)
        return applied

    async def _after_change(self, vehicle_id: str, booking_id: uuid.UUID) -> None:
        await self._refresh_vehicle(vehicle_id)
        await self._publish(booking_id)

    async def _refresh_vehicle(self, vehicle_id: str) -> bool:
        """Make the search index show the vehicle as PostGIS now has it (reserved ones are
        left out), and tell live subscribers. PostGIS is the truth: while Redis fails search
        answers from PostGIS, and the write is retried (_owe_index) so that a Redis that comes
        back (a hang, a network cut) does not serve the vehicle's earlier state."""
        async with self.sessions() as session:
            hit = await search_repository.vehicle_by_id(session, vehicle_id)
        if hit is None:
            return True
        doc: VehicleDoc = hit.vehicle
        try:
            await self.index.apply(doc.provider_id, [doc], ())
        except (RedisError, OSError) as exc:
            log.warning("index update for %s failed, retried until written: %s", vehicle_id, exc)
            self._owe_index(vehicle_id)
            return False
        try:
            await self.index.publish_delta(doc.provider_id, [], [doc], [])
        except (RedisError, OSError) as exc:
            # Subscribers resynchronise when their Redis subscription comes back.
            log.warning("live update for %s not published: %s", vehicle_id, exc)
        return True

    def _owe_index(self, vehicle_id: str) -> None:
        if len(self._index_debt) >= _MAX_INDEX_DEBT:
            # A long outage under load: the provider's next sync rebuilds its index anyway.
            log.warning("index retries full: %s waits for its provider's next sync", vehicle_id)
            return
        self._index_debt.add(vehicle_id)
        if self._index_retry is None or self._index_retry.done():
            self._index_retry = asyncio.create_task(self._pay_index_debt())

    async def _pay_index_debt(self) -> None:
        while self._index_debt:
            await asyncio.sleep(_INDEX_RETRY_SECONDS)
            try:
                await self.redis.ping()  # one timeout per round while Redis is away, not one each
            except (RedisError, OSError):
                continue
            for vehicle_id in list(self._index_debt):
                self._index_debt.discard(vehicle_id)
                try:
                    if not await self._refresh_vehicle(vehicle_id):
                        break  # re-owed; Redis went away again: wait for the next round
                except Exception:  # the database: keep the debt, try next round
                    log.exception("index retry for %s failed", vehicle_id)
                    self._index_debt.add(vehicle_id)
                    break

    async def aclose(self) -> None:
        """Stop retrying index writes (the process is shutting down; syncs rebuild)."""
        if self._index_retry is not None:
            self._index_retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._index_retry

    async def _publish(self, booking_id: uuid.UUID) -> None:
        try:
            await self.redis.publish(self.keys.booking_changes, str(booking_id).encode())
        except (RedisError, OSError) as exc:
            log.warning("booking update for %s not published: %s", booking_id, exc)


# The organisation events a transition sends (issue 6 webhooks); (None, state): from any state.
_WEBHOOK_EVENTS: dict[tuple[BookingState | None, BookingState], EventType] = {
    (None, BookingState.CONFIRMED): EventType.BOOKING_CONFIRMED,
    (BookingState.CONFIRMED, BookingState.STARTED): EventType.BOOKING_STARTED,
    (None, BookingState.FINISHED): EventType.BOOKING_FINISHED,
    (None, BookingState.CANCELLED): EventType.BOOKING_CANCELLED,
    (None, BookingState.EXPIRED): EventType.BOOKING_EXPIRED,
}


class _ActiveBookingLimitReached(Exception):
    pass


async def _may_hold_another(session: AsyncSession, user_id: uuid.UUID, limit: int) -> bool:
    await session.execute(text(RIDER_BOOKINGS_LOCK), {"user_id": str(user_id)})
    active = await session.scalar(
        select(func.count())
        .select_from(Booking)
        .where(Booking.user_id == user_id, Booking.state.in_(_ACTIVE_NAMES))
    )
    return (active or 0) < limit


async def lock_vehicles_shared(session: AsyncSession, provider_id: str) -> None:
    await session.execute(text(VEHICLES_LOCK_SHARED), {"provider": provider_id})


def _log_event(
    session: AsyncSession,
    booking_id: uuid.UUID,
    event: BookingEvent | str,
    from_state: BookingState | None,
    to_state: BookingState,
    cause: str,
    at: datetime,
    detail: dict[str, Any],
) -> None:
    session.add(
        BookingEventRow(
            booking_id=booking_id,
            at=at,
            event=str(event),
            from_state=from_state.value if from_state else None,
            to_state=to_state.value,
            cause=cause,
            detail={k: v for k, v in detail.items() if v is not None},
        )
    )


def _operator_state(state: BookingState) -> OperatorBookingState:
    return {
        BookingState.PENDING: OperatorBookingState.PENDING,
        BookingState.CONFIRMED: OperatorBookingState.CONFIRMED,
        BookingState.STARTED: OperatorBookingState.STARTED,
        BookingState.PAUSED: OperatorBookingState.PAUSED,
    }.get(state, OperatorBookingState.CANCELLED)


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


async def _may_see(
    session: AsyncSession,
    booking: Booking,
    rider_id: uuid.UUID | None,
    api_key: ApiKeyPrincipal | None,
) -> bool:
    if api_key is not None:
        return booking.organisation_id == api_key.organisation_id
    if rider_id is None:
        return False
    if booking.user_id == rider_id:
        return True
    if booking.organisation_id is None:
        return False
    role = (
        await session.execute(
            select(OrganisationMember.role).where(
                OrganisationMember.organisation_id == booking.organisation_id,
                OrganisationMember.user_id == rider_id,
            )
        )
    ).scalar_one_or_none()
    return role is not None and Role(role) in BOOKERS


def _plain(value: Any) -> str:
    return str(getattr(value, "value", value))


def _message(exc: BaseException, settings: Settings) -> str:
    if isinstance(exc, TimeoutError):
        return f"the operator did not answer within {settings.booking_deadline_seconds:g}s"
    return getattr(exc, "message", str(exc))


def _retry_after(exc: BaseException) -> float | None:
    return getattr(exc, "retry_after_seconds", None)


async def _quietly(call: Awaitable[Any]) -> None:
    try:
        await call
    except Exception:
        log.exception("best-effort step failed")
