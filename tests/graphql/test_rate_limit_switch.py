"""`MOBILITY_RATE_LIMITS_ENABLED=false` (load tests) lets a rider past the per-rider limit;
on (the default) the limit holds. Burst from app/rate_limit.RIDER_LIMIT."""

from __future__ import annotations

import httpx

from app.main import create_app
from app.rate_limit import RIDER_LIMIT
from app.runtime import Runtime, open_runtime
from tests.booking_support import codes, gql, sign_up
from tests.conftest import make_settings

MINE = "query { myBookings { id } }"


async def _passed(api: httpx.AsyncClient, token: str, tries: int) -> int:
    passed = 0
    for _ in range(tries):
        if codes(await gql(api, MINE, {}, token)) == ["RATE_LIMITED"]:
            break
        passed += 1
    return passed


async def test_the_switch_turns_the_rider_limit_off_and_only_that(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    tries = RIDER_LIMIT.burst + 20  # well past the burst, faster than the refill can cover
    token, _ = await sign_up(api)
    assert await _passed(api, token, tries) < tries
    settings = make_settings(rate_limits_enabled=False)
    async with open_runtime(settings) as own:
        off = create_app(settings)
        off.state.runtime = own
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=off), base_url="http://api"
        ) as unlimited:
            other, _ = await sign_up(unlimited)
            assert await _passed(unlimited, other, tries) == tries


async def test_plans_come_from_settings_and_staff_set_an_organisations_plan(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    from tests.booking_support import staff_token
    from tests.graphql.test_fleet_booking import CREATE_KEY, Org

    plans = {"STANDARD": (3, 0.001), "GOLD": (7, 0.001)}
    settings = make_settings(rate_limit_plans=plans, rate_limit_rider=(15, 0.001))
    async with open_runtime(settings) as own:
        app = create_app(settings)
        app.state.runtime = own
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            org = await Org.build(client, "Acme")
            search = "query { providers { id } }"

            async def passes(token: str) -> int:
                count = 0
                for _ in range(20):
                    if codes(await gql(client, search, {}, token)) == ["RATE_LIMITED"]:
                        break
                    count += 1
                return count

            new_key = CREATE_KEY.replace("secret", "secret")
            first = (
                await gql(client, new_key, {"org": org.id, "scopes": ["VEHICLES_READ"]}, org.owner)
            )["data"]["createApiKey"]["secret"]
            assert await passes(first) == plans["STANDARD"][0]
            staff = await staff_token(own)
            set_plan = (
                "mutation($o: ID!, $p: String!) { setOrganisationPlan(organisationId: $o, "
                "plan: $p) { plan } }"
            )
            unknown = await gql(client, set_plan, {"o": org.id, "p": "PLATINUM"}, staff)
            assert codes(unknown) == ["INVALID_PLAN"]
            assert codes(await gql(client, set_plan, {"o": org.id, "p": "GOLD"}, org.owner)) == [
                "FORBIDDEN"
            ]
            gold = await gql(client, set_plan, {"o": org.id, "p": "GOLD"}, staff)
            assert gold["data"]["setOrganisationPlan"]["plan"] == "GOLD"
            second = (
                await gql(client, new_key, {"org": org.id, "scopes": ["VEHICLES_READ"]}, org.owner)
            )["data"]["createApiKey"]["secret"]
            assert await passes(second) == plans["GOLD"][0]
            rider, _ = await sign_up(client)
            assert await passes(rider) == 15


async def test_the_csv_report_answers_429_over_the_limit(runtime: Runtime) -> None:
    from tests.graphql.test_fleet_booking import CREATE_KEY, Org

    settings = make_settings(rate_limit_plans={"STANDARD": (2, 0.001)})
    async with open_runtime(settings) as own:
        app = create_app(settings)
        app.state.runtime = own
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            org = await Org.build(client, "Acme")
            created = await gql(
                client, CREATE_KEY, {"org": org.id, "scopes": ["REPORTS_READ"]}, org.owner
            )
            secret = created["data"]["createApiKey"]["secret"]
            answers = [
                await client.get(
                    "/reports/usage.csv",
                    params={"organisationId": org.id, "month": "2026-11", "groupBy": "MEMBER"},
                    headers={"Authorization": f"Bearer {secret}"},
                )
                for _ in range(3)
            ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
