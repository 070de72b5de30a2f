"""Usage reports: a month of generated trips, aggregated by PostgreSQL, equals the same report
computed here in Python from the rows the test wrote."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from app.fleet.principal import ApiKeyPrincipal, MissingScope, OrgActor, Role, Scope
from app.fleet.reports import NO_COST_CENTRE, GroupBy, UsageRow, usage_report
from app.models import (
    Booking,
    CostCentre,
    Organisation,
    OrganisationMember,
    Provider,
    User,
    VehicleType,
)
from app.platform.db import transaction
from app.platform.errors import InvalidInput
from app.runtime import Runtime
from app.staff_auth import Forbidden

TIMEZONE = "America/New_York"  # DST starts on 8 March 2026: the month is not 31 x 24 hours
MONTH = (2026, 3)
PROVIDERS = {"voi": "Voi Technology", "bolt": "Bolt"}  # "gone" has no provider row any more
VEHICLE_TYPES: dict[str, tuple[str, str, int | None]] = {
    # id: (provider, form factor, grams of CO2 per km or None when the type does not say)
    "voi:es": ("voi", "scooter_standing", 35),
    "voi:bike": ("voi", "bicycle", 0),
    "bolt:car": ("bolt", "car", 118),
    "bolt:bike": ("bolt", "bicycle", None),
}
# (provider, vehicle type, form factor) a trip may have; "gone:moped" and None have no type row.
KINDS = [
    ("voi", "voi:es", "scooter_standing"),
    ("voi", "voi:bike", "bicycle"),
    ("bolt", "bolt:car", "car"),
    ("bolt", "bolt:bike", "bicycle"),
    ("gone", "gone:moped", "moped"),
    ("bolt", None, "car"),
]
OTHER_STATES = ["CANCELLED", "EXPIRED", "STARTED", "CONFIRMED", "FAILED", "REJECTED"]


@dataclass
class Member:
    user_id: uuid.UUID
    email: str
    display_name: str | None


@dataclass
class Centre:
    id: uuid.UUID
    code: str
    name: str


@dataclass
class Trip:
    """What the test wrote into one bookings row: the independent computation reads these."""

    organisation_id: uuid.UUID
    member: Member
    centre: Centre | None
    provider_id: str
    vehicle_type_id: str | None
    form_factor: str
    state: str
    currency: str | None
    final_minor: int | None
    started_at: datetime
    ended_at: datetime
    metres: int


@dataclass
class Fleet:
    organisation_id: uuid.UUID
    members: list[Member]
    centres: list[Centre]
    trips: list[Trip] = field(default_factory=list)


def month_bounds_utc(timezone: str = TIMEZONE) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    year, month = MONTH
    start = datetime(year, month, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(year, month + 1, 1, tzinfo=zone).astimezone(UTC)
    return start, end


async def add_reference_data(runtime: Runtime) -> None:
    async with transaction(runtime.sessions) as session:
        for slug, name in PROVIDERS.items():
            session.add(Provider(id=slug, name=name, adapter="gbfs", config={}))
        await session.flush()
        for type_id, (provider, form_factor, co2) in VEHICLE_TYPES.items():
            session.add(
                VehicleType(
                    id=type_id,
                    provider_id=provider,
                    external_id=type_id.split(":")[1],
                    form_factor=form_factor,
                    propulsion_type="electric",
                    co2_grams_per_km=co2,
                )
            )


async def add_organisation(
    runtime: Runtime, members: list[tuple[uuid.UUID, Role]], *, timezone: str = TIMEZONE
) -> tuple[uuid.UUID, list[Centre]]:
    """An organisation with three cost centres, and ``members`` (existing users) in it."""
    async with transaction(runtime.sessions) as session:
        org = Organisation(name=f"Org {uuid.uuid4().hex[:6]}", timezone=timezone)
        session.add(org)
        await session.flush()
        centres = [
            CostCentre(organisation_id=org.id, code=code, name=name)
            for code, name in [("ENG", "Engineering"), ("SALES", "Sales"), ("OPS", "Operations")]
        ]
        session.add_all(centres)
        for user_id, role in members:
            session.add(
                OrganisationMember(organisation_id=org.id, user_id=user_id, role=role.value)
            )
        await session.flush()
        return org.id, [Centre(c.id, c.code, c.name) for c in centres]


async def orm_users(runtime: Runtime, names: list[str | None]) -> list[Member]:
    async with transaction(runtime.sessions) as session:
        users = [
            User(email=f"member-{i}-{uuid.uuid4().hex[:6]}@example.org", display_name=name)
            for i, name in enumerate(names)
        ]
        session.add_all(users)
        await session.flush()
        return [Member(u.id, u.email, u.display_name) for u in users]


def generate_trips(
    rng: random.Random,
    organisation_id: uuid.UUID,
    members: list[Member],
    centres: list[Centre],
    count: int,
) -> list[Trip]:
    """``count`` random bookings ending in and around the month, plus the boundary cases."""
    start, end = month_bounds_utc()
    window = int((end - start).total_seconds()) + 6 * 86_400
    ends = [
        start - timedelta(days=3) + timedelta(seconds=rng.randrange(window)) for _ in range(count)
    ]
    # Just inside and just outside the month, in the organisation's time zone.
    ends += [start - timedelta(seconds=1), start, end - timedelta(seconds=1), end]
    trips = []
    for i, ended_at in enumerate(ends):
        boundary = i >= count
        provider_id, type_id, form_factor = rng.choice(KINDS)
        roll = rng.random()
        state = "FINISHED" if boundary or roll < 0.85 else rng.choice(OTHER_STATES)
        priced = rng.random()
        currency: str | None = rng.choice(["NOK", "EUR"])
        final: int | None = rng.randrange(0, 60_000)
        if priced < 0.05:
            currency, final = None, None  # neither a plan nor an operator price
        elif priced < 0.1:
            final = None  # an estimate's currency, but no final price
        trips.append(
            Trip(
                organisation_id=organisation_id,
                member=rng.choice(members),
                centre=rng.choice([*centres, None]),
                provider_id=provider_id,
                vehicle_type_id=type_id,
                form_factor=form_factor,
                state=state,
                currency=currency,
                final_minor=final,
                started_at=ended_at - timedelta(seconds=rng.randrange(30, 7_200)),
                ended_at=ended_at,
                metres=rng.randrange(0, 25_000),
            )
        )
    return trips


async def insert_trips(runtime: Runtime, trips: list[Trip]) -> None:
    async with transaction(runtime.sessions) as session:
        session.add_all(
            Booking(
                user_id=t.member.user_id,
                organisation_id=t.organisation_id,
                cost_centre_id=t.centre.id if t.centre else None,
                provider_id=t.provider_id,
                vehicle_id=f"{t.provider_id}:{uuid.uuid4().hex}",
                vehicle_external_id=uuid.uuid4().hex,
                vehicle_type_id=t.vehicle_type_id,
                # What a reservation records: its vehicle type's figure at that moment.
                co2_grams_per_km=VEHICLE_TYPES[t.vehicle_type_id][2]
                if t.vehicle_type_id in VEHICLE_TYPES
                else None,
                form_factor=t.form_factor,
                state=t.state,
                currency=t.currency,
                final_price_minor=t.final_minor,
                estimated_price_minor=t.final_minor,
                started_at=t.started_at,
                ended_at=t.ended_at if t.state == "FINISHED" else None,
                distance_meters=float(t.metres),
            )
            for t in trips
        )


def _group_of(trip: Trip, group_by: GroupBy) -> tuple[str, str]:
    if group_by is GroupBy.MEMBER:
        m = trip.member
        label = f"{m.display_name} <{m.email}>" if m.display_name else m.email
        return str(m.user_id), label
    if group_by is GroupBy.COST_CENTRE:
        if trip.centre is None:
            return NO_COST_CENTRE, NO_COST_CENTRE
        return trip.centre.code, trip.centre.name
    if group_by is GroupBy.PROVIDER:
        return trip.provider_id, PROVIDERS.get(trip.provider_id, trip.provider_id)
    return trip.form_factor, trip.form_factor


def expected_report(
    trips: list[Trip], organisation_id: uuid.UUID, group_by: GroupBy
) -> dict[tuple[str, str | None], UsageRow]:
    """The report, computed in Python from what was written: keyed by (group key, currency)."""
    start, end = month_bounds_utc()
    groups: dict[tuple[str, str | None], list[Trip]] = defaultdict(list)
    labels: dict[str, str] = {}
    for t in trips:
        if t.organisation_id != organisation_id or t.state != "FINISHED":
            continue
        if not start <= t.ended_at < end:
            continue
        key, label = _group_of(t, group_by)
        labels[key] = label
        groups[(key, t.currency)].append(t)
    report = {}
    for (key, currency), members in groups.items():
        with_co2 = [
            t
            for t in members
            if t.vehicle_type_id in VEHICLE_TYPES
            and VEHICLE_TYPES[t.vehicle_type_id][2] is not None
        ]
        co2_metre_grams = sum(
            t.metres * (VEHICLE_TYPES[t.vehicle_type_id or ""][2] or 0) for t in with_co2
        )
        seconds = sum(int((t.ended_at - t.started_at).total_seconds()) for t in members)
        report[(key, currency)] = UsageRow(
            group_key=key,
            group_label=labels[key],
            currency=currency,
            trips=len(members),
            total_minor=sum(t.final_minor or 0 for t in members),
            minutes=(Decimal(seconds) / 60).quantize(Decimal("0.01"), ROUND_HALF_UP),
            kilometres=(Decimal(sum(t.metres for t in members)) / 1000).quantize(
                Decimal("0.001"), ROUND_HALF_UP
            ),
            co2_grams=int((Decimal(co2_metre_grams) / 1000).quantize(Decimal(1), ROUND_HALF_UP)),
            trips_without_co2=len(members) - len(with_co2),
        )
    return report


async def generated_fleet(
    runtime: Runtime, members: list[Member], *, seed: int, extra_roles: dict[uuid.UUID, Role]
) -> tuple[Fleet, Fleet]:
    """Two organisations sharing the members (RIDERs unless ``extra_roles`` says otherwise) and a
    month of random trips each: (the one reported on, the other one)."""
    rng = random.Random(seed)
    await add_reference_data(runtime)
    roles = [(m.user_id, extra_roles.get(m.user_id, Role.RIDER)) for m in members]
    org_id, centres = await add_organisation(runtime, roles)
    other_id, other_centres = await add_organisation(
        runtime, [(m.user_id, Role.RIDER) for m in members]
    )
    fleet = Fleet(org_id, members, centres, generate_trips(rng, org_id, members, centres, 160))
    other = Fleet(
        other_id, members, other_centres, generate_trips(rng, other_id, members, other_centres, 40)
    )
    await insert_trips(runtime, fleet.trips + other.trips)
    return fleet, other


# ---------------------------------------------------------------- tests


@pytest.fixture
async def fleet(runtime: Runtime) -> Fleet:
    members = await orm_users(runtime, ["Ada Lovelace", None, "Grace Hopper", "Alan Turing"])
    mine, _ = await generated_fleet(runtime, members, seed=20260301, extra_roles={})
    return mine


def admin_of(fleet: Fleet) -> OrgActor:
    return OrgActor(fleet.organisation_id, user_id=fleet.members[0].user_id, role=Role.ADMIN)


@pytest.mark.parametrize("group_by", list(GroupBy))
async def test_report_of_generated_month_equals_independent_computation(
    runtime: Runtime, fleet: Fleet, group_by: GroupBy
) -> None:
    async with runtime.sessions() as session:
        report = await usage_report(session, admin_of(fleet), month="2026-03", group_by=group_by)
    expected = expected_report(fleet.trips, fleet.organisation_id, group_by)
    got = {(r.group_key, r.currency): r for r in report.rows}
    assert len(got) == len(report.rows)  # one row per group and currency
    assert got == expected
    assert report.timezone == TIMEZONE and report.month == "2026-03"
    # The generator made what the test is about: both currencies, unpriced trips, unknown CO2.
    assert {c for _, c in got} == {"NOK", "EUR", None}
    assert sum(r.trips_without_co2 for r in got.values()) > 0
    assert sum(r.co2_grams for r in got.values()) > 0


async def test_a_past_month_does_not_change_when_the_operator_edits_its_vehicle_types(
    runtime: Runtime, fleet: Fleet
) -> None:
    async def report() -> list[UsageRow]:
        async with runtime.sessions() as session:
            answer = await usage_report(
                session, admin_of(fleet), month="2026-03", group_by=GroupBy.PROVIDER
            )
        return answer.rows

    before = await report()
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text("UPDATE vehicle_types SET co2_grams_per_km = coalesce(co2_grams_per_km, 7) * 10")
        )
    assert await report() == before
    expected = expected_report(fleet.trips, fleet.organisation_id, GroupBy.PROVIDER)
    assert {(r.group_key, r.currency): r for r in before} == expected


async def test_month_boundaries_are_the_organisations_midnights(
    runtime: Runtime, fleet: Fleet
) -> None:
    start, end = month_bounds_utc()
    # 1 March 00:00 in New York is 05:00 UTC; 1 April 00:00 (after DST) is 04:00 UTC.
    assert (start.hour, end.hour) == (5, 4)
    boundary = fleet.trips[-4:]
    second = timedelta(seconds=1)
    assert [t.ended_at for t in boundary] == [start - second, start, end - second, end]
    async with runtime.sessions() as session:
        report = await usage_report(
            session, admin_of(fleet), month="2026-03", group_by=GroupBy.FORM_FACTOR
        )
    counted = sum(r.trips for r in report.rows)
    in_month = [t for t in fleet.trips if t.state == "FINISHED" and start <= t.ended_at < end]
    assert counted == len(in_month)
    assert sum(1 for t in boundary if t in in_month) == 2


async def test_a_month_without_trips_has_no_rows(runtime: Runtime, fleet: Fleet) -> None:
    async with runtime.sessions() as session:
        report = await usage_report(
            session, admin_of(fleet), month="2025-12", group_by=GroupBy.MEMBER
        )
    assert report.rows == []


@pytest.mark.parametrize("month", ["2026-13", "2026-3", "March", "2026-00", ""])
async def test_a_malformed_month_is_refused(runtime: Runtime, fleet: Fleet, month: str) -> None:
    async with runtime.sessions() as session:
        with pytest.raises(InvalidInput) as refused:
            await usage_report(session, admin_of(fleet), month=month, group_by=GroupBy.MEMBER)
    assert refused.value.code == "INVALID_MONTH"


async def test_reports_need_an_admin_or_a_key_with_reports_read(
    runtime: Runtime, fleet: Fleet
) -> None:
    org = fleet.organisation_id
    booker = OrgActor(org, user_id=fleet.members[1].user_id, role=Role.BOOKER)
    no_scope = OrgActor(org, api_key=ApiKeyPrincipal(uuid.uuid4(), org, frozenset()))
    reader = OrgActor(
        org, api_key=ApiKeyPrincipal(uuid.uuid4(), org, frozenset({Scope.REPORTS_READ}))
    )
    async with runtime.sessions() as session:
        with pytest.raises(Forbidden):
            await usage_report(session, booker, month="2026-03", group_by=GroupBy.MEMBER)
        with pytest.raises(MissingScope):
            await usage_report(session, no_scope, month="2026-03", group_by=GroupBy.MEMBER)
        report = await usage_report(session, reader, month="2026-03", group_by=GroupBy.MEMBER)
    assert report.rows
