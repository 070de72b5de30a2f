"""Travel policies: each rule violated and satisfied (pure ``violations``), storing and validating
policies, the cost-centre merge, and ``check_trip`` over the database (spend, stored area)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from app.fleet.policies import (
    EffectivePolicy,
    HoursWindow,
    MoneyLimit,
    PolicyRule,
    TripCheck,
    check_trip,
    effective_policy,
    get_policy,
    merge,
    month_spent,
    set_policy,
    violations,
)
from app.fleet.principal import ApiKeyPrincipal, OrgActor, OrgNotFound, Role, Scope
from app.models import Booking, CostCentre, Organisation, OrganisationMember, User
from app.platform.db import transaction
from app.platform.errors import InvalidInput
from app.runtime import Runtime
from app.staff_auth import Forbidden

# A square around central Oslo, [lon, lat]; and one far away, for multipolygons.
OSLO = [[10.70, 59.90], [10.80, 59.90], [10.80, 59.95], [10.70, 59.95], [10.70, 59.90]]
BERGEN = [[5.30, 60.37], [5.35, 60.37], [5.35, 60.40], [5.30, 60.40], [5.30, 60.37]]
HOLE = [[10.74, 59.92], [10.76, 59.92], [10.76, 59.93], [10.74, 59.93], [10.74, 59.92]]


def area_wkb(geojson: dict[str, Any]) -> bytes:
    from app.fleet.policies import parse_area

    return bytes(parse_area(geojson).wkb)


def trip(**changes: Any) -> TripCheck:
    values: dict[str, Any] = {
        "provider_id": "voi",
        "form_factor": "scooter_standing",
        "estimated_price_minor": 500,
        "currency": "NOK",
        # Wednesday 2026-03-04, 12:00 in Oslo (UTC+1 in winter).
        "at": datetime(2026, 3, 4, 11, 0, tzinfo=UTC),
        "timezone": "Europe/Oslo",
        "lat": 59.92,
        "lon": 10.72,
        "month_spent_minor": 0,
    }
    values.update(changes)
    return TripCheck(**values)


def rules(found: list[Any]) -> list[PolicyRule]:
    return [v.policy for v in found]


# ---------------------------------------------------------------- pure rules


def test_no_policy_allows_everything() -> None:
    assert violations(EffectivePolicy(), trip()) == []


def test_form_factor_rule() -> None:
    policy = EffectivePolicy(allowed_form_factors=frozenset({"bicycle", "scooter_standing"}))
    assert violations(policy, trip()) == []
    found = violations(policy, trip(form_factor="car"))
    assert rules(found) == [PolicyRule.FORM_FACTOR]
    # Named as the API's FormFactor enum names them, the allowed ones too.
    assert "CAR" in found[0].detail
    assert all(f.upper() in found[0].detail for f in policy.allowed_form_factors or ())
    assert "scooter_standing" not in found[0].detail


def test_provider_rule() -> None:
    policy = EffectivePolicy(allowed_providers=frozenset({"voi"}))
    assert violations(policy, trip()) == []
    assert rules(violations(policy, trip(provider_id="tier"))) == [PolicyRule.PROVIDER]


def test_max_price_rule_allows_up_to_the_maximum() -> None:
    policy = EffectivePolicy(max_price=MoneyLimit(500, "NOK"))
    assert violations(policy, trip(estimated_price_minor=500)) == []
    found = violations(policy, trip(estimated_price_minor=501))
    assert rules(found) == [PolicyRule.MAX_PRICE]
    assert "5.01 NOK" in found[0].detail and "5.00 NOK" in found[0].detail


def test_max_price_in_another_currency_cannot_be_compared() -> None:
    policy = EffectivePolicy(max_price=MoneyLimit(100_000, "NOK"))
    # Cheap in any currency, but there is no conversion: refused, and the detail says why.
    found = violations(policy, trip(estimated_price_minor=1, currency="EUR"))
    assert rules(found) == [PolicyRule.MAX_PRICE]
    assert "cannot be compared" in found[0].detail


def test_max_price_without_an_estimate_is_a_violation() -> None:
    policy = EffectivePolicy(max_price=MoneyLimit(500, "NOK"))
    found = violations(policy, trip(estimated_price_minor=None, currency=None))
    assert rules(found) == [PolicyRule.MAX_PRICE]


def test_day_hours_window_start_inclusive_end_exclusive() -> None:
    policy = EffectivePolicy(hours=HoursWindow(time(8, 0), time(18, 0)))
    # Oslo is UTC+1 on 2026-03-04.
    assert violations(policy, trip(at=datetime(2026, 3, 4, 7, 0, tzinfo=UTC))) == []  # 08:00
    assert violations(policy, trip(at=datetime(2026, 3, 4, 16, 59, tzinfo=UTC))) == []  # 17:59
    assert rules(violations(policy, trip(at=datetime(2026, 3, 4, 17, 0, tzinfo=UTC)))) == [
        PolicyRule.HOURS  # 18:00 local
    ]
    assert rules(violations(policy, trip(at=datetime(2026, 3, 4, 6, 59, tzinfo=UTC)))) == [
        PolicyRule.HOURS  # 07:59 local
    ]


@pytest.mark.parametrize(
    ("utc", "allowed"),
    [
        (datetime(2026, 3, 4, 21, 0, tzinfo=UTC), True),  # 22:00 local: opens
        (datetime(2026, 3, 4, 22, 59, tzinfo=UTC), True),  # 23:59
        (datetime(2026, 3, 4, 23, 0, tzinfo=UTC), True),  # 00:00 the next day
        (datetime(2026, 3, 5, 4, 59, tzinfo=UTC), True),  # 05:59
        (datetime(2026, 3, 5, 5, 0, tzinfo=UTC), False),  # 06:00: closed
        (datetime(2026, 3, 5, 11, 0, tzinfo=UTC), False),  # noon
        (datetime(2026, 3, 4, 20, 59, tzinfo=UTC), False),  # 21:59
    ],
)
def test_overnight_hours_window_across_midnight(utc: datetime, allowed: bool) -> None:
    policy = EffectivePolicy(hours=HoursWindow(time(22, 0), time(6, 0)))
    found = violations(policy, trip(at=utc))
    assert rules(found) == ([] if allowed else [PolicyRule.HOURS])


def test_hours_are_read_in_the_organisations_time_zone() -> None:
    policy = EffectivePolicy(hours=HoursWindow(time(8, 0), time(18, 0)))
    at = datetime(2026, 3, 4, 17, 30, tzinfo=UTC)  # 17:30 UTC
    assert violations(policy, trip(at=at, timezone="UTC")) == []
    # 18:30 in Oslo: closed there.
    assert rules(violations(policy, trip(at=at, timezone="Europe/Oslo"))) == [PolicyRule.HOURS]


def test_weekday_is_the_organisations_local_day_not_utcs() -> None:
    weekdays = EffectivePolicy(allowed_weekdays=frozenset({1, 2, 3, 4, 5}))
    # Sunday 23:30 UTC is Monday 00:30 in Oslo: allowed, though UTC says Sunday.
    sunday_night_utc = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert sunday_night_utc.isoweekday() == 7
    assert violations(weekdays, trip(at=sunday_night_utc)) == []
    assert rules(violations(weekdays, trip(at=sunday_night_utc, timezone="UTC"))) == [
        PolicyRule.WEEKDAYS
    ]
    # Friday 12:00 UTC is Saturday 01:00 in Auckland: refused, though UTC says Friday.
    friday_noon_utc = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    assert friday_noon_utc.isoweekday() == 5
    found = violations(weekdays, trip(at=friday_noon_utc, timezone="Pacific/Auckland"))
    assert rules(found) == [PolicyRule.WEEKDAYS]
    assert "Saturday" in found[0].detail


def test_weekday_and_overnight_hours_are_independent_rules() -> None:
    # Documented: the weekday is the local calendar day of the moment checked.
    policy = EffectivePolicy(
        allowed_weekdays=frozenset({1, 2, 3, 4, 5}), hours=HoursWindow(time(22, 0), time(6, 0))
    )
    friday_late = datetime(2026, 3, 6, 22, 30, tzinfo=UTC)  # Friday 23:30 in Oslo
    saturday_early = datetime(2026, 3, 7, 1, 0, tzinfo=UTC)  # Saturday 02:00 in Oslo
    assert violations(policy, trip(at=friday_late)) == []
    assert rules(violations(policy, trip(at=saturday_early))) == [PolicyRule.WEEKDAYS]


def test_business_area_inside_outside_hole_and_other_part() -> None:
    policy = EffectivePolicy(
        business_area=area_wkb({"type": "MultiPolygon", "coordinates": [[OSLO, HOLE], [BERGEN]]})
    )
    assert violations(policy, trip(lat=59.91, lon=10.71)) == []
    assert violations(policy, trip(lat=60.38, lon=5.32)) == []  # the Bergen part
    assert rules(violations(policy, trip(lat=59.925, lon=10.75))) == [PolicyRule.BUSINESS_AREA]
    assert rules(violations(policy, trip(lat=59.0, lon=10.75))) == [PolicyRule.BUSINESS_AREA]
    assert rules(violations(policy, trip(lat=None, lon=None))) == [PolicyRule.BUSINESS_AREA]


def test_a_point_on_the_business_area_boundary_counts_as_inside() -> None:
    policy = EffectivePolicy(business_area=area_wkb({"type": "Polygon", "coordinates": [OSLO]}))
    assert violations(policy, trip(lat=59.90, lon=10.75)) == []  # on the southern edge
    assert violations(policy, trip(lat=59.90, lon=10.70)) == []  # a corner


def test_monthly_budget_counts_spend_plus_this_trip() -> None:
    policy = EffectivePolicy(monthly_budget=MoneyLimit(10_000, "NOK"))
    assert violations(policy, trip(month_spent_minor=9_500, estimated_price_minor=500)) == []
    found = violations(policy, trip(month_spent_minor=9_501, estimated_price_minor=500))
    assert rules(found) == [PolicyRule.MONTHLY_BUDGET]
    assert "95.01 NOK" in found[0].detail and "100.00 NOK" in found[0].detail
    other = violations(policy, trip(month_spent_minor=0, currency="EUR"))
    assert rules(other) == [PolicyRule.MONTHLY_BUDGET]
    assert "cannot be compared" in other[0].detail


def test_every_violation_is_reported_at_once() -> None:
    policy = EffectivePolicy(
        allowed_form_factors=frozenset({"bicycle"}),
        allowed_providers=frozenset({"citybike"}),
        max_price=MoneyLimit(100, "NOK"),
        allowed_weekdays=frozenset({6, 7}),
        hours=HoursWindow(time(1, 0), time(2, 0)),
        business_area=area_wkb({"type": "Polygon", "coordinates": [BERGEN]}),
        monthly_budget=MoneyLimit(300, "NOK"),
    )
    assert rules(violations(policy, trip())) == list(PolicyRule)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        violations(EffectivePolicy(), trip(at=datetime(2026, 3, 4, 12, 0)))


def test_merge_takes_the_cost_centres_rule_where_it_sets_one() -> None:
    org = EffectivePolicy(
        allowed_form_factors=frozenset({"bicycle"}),
        max_price=MoneyLimit(500, "NOK"),
        hours=HoursWindow(time(8, 0), time(18, 0)),
        monthly_budget=MoneyLimit(10_000, "NOK"),
    )
    centre = EffectivePolicy(
        allowed_form_factors=frozenset({"bicycle", "car"}), max_price=MoneyLimit(80, "EUR")
    )
    merged = merge(org, centre)
    assert merged == EffectivePolicy(
        allowed_form_factors=frozenset({"bicycle", "car"}),
        max_price=MoneyLimit(80, "EUR"),
        hours=HoursWindow(time(8, 0), time(18, 0)),
        monthly_budget=MoneyLimit(10_000, "NOK"),
    )


# ---------------------------------------------------------------- with the database


async def _org(runtime: Runtime, timezone: str = "Europe/Oslo") -> tuple[uuid.UUID, uuid.UUID]:
    """An organisation with one cost centre: (organisation id, cost centre id)."""
    async with transaction(runtime.sessions) as session:
        org = Organisation(name="Acme", timezone=timezone)
        session.add(org)
        await session.flush()
        centre = CostCentre(organisation_id=org.id, code="SALES", name="Sales")
        session.add(centre)
        await session.flush()
        return org.id, centre.id


async def _user(runtime: Runtime, org_id: uuid.UUID, role: Role) -> uuid.UUID:
    async with transaction(runtime.sessions) as session:
        user = User(email=f"u-{uuid.uuid4().hex[:10]}@example.org")
        session.add(user)
        await session.flush()
        session.add(OrganisationMember(organisation_id=org_id, user_id=user.id, role=role.value))
        return user.id


def admin(org_id: uuid.UUID) -> OrgActor:
    return OrgActor(org_id, user_id=uuid.uuid4(), role=Role.ADMIN)


async def test_set_policy_stores_and_replaces_the_whole_policy(runtime: Runtime) -> None:
    org_id, _ = await _org(runtime)
    async with transaction(runtime.sessions) as session:
        await set_policy(
            session,
            admin(org_id),
            allowed_form_factors=["bicycle", "car"],
            max_price_minor=500,
            currency="nok",
            allowed_weekdays=[5, 1, 1],
            allowed_from=time(22, 0),
            allowed_until=time(6, 0),
            business_area={"type": "Polygon", "coordinates": [OSLO]},
        )
    async with runtime.sessions() as session:
        stored = await get_policy(session, admin(org_id))
        assert stored is not None
        assert stored.allowed_form_factors == ["bicycle", "car"]
        assert stored.currency == "NOK"
        assert stored.allowed_weekdays == [1, 5]
        assert (stored.allowed_from, stored.allowed_until) == (time(22, 0), time(6, 0))
        effective = await effective_policy(session, org_id, None)
    assert effective.hours == HoursWindow(time(22, 0), time(6, 0))
    # The area went through PostGIS and back: still the same square.
    assert PolicyRule.BUSINESS_AREA not in rules(violations(effective, trip(lat=59.91, lon=10.71)))
    assert PolicyRule.BUSINESS_AREA in rules(violations(effective, trip(lat=59.0, lon=10.71)))

    async with transaction(runtime.sessions) as session:
        await set_policy(session, admin(org_id), allowed_providers=["voi"])
    async with runtime.sessions() as session:
        effective = await effective_policy(session, org_id, None)
    assert effective == EffectivePolicy(allowed_providers=frozenset({"voi"}))


async def test_cost_centre_policy_overrides_rule_by_rule(runtime: Runtime) -> None:
    org_id, centre_id = await _org(runtime)
    async with transaction(runtime.sessions) as session:
        await set_policy(
            session,
            admin(org_id),
            allowed_form_factors=["bicycle"],
            allowed_weekdays=[1, 2, 3, 4, 5],
            monthly_budget_minor=10_000,
            currency="NOK",
        )
        await set_policy(
            session,
            admin(org_id),
            cost_centre_id=centre_id,
            allowed_form_factors=["bicycle", "car"],
            max_price_minor=8_000,
            currency="EUR",
        )
    async with runtime.sessions() as session:
        for_centre = await effective_policy(session, org_id, centre_id)
        without = await effective_policy(session, org_id, None)
    assert for_centre == EffectivePolicy(
        allowed_form_factors=frozenset({"bicycle", "car"}),
        max_price=MoneyLimit(8_000, "EUR"),
        allowed_weekdays=frozenset({1, 2, 3, 4, 5}),
        monthly_budget=MoneyLimit(10_000, "NOK"),
    )
    assert without == EffectivePolicy(
        allowed_form_factors=frozenset({"bicycle"}),
        allowed_weekdays=frozenset({1, 2, 3, 4, 5}),
        monthly_budget=MoneyLimit(10_000, "NOK"),
    )
    # A car is fine for the cost centre, not for the rest of the organisation.
    car = trip(form_factor="car", estimated_price_minor=None, currency=None)
    assert PolicyRule.FORM_FACTOR not in rules(violations(for_centre, car))
    assert PolicyRule.FORM_FACTOR in rules(violations(without, car))


async def test_another_organisations_cost_centre_is_not_found(runtime: Runtime) -> None:
    org_id, _ = await _org(runtime)
    _, foreign_centre = await _org(runtime)
    async with transaction(runtime.sessions) as session:
        with pytest.raises(OrgNotFound):
            await set_policy(
                session, admin(org_id), cost_centre_id=foreign_centre, allowed_providers=["x"]
            )
    async with runtime.sessions() as session:
        # And its policy never leaks into this organisation's effective policy.
        assert await effective_policy(session, org_id, foreign_centre) == EffectivePolicy()


async def test_only_admins_may_set_policies(runtime: Runtime) -> None:
    org_id, _ = await _org(runtime)
    key = ApiKeyPrincipal(uuid.uuid4(), org_id, frozenset(Scope))
    for actor in (
        OrgActor(org_id, user_id=uuid.uuid4(), role=Role.BOOKER),
        OrgActor(org_id, user_id=uuid.uuid4(), role=Role.RIDER),
        OrgActor(org_id, api_key=key),
    ):
        async with runtime.sessions() as session:
            with pytest.raises(Forbidden):
                await set_policy(session, actor, allowed_providers=["voi"])
    async with transaction(runtime.sessions) as session:
        owner = OrgActor(org_id, user_id=uuid.uuid4(), role=Role.OWNER)
        await set_policy(session, owner, allowed_providers=["voi"])


@pytest.mark.parametrize(
    ("rules_given", "needle"),
    [
        ({"allowed_weekdays": [0, 1]}, "weekdays"),
        ({"allowed_weekdays": [8]}, "weekdays"),
        ({"allowed_from": time(8, 0)}, "both"),
        ({"allowed_from": time(8, 0), "allowed_until": time(8, 0)}, "equal"),
        ({"max_price_minor": -1, "currency": "NOK"}, "negative"),
        ({"max_price_minor": 100}, "currency"),
        ({"monthly_budget_minor": 100, "currency": "NO"}, "ISO 4217"),
        ({"currency": "NOK"}, "without"),
        ({"allowed_form_factors": ["hoverboard"]}, "hoverboard"),
        ({"business_area": {"type": "Point", "coordinates": [10.7, 59.9]}}, "Polygon"),
        ({"business_area": {"type": "Polygon", "coordinates": "nonsense"}}, "GeoJSON"),
        (
            # A bow tie: the ring crosses itself.
            {
                "business_area": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                }
            },
            "not a valid polygon",
        ),
        (
            # Latitude and longitude swapped beyond range: lat 190 does not exist.
            {
                "business_area": {
                    "type": "Polygon",
                    "coordinates": [[[59, 190], [60, 190], [60, 191], [59, 190]]],
                }
            },
            "WGS 84",
        ),
    ],
)
async def test_invalid_policies_are_refused_with_a_reason(
    runtime: Runtime, rules_given: dict[str, Any], needle: str
) -> None:
    org_id, _ = await _org(runtime)
    async with runtime.sessions() as session:
        with pytest.raises(InvalidInput) as refused:
            await set_policy(session, admin(org_id), **rules_given)
    assert refused.value.code == "INVALID_POLICY"
    assert needle in refused.value.message


def _booking(
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    state: str,
    currency: str | None = "NOK",
    final: int | None = None,
    estimate: int | None = None,
    ended_at: datetime | None = None,
) -> Booking:
    return Booking(
        user_id=user_id,
        organisation_id=org_id,
        provider_id="voi",
        vehicle_id=f"voi:{uuid.uuid4().hex}",
        vehicle_external_id=uuid.uuid4().hex,
        form_factor="scooter_standing",
        state=state,
        currency=currency,
        final_price_minor=final,
        estimated_price_minor=estimate,
        started_at=ended_at - timedelta(minutes=10) if ended_at else None,
        ended_at=ended_at,
    )


async def test_month_spend_and_budget_check_in_the_organisations_time_zone(
    runtime: Runtime,
) -> None:
    org_id, centre_id = await _org(runtime, "Europe/Oslo")
    other_org, _ = await _org(runtime)
    member = await _user(runtime, org_id, Role.RIDER)
    colleague = await _user(runtime, org_id, Role.RIDER)
    at = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)

    # March 2026 in Oslo: 2026-02-28T23:00Z to 2026-03-31T22:00Z (DST begins 29 March).
    def finished(user: uuid.UUID, final: int, ended: datetime, **kw: Any) -> Booking:
        return _booking(org_id, user, state="FINISHED", final=final, ended_at=ended, **kw)

    counted = [
        # The first minute of March in Oslo (00:00 local), still February in UTC.
        finished(member, 1_000, datetime(2026, 2, 28, 23, 0, tzinfo=UTC)),
        # The last minute of March in Oslo (23:59 local, summer time since 29 March).
        finished(member, 2_000, datetime(2026, 3, 31, 21, 59, tzinfo=UTC)),
        # Finished without a final price: its estimate stands in.
        _booking(
            org_id,
            member,
            state="FINISHED",
            estimate=300,
            ended_at=datetime(2026, 3, 10, tzinfo=UTC),
        ),
        # Active: money committed, whenever it began.
        _booking(org_id, member, state="CONFIRMED", estimate=400),
        _booking(org_id, member, state="STARTED", estimate=500),
    ]
    not_counted = [
        # 23:59 on 28 February in Oslo: last month.
        finished(member, 10_000, datetime(2026, 2, 28, 22, 59, tzinfo=UTC)),
        # 00:00 on 1 April in Oslo: next month, though still March in UTC.
        finished(member, 10_000, datetime(2026, 3, 31, 22, 0, tzinfo=UTC)),
        _booking(org_id, member, state="CANCELLED", estimate=10_000),
        finished(member, 10_000, datetime(2026, 3, 10, tzinfo=UTC), currency="EUR"),
        finished(colleague, 10_000, datetime(2026, 3, 10, tzinfo=UTC)),
        _booking(
            other_org,
            member,
            state="FINISHED",
            final=10_000,
            ended_at=datetime(2026, 3, 10, tzinfo=UTC),
        ),
    ]
    async with transaction(runtime.sessions) as session:
        session.add_all(counted + not_counted)
    expected_spend = 1_000 + 2_000 + 300 + 400 + 500

    async with runtime.sessions() as session:
        spent = await month_spent(
            session,
            organisation_id=org_id,
            member_user_id=member,
            currency="NOK",
            at=at,
            timezone="Europe/Oslo",
        )
    assert spent == expected_spend

    async with transaction(runtime.sessions) as session:
        await set_policy(
            session, admin(org_id), monthly_budget_minor=expected_spend + 600, currency="NOK"
        )

    async def check(estimate: int) -> list[PolicyRule]:
        async with runtime.sessions() as session:
            return rules(
                await check_trip(
                    session,
                    organisation_id=org_id,
                    cost_centre_id=centre_id,
                    member_user_id=member,
                    provider_id="voi",
                    form_factor="scooter_standing",
                    estimated_price_minor=estimate,
                    currency="NOK",
                    lat=59.92,
                    lon=10.72,
                    at=at,
                )
            )

    assert await check(600) == []
    assert await check(601) == [PolicyRule.MONTHLY_BUDGET]


async def test_check_trip_uses_the_stored_area_and_the_cost_centre(runtime: Runtime) -> None:
    org_id, centre_id = await _org(runtime, "Europe/Oslo")
    member = await _user(runtime, org_id, Role.RIDER)
    async with transaction(runtime.sessions) as session:
        # Set twice: the second area replaces the first (the upsert's update path).
        for area in (BERGEN, OSLO):
            await set_policy(
                session, admin(org_id), business_area={"type": "Polygon", "coordinates": [area]}
            )
        await set_policy(
            session,
            admin(org_id),
            cost_centre_id=centre_id,
            business_area={"type": "Polygon", "coordinates": [BERGEN]},
        )

    async def check(centre: uuid.UUID | None, lat: float, lon: float) -> list[PolicyRule]:
        async with runtime.sessions() as session:
            return rules(
                await check_trip(
                    session,
                    organisation_id=org_id,
                    cost_centre_id=centre,
                    member_user_id=member,
                    provider_id="voi",
                    form_factor="bicycle",
                    estimated_price_minor=100,
                    currency="NOK",
                    lat=lat,
                    lon=lon,
                    at=datetime(2026, 3, 4, 12, 0, tzinfo=UTC),
                )
            )

    assert await check(None, 59.92, 10.72) == []
    assert await check(None, 60.38, 5.32) == [PolicyRule.BUSINESS_AREA]
    assert await check(centre_id, 60.38, 5.32) == []
    assert await check(centre_id, 59.92, 10.72) == [PolicyRule.BUSINESS_AREA]


async def test_check_trip_of_an_unknown_organisation_is_not_found(runtime: Runtime) -> None:
    async with runtime.sessions() as session:
        with pytest.raises(OrgNotFound):
            await check_trip(
                session,
                organisation_id=uuid.uuid4(),
                cost_centre_id=None,
                member_user_id=uuid.uuid4(),
                provider_id="voi",
                form_factor="bicycle",
                estimated_price_minor=None,
                currency=None,
                lat=None,
                lon=None,
                at=datetime.now(UTC),
            )
