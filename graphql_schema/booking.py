"""Booking in the API: the rider's bookings, the booking mutations and ``bookingUpdates``.

Every mutation takes an ``idempotencyKey`` and answers a union: the booking, or one typed reason
it could not be done (each with a stable ``code`` and a human ``message``). Errors that are the
caller's (not signed in, a bad key, a booking that is not theirs) are GraphQL errors with codes.
A booking that is not the caller's is ``BOOKING_NOT_FOUND``, exactly like one that does not
exist: ids are not confirmed by guessing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.accounts import Rider
from app.booking import outcomes as out
from app.booking.schemas import BookingNotFound
from app.booking.states import (
    ACTIVE,
    RIDER_EVENTS,
    BookingEvent,
    BookingState,
    IllegalTransition,
    allowed_events,
)
from app.fleet.policies import PolicyRule
from app.fleet.principal import ApiKeyPrincipal, Scope
from app.platform.errors import InvalidInput
from app.records import BookingRecord
from graphql_schema.context import Context
from graphql_schema.org_access import org_uuid
from graphql_schema.policies import PolicyViolation
from graphql_schema.provider_types import Provider
from graphql_schema.types import Money

log = logging.getLogger(__name__)

Info = strawberry.Info[Context, None]

# The domain's own enums, exposed as they are (strawberry.enum registers them in place).
strawberry.enum(
    BookingState, name="BookingState", description="The booking's life: see docs/booking.md."
)
strawberry.enum(BookingEvent, name="BookingAction", description="What can happen to a booking.")


def _money(amount: int | None, currency: str | None) -> Money | None:
    if amount is None or currency is None:
        return None
    return Money.of(amount, currency)


def _rider_actions(state: BookingState) -> list[BookingEvent]:
    """What the rider may do to a booking in this state, in a stable order."""
    return sorted(allowed_events(state) & RIDER_EVENTS, key=lambda e: e.value)


@strawberry.type(description="One line of a receipt.")
class ReceiptLine:
    kind: str = strawberry.field(description="UNLOCK, TIME, DISTANCE or OPERATOR.")
    label: str
    amount: Money


@strawberry.type(description="The final price, itemised: real duration and distance.")
class Receipt:
    lines: list[ReceiptLine]
    total: Money
    minutes: float | None
    kilometers: float | None
    pricing_plan_name: str | None
    operator_price: Money | None = strawberry.field(
        description="What the operator itself reported, when it did (for reconciliation)."
    )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        currency = str(data["currency"])
        operator = data.get("operator_price")
        return cls(
            lines=[
                ReceiptLine(
                    kind=line["kind"],
                    label=line["label"],
                    amount=Money.of(line["amount_minor"], currency),
                )
                for line in data["lines"]
            ],
            total=Money.of(data["total_minor"], currency),
            minutes=data.get("minutes"),
            kilometers=data.get("kilometers"),
            pricing_plan_name=data.get("plan_name"),
            operator_price=_money(operator["amount_minor"], operator["currency"])
            if operator
            else None,
        )


@strawberry.type(description="One transition of a booking, with its time and cause.")
class BookingEventEntry:
    at: datetime
    event: str
    from_state: BookingState | None
    to_state: BookingState
    cause: str


@strawberry.type
class Booking:
    id: strawberry.ID
    state: BookingState
    vehicle_id: strawberry.ID
    provider_id: strawberry.ID
    form_factor: str
    created_at: datetime
    reserved_until: datetime | None = strawberry.field(
        description="A reservation not started by then expires and the vehicle is released."
    )
    started_at: datetime | None
    ended_at: datetime | None
    distance_meters: float | None
    estimated_price: Money | None
    final_price: Money | None
    receipt: Receipt | None
    failure_code: str | None
    allowed_actions: list[BookingEvent]

    @classmethod
    def from_row(cls, row: BookingRecord) -> Booking:
        state = BookingState(row.state)
        return cls(
            id=strawberry.ID(str(row.id)),
            state=state,
            vehicle_id=strawberry.ID(row.vehicle_id),
            provider_id=strawberry.ID(row.provider_id),
            form_factor=row.form_factor,
            created_at=row.created_at,
            reserved_until=row.reserved_until if state is BookingState.CONFIRMED else None,
            started_at=row.started_at,
            ended_at=row.ended_at,
            distance_meters=row.distance_meters,
            estimated_price=_money(row.estimated_price_minor, row.currency),
            final_price=_money(row.final_price_minor, row.currency),
            receipt=Receipt.from_json(row.receipt) if row.receipt else None,
            failure_code=row.failure_code,
            allowed_actions=_rider_actions(state),
        )

    @strawberry.field(description="Every transition so far, oldest first.")
    async def events(self, info: Info) -> list[BookingEventEntry]:
        rows = await info.context.loaders.booking_events.load(uuid.UUID(str(self.id)))
        return [
            BookingEventEntry(
                at=r.at,
                event=r.event,
                from_state=BookingState(r.from_state) if r.from_state else None,
                to_state=BookingState(r.to_state),
                cause=r.cause,
            )
            for r in rows
        ]


# ---------------------------------------------------------------- results


@strawberry.interface(description="Why a booking mutation was not done.")
class BookingProblem:
    code: str
    message: str


@strawberry.type
class BookingSuccess:
    booking: Booking


@strawberry.type(description="Taken, disabled, or gone: pick another vehicle.")
class VehicleUnavailable(BookingProblem):
    vehicle_id: strawberry.ID
    reason: str = strawberry.field(description="NOT_FOUND, RESERVED, DISABLED or BOOKED.")


@strawberry.type(description="One reason a rider may not rent this kind of vehicle.")
class EligibilityRefusal:
    code: str
    message: str


@strawberry.type(description="The rider may not rent this kind of vehicle (yet): every reason.")
class NotEligible(BookingProblem):
    form_factor: str
    refusals: list[EligibilityRefusal]


@strawberry.type(
    description="The rider already holds as many active bookings as one rider may "
    "(MOBILITY_MAX_ACTIVE_BOOKINGS_PER_RIDER): end or cancel one first."
)
class TooManyActiveBookings(BookingProblem):
    limit: int


@strawberry.type(
    description="The organisation's travel policy does not allow this trip: every broken rule."
)
class PolicyViolated(BookingProblem):
    violations: list[PolicyViolation]


@strawberry.type(description="The operator said no; retrying will not change that.")
class OperatorRejected(BookingProblem):
    provider_id: strawberry.ID
    operator_code: str | None


@strawberry.type(description="The operator could not be reached or failed; try again later.")
class OperatorUnavailable(BookingProblem):
    provider_id: strawberry.ID
    retry_after_seconds: float | None


@strawberry.type(description="Parking is not allowed here: move the vehicle and end again.")
class RideEndNotAllowed(BookingProblem):
    zone_id: strawberry.ID | None
    zone_name: str | None


@strawberry.type(description="Our side failed after the operator accepted; it was cancelled.")
class BookingFailed(BookingProblem):
    booking_id: strawberry.ID


@strawberry.type(description="The booking's state does not allow this now.")
class IllegalBookingTransition(BookingProblem):
    state: BookingState
    allowed_actions: list[BookingEvent]


@strawberry.type(
    description="This operator takes bookings in its own app only: send the rider there."
)
class ExternalBooking:
    vehicle_id: strawberry.ID
    provider_id: strawberry.ID
    provider_name: str
    android_uri: str | None
    ios_uri: str | None
    web_uri: str | None
    message: str


ReserveVehicleResult = Annotated[
    BookingSuccess
    | ExternalBooking
    | VehicleUnavailable
    | NotEligible
    | TooManyActiveBookings
    | PolicyViolated
    | OperatorRejected
    | OperatorUnavailable
    | BookingFailed,
    strawberry.union("ReserveVehicleResult"),
]

TripActionResult = Annotated[
    BookingSuccess
    | IllegalBookingTransition
    | OperatorRejected
    | OperatorUnavailable
    | RideEndNotAllowed
    | PolicyViolated,
    strawberry.union("TripActionResult"),
]


async def _map(info: Info, outcome: out.Outcome) -> Any:
    match outcome:
        case out.BookingDone(booking_id=booking_id):
            # The outcome is this caller's own answer: the booking it made or changed.
            row = await info.context.bookings.booking_by_id(booking_id)
            return BookingSuccess(booking=Booking.from_row(row))
        case out.ActiveBookingLimit():
            return TooManyActiveBookings(
                code="TOO_MANY_ACTIVE_BOOKINGS", message=outcome.message, limit=outcome.limit
            )
        case out.PolicyViolated():
            return PolicyViolated(
                code="POLICY_VIOLATION",
                message=outcome.message,
                violations=[
                    PolicyViolation(policy=PolicyRule(p), detail=d) for p, d in outcome.violations
                ],
            )
        case out.VehicleUnavailable():
            return VehicleUnavailable(
                code="VEHICLE_UNAVAILABLE",
                message=outcome.message,
                vehicle_id=strawberry.ID(outcome.vehicle_id),
                reason=outcome.reason,
            )
        case out.NotEligible():
            return NotEligible(
                code="NOT_ELIGIBLE",
                message=outcome.message,
                form_factor=outcome.form_factor,
                refusals=[EligibilityRefusal(code=c, message=m) for c, m in outcome.refusals],
            )
        case out.OperatorRejected():
            return OperatorRejected(
                code="OPERATOR_REJECTED",
                message=outcome.message,
                provider_id=strawberry.ID(outcome.provider_id),
                operator_code=outcome.operator_code,
            )
        case out.OperatorUnavailable():
            return OperatorUnavailable(
                code="OPERATOR_UNAVAILABLE",
                message=outcome.message,
                provider_id=strawberry.ID(outcome.provider_id),
                retry_after_seconds=outcome.retry_after_seconds,
            )
        case out.RideEndNotAllowed():
            return RideEndNotAllowed(
                code="RIDE_END_NOT_ALLOWED",
                message=outcome.message,
                zone_id=strawberry.ID(outcome.zone_id) if outcome.zone_id else None,
                zone_name=outcome.zone_name,
            )
        case out.BookingFailed():
            return BookingFailed(
                code="BOOKING_FAILED",
                message=outcome.message,
                booking_id=strawberry.ID(str(outcome.booking_id)),
            )
        case out.ExternalBooking():
            return ExternalBooking(
                vehicle_id=strawberry.ID(outcome.vehicle_id),
                provider_id=strawberry.ID(outcome.provider_id),
                provider_name=outcome.provider_name,
                android_uri=outcome.android_uri,
                ios_uri=outcome.ios_uri,
                web_uri=outcome.web_uri,
                message=outcome.message,
            )
    raise AssertionError(f"unmapped outcome {outcome!r}")


def _booking_id(raw: strawberry.ID) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        # Not a UUID cannot be anyone's booking; the same answer as any unknown id.
        raise BookingNotFound(f"no booking {raw} of yours") from None


async def _booking_caller(info: Info) -> tuple[ApiKeyPrincipal | None, Rider | None]:
    """Who acts on bookings: an organisation's API key (it needs ``bookings:write``), else the
    signed-in rider (``UNAUTHENTICATED`` without one). Exactly one of the two is set."""
    api_key = await info.context.api_key()
    if api_key is not None:
        api_key.require_scope(Scope.BOOKINGS_WRITE)
        return api_key, None
    return None, await info.context.require_rider()


async def _act(
    info: Info,
    booking_id: strawberry.ID,
    event: BookingEvent,
    idempotency_key: str,
    lat: float | None = None,
    lon: float | None = None,
) -> Any:
    api_key, rider = await _booking_caller(info)
    try:
        outcome = await info.context.bookings.act(
            rider,
            api_key=api_key,
            booking_id=_booking_id(booking_id),
            event=event,
            idempotency_key=idempotency_key,
            lat=lat,
            lon=lon,
        )
    except IllegalTransition as exc:
        return IllegalBookingTransition(
            code=exc.code,
            message=exc.message,
            state=exc.state,
            allowed_actions=_rider_actions(exc.state),
        )
    return await _map(info, outcome)


@strawberry.type
class BookingQuery:
    @strawberry.field(
        description="One of your bookings, or (an organisation's OWNER, ADMIN, BOOKER or API "
        "key) one of the organisation's. Anyone else's is BOOKING_NOT_FOUND."
    )
    async def booking(self, info: Info, id: strawberry.ID) -> Booking:
        api_key, rider = await _booking_caller(info)
        row = await info.context.bookings.booking_for(
            rider.id if rider else None, _booking_id(id), api_key=api_key
        )
        return Booking.from_row(row)

    @strawberry.field(
        description="Your bookings, newest first. `active`: only current ones "
        "(true) or only past ones (false)."
    )
    async def my_bookings(
        self, info: Info, active: bool | None = None, first: int = 20
    ) -> list[Booking]:
        rider = await info.context.require_rider()
        if not 1 <= first <= 100:
            raise InvalidInput("first must be between 1 and 100")
        rows = await info.context.bookings.bookings_of(rider.id, active=active, first=first)
        return [Booking.from_row(r) for r in rows]


@strawberry.type
class BookingMutation:
    @strawberry.mutation(
        description="Reserve a vehicle; held for the operator's reservation time. With "
        "`offerId` (from `quote` or `tripOptions`) the offer's price is the estimate. An "
        "operator without a booking API answers ExternalBooking with its deep links."
    )
    async def reserve_vehicle(
        self,
        info: Info,
        vehicle_id: strawberry.ID,
        idempotency_key: str,
        offer_id: str | None = None,
        organisation_id: strawberry.ID | None = None,
        on_behalf_of: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="The member (id) the booking is for (B2B)."),
        ] = None,
        cost_centre: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="The cost centre charged; default the member's."),
        ] = None,
    ) -> ReserveVehicleResult:
        ctx = info.context
        api_key = await ctx.api_key()
        if api_key is not None or organisation_id or on_behalf_of or cost_centre:
            # For an organisation: its policy applies, the booking is the member's and the
            # organisation's.
            actor = await ctx.org_actor(
                org_uuid(organisation_id, "organisation") if organisation_id else None,
                scope=Scope.BOOKINGS_WRITE,
            )
            outcome = await ctx.bookings.reserve_for_organisation(
                actor,
                member_id=org_uuid(on_behalf_of, "member") if on_behalf_of else None,
                cost_centre_id=org_uuid(cost_centre, "cost centre") if cost_centre else None,
                vehicle_id=str(vehicle_id),
                idempotency_key=idempotency_key,
                offer_id=offer_id,
            )
        else:
            rider = await ctx.require_rider()
            outcome = await ctx.bookings.reserve(
                rider,
                vehicle_id=str(vehicle_id),
                idempotency_key=idempotency_key,
                offer_id=offer_id,
                viewer_orgs=await ctx.viewer_organisations(),
            )
        return await _map(info, outcome)  # type: ignore[no-any-return]

    @strawberry.mutation(description="Unlock the reserved vehicle: the ride starts.")
    async def start_trip(
        self, info: Info, booking_id: strawberry.ID, idempotency_key: str
    ) -> TripActionResult:
        return await _act(info, booking_id, BookingEvent.START, idempotency_key)  # type: ignore[no-any-return]

    @strawberry.mutation(description="Pause the ride (the vehicle stays yours, time runs).")
    async def pause_trip(
        self, info: Info, booking_id: strawberry.ID, idempotency_key: str
    ) -> TripActionResult:
        return await _act(info, booking_id, BookingEvent.PAUSE, idempotency_key)  # type: ignore[no-any-return]

    @strawberry.mutation(description="Resume a paused ride.")
    async def resume_trip(
        self, info: Info, booking_id: strawberry.ID, idempotency_key: str
    ) -> TripActionResult:
        return await _act(info, booking_id, BookingEvent.RESUME, idempotency_key)  # type: ignore[no-any-return]

    @strawberry.mutation(
        description="End the ride where the vehicle is (lat, lon). Refused with the zone's name "
        "where the operator does not allow parking. The receipt has the final price."
    )
    async def end_trip(
        self, info: Info, booking_id: strawberry.ID, idempotency_key: str, lat: float, lon: float
    ) -> TripActionResult:
        return await _act(info, booking_id, BookingEvent.FINISH, idempotency_key, lat, lon)  # type: ignore[no-any-return]

    @strawberry.mutation(description="Cancel a reservation that has not started.")
    async def cancel_booking(
        self, info: Info, booking_id: strawberry.ID, idempotency_key: str
    ) -> TripActionResult:
        return await _act(info, booking_id, BookingEvent.CANCEL, idempotency_key)  # type: ignore[no-any-return]


@strawberry.type
class BookingAdminMutation:
    @strawberry.mutation(
        description="Give a provider a booking API, or take it away with `operator: null` "
        "(ADMIN). `config` is the operator's, e.g. for `tomp`: `{base_url, maas_id}`. "
        "Credentials go through setProviderCredentials."
    )
    async def set_provider_booking(
        self,
        info: Info,
        id: strawberry.ID,
        operator: str | None,
        config: JSON | None = None,
    ) -> Provider:
        viewer = await info.context.require_admin()
        booking: dict[str, Any] | None = (
            None if operator is None else {"operator": operator, "config": config or {}}
        )
        provider = await info.context.provider_admin.set_booking(str(id), booking)
        answer = Provider.from_model(provider, info.context.settings)
        log.info("provider %s booking set to %s by %s", id, operator, viewer.name)
        info.context.reference.invalidate()
        return answer

    @strawberry.mutation(
        description="Make a provider an organisation's private fleet: only its members and API "
        "keys see and book its vehicles; `organisationId: null` makes it public again (ADMIN)."
    )
    async def set_provider_private(
        self, info: Info, id: strawberry.ID, organisation_id: strawberry.ID | None
    ) -> Provider:
        viewer = await info.context.require_admin()
        org = org_uuid(organisation_id, "organisation") if organisation_id else None
        provider = await info.context.provider_admin.set_private_to(str(id), org)
        answer = Provider.from_model(provider, info.context.settings)
        log.info("provider %s private to %s, by %s", id, org, viewer.name)
        info.context.reference.invalidate()
        info.context.search.invalidate()
        return answer


@strawberry.type
class BookingSubscription:
    @strawberry.subscription(
        description="Your booking now, then again each time it changes; ends when it is over."
    )
    async def booking_updates(
        self, info: Info, booking_id: strawberry.ID
    ) -> AsyncGenerator[Booking, None]:
        api_key, rider = await _booking_caller(info)
        rider_id = rider.id if rider is not None else None
        bookings = info.context.bookings
        wanted = _booking_id(booking_id)
        # Not theirs: BOOKING_NOT_FOUND before anything is subscribed.
        await bookings.booking_for(rider_id, wanted, api_key=api_key)
        signals = info.context.booking_signals
        recheck = info.context.settings.subscription_recheck_seconds
        async with signals.watch(str(wanted)) as watch:
            # Read after watching: a change between the two is not missed.
            row = await bookings.booking_for(rider_id, wanted, api_key=api_key)
            yield Booking.from_row(row)
            last = (row.state, row.updated_at)
            while BookingState(row.state) in ACTIVE:
                # A signal, or a periodic re-check (a missed signal is never a lost update).
                await watch.changed(recheck)
                # The caller is checked again too (a websocket's context looks the key up
                # afresh): a key revoked or a member removed meanwhile ends the stream.
                if api_key is not None:
                    api_key = await info.context.api_key()
                row = await bookings.booking_for(rider_id, wanted, api_key=api_key)
                if (row.state, row.updated_at) != last:
                    last = (row.state, row.updated_at)
                    yield Booking.from_row(row)


__all__ = [
    "BookingAdminMutation",
    "BookingMutation",
    "BookingQuery",
    "BookingSubscription",
]
