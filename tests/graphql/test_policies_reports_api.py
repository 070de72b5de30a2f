"""Policies and usage reports through the API: GraphQL ``setPolicy`` / ``policy`` /
``effectivePolicy`` / ``usageReport`` and ``GET /reports/usage.csv``, with their access rules
(another organisation: NOT_FOUND; a RIDER member: FORBIDDEN; a key without the scope:
MISSING_SCOPE)."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.fleet.api_keys import SHOWN_CHARS, key_hash, new_key
from app.fleet.principal import Role, Scope
from app.fleet.reports import GroupBy
from app.models import ApiKey, User
from app.platform.db import transaction
from app.rest.reports import CSV_COLUMNS
from app.runtime import Runtime
from tests.app.test_reports import (
    Fleet,
    Member,
    add_organisation,
    expected_report,
    generated_fleet,
)
from tests.booking_support import codes, gql, sign_up

FORMULA_NAME = '=HYPERLINK("http://evil.example","click")'

SET_POLICY = """
mutation P($org: ID, $centre: ID, $input: PolicyInput!) {
  setPolicy(organisationId: $org, costCentreId: $centre, input: $input) {
    organisationId costCentreId allowedFormFactors allowedProviders allowedWeekdays
    allowedFrom allowedUntil businessArea
    maxPrice { amountMinor currency } monthlyBudget { amountMinor currency }
  }
}"""

POLICY = """
query P($org: ID, $centre: ID) {
  policy(organisationId: $org, costCentreId: $centre) { costCentreId allowedProviders }
}"""

EFFECTIVE = """
query E($org: ID, $centre: ID) {
  effectivePolicy(organisationId: $org, costCentreId: $centre) {
    allowedFormFactors allowedProviders allowedWeekdays allowedFrom allowedUntil
    maxPrice { amountMinor currency } monthlyBudget { amountMinor currency }
  }
}"""

REPORT = """
query R($org: ID, $month: String!, $groupBy: UsageGroupBy!) {
  usageReport(organisationId: $org, month: $month, groupBy: $groupBy) {
    organisationId month timezone groupBy
    rows { groupKey groupLabel currency trips totalMinor minutes kilometres co2Grams
           tripsWithoutCo2 }
  }
}"""

OSLO = [[10.70, 59.90], [10.80, 59.90], [10.80, 59.95], [10.70, 59.95], [10.70, 59.90]]


@dataclass
class Setup:
    fleet: Fleet
    owner: str  # tokens
    rider: str
    outsider: str  # ADMIN of another organisation
    outsider_org: uuid.UUID
    reader_key: str  # API keys of the fleet's organisation
    writer_key: str  # every scope but reports:read
    outsider_key: str  # a key of the other organisation, with every scope


async def api_key(runtime: Runtime, organisation_id: uuid.UUID, scopes: list[Scope]) -> str:
    token = new_key(live=False)
    async with transaction(runtime.sessions) as session:
        session.add(
            ApiKey(
                organisation_id=organisation_id,
                name="test key",
                prefix=token[:SHOWN_CHARS],
                key_hash=key_hash(token),
                scopes=[s.value for s in scopes],
            )
        )
    return token


async def members(runtime: Runtime, user_ids: list[str]) -> list[Member]:
    ids = [uuid.UUID(u) for u in user_ids]
    async with transaction(runtime.sessions) as session:
        users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(ids))))}
        # A name a spreadsheet would run as a formula: the CSV must neutralise it.
        users[ids[0]].display_name = FORMULA_NAME
        users[ids[1]].display_name = "Rita Rider"
    return [Member(i, users[i].email, users[i].display_name) for i in ids]


@pytest.fixture
async def setup(api: httpx.AsyncClient, runtime: Runtime) -> Setup:
    owner, owner_id = await sign_up(api)
    rider, rider_id = await sign_up(api)
    _, booker_id = await sign_up(api)
    outsider, outsider_id = await sign_up(api)
    people = await members(runtime, [owner_id, rider_id, booker_id])
    fleet, _ = await generated_fleet(
        runtime,
        people,
        seed=6,
        extra_roles={people[0].user_id: Role.OWNER, people[2].user_id: Role.BOOKER},
    )
    outsider_org, _ = await add_organisation(runtime, [(uuid.UUID(outsider_id), Role.ADMIN)])
    every_scope = list(Scope)
    return Setup(
        fleet=fleet,
        owner=owner,
        rider=rider,
        outsider=outsider,
        outsider_org=outsider_org,
        reader_key=await api_key(runtime, fleet.organisation_id, [Scope.REPORTS_READ]),
        writer_key=await api_key(
            runtime, fleet.organisation_id, [s for s in every_scope if s is not Scope.REPORTS_READ]
        ),
        outsider_key=await api_key(runtime, outsider_org, every_scope),
    )


# ---------------------------------------------------------------- policies


async def test_owner_sets_organisation_policy_and_cost_centre_override(
    api: httpx.AsyncClient, setup: Setup
) -> None:
    org = str(setup.fleet.organisation_id)
    centre = str(setup.fleet.centres[0].id)
    body = await gql(
        api,
        SET_POLICY,
        {
            "org": org,
            "input": {
                "allowedFormFactors": ["BICYCLE", "SCOOTER_STANDING"],
                "allowedWeekdays": [1, 2, 3, 4, 5],
                "allowedFrom": "22:00:00",
                "allowedUntil": "06:00:00",
                "businessArea": {"type": "Polygon", "coordinates": [OSLO]},
                "monthlyBudgetMinor": 250_000,
                "currency": "NOK",
            },
        },
        setup.owner,
    )
    assert "errors" not in body, body
    stored = body["data"]["setPolicy"]
    assert stored["organisationId"] == org and stored["costCentreId"] is None
    assert stored["allowedFormFactors"] == ["BICYCLE", "SCOOTER_STANDING"]
    assert (stored["allowedFrom"], stored["allowedUntil"]) == ("22:00:00", "06:00:00")
    assert stored["monthlyBudget"] == {"amountMinor": 250_000, "currency": "NOK"}
    assert stored["maxPrice"] is None
    assert stored["businessArea"]["type"] == "MultiPolygon"

    body = await gql(
        api,
        SET_POLICY,
        {
            "org": org,
            "centre": centre,
            "input": {"allowedFormFactors": ["CAR"], "maxPriceMinor": 9_000, "currency": "EUR"},
        },
        setup.owner,
    )
    assert body["data"]["setPolicy"]["costCentreId"] == centre, body

    effective = await gql(api, EFFECTIVE, {"org": org, "centre": centre}, setup.rider)
    assert effective["data"]["effectivePolicy"] == {
        "allowedFormFactors": ["CAR"],
        "allowedProviders": None,
        "allowedWeekdays": [1, 2, 3, 4, 5],
        "allowedFrom": "22:00:00",
        "allowedUntil": "06:00:00",
        "maxPrice": {"amountMinor": 9_000, "currency": "EUR"},
        "monthlyBudget": {"amountMinor": 250_000, "currency": "NOK"},
    }
    # The organisation's own policy is unchanged by the override; a RIDER member may read it.
    mine = await gql(api, POLICY, {"org": org}, setup.rider)
    assert mine["data"]["policy"] == {"costCentreId": None, "allowedProviders": None}
    # So may an API key of the organisation, which books within it.
    keyed = await gql(api, POLICY, {"centre": centre}, setup.writer_key)
    assert keyed["data"]["policy"]["costCentreId"] == centre, keyed


async def test_invalid_policy_input_says_what_to_change(
    api: httpx.AsyncClient, setup: Setup
) -> None:
    org = str(setup.fleet.organisation_id)
    for bad in (
        {"allowedWeekdays": [0]},
        {"allowedFrom": "08:00:00"},
        {"maxPriceMinor": 100},
        {"businessArea": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1]]]}},
        {"businessArea": [1, 2]},
    ):
        body = await gql(api, SET_POLICY, {"org": org, "input": bad}, setup.owner)
        assert codes(body) == ["INVALID_POLICY"], (bad, body)


async def test_policies_are_invisible_to_other_organisations_and_closed_to_riders_and_keys(
    api: httpx.AsyncClient, runtime: Runtime, setup: Setup
) -> None:
    org = str(setup.fleet.organisation_id)
    write = {"org": org, "input": {"allowedProviders": ["voi"]}}
    assert codes(await gql(api, SET_POLICY, write, setup.outsider)) == ["NOT_FOUND"]
    assert codes(await gql(api, POLICY, {"org": org}, setup.outsider)) == ["NOT_FOUND"]
    assert codes(await gql(api, EFFECTIVE, {"org": org}, setup.outsider_key)) == ["NOT_FOUND"]
    assert codes(await gql(api, SET_POLICY, write, setup.rider)) == ["FORBIDDEN"]
    assert codes(await gql(api, SET_POLICY, write, setup.writer_key)) == ["FORBIDDEN"]
    # The other organisation's cost centre is not found through this one's admin either.
    _, their_centres = await add_organisation(runtime, [])
    foreign = {**write, "centre": str(their_centres[0].id)}
    assert codes(await gql(api, SET_POLICY, foreign, setup.owner)) == ["NOT_FOUND"]
    assert codes(await gql(api, POLICY, {"org": org, "centre": "not-a-uuid"}, setup.owner)) == [
        "NOT_FOUND"
    ]


# ---------------------------------------------------------------- reports


async def report(
    api: httpx.AsyncClient, token: str, group_by: GroupBy, org: str | None, month: str = "2026-03"
) -> dict[str, Any]:
    return await gql(api, REPORT, {"org": org, "month": month, "groupBy": group_by.value}, token)


async def report_csv(
    api: httpx.AsyncClient,
    token: str | None,
    group_by: str,
    org: str | None,
    month: str = "2026-03",
) -> httpx.Response:
    params = {"month": month, "groupBy": group_by}
    if org is not None:
        params["organisationId"] = org
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await api.get("/reports/usage.csv", params=params, headers=headers)


def _as_graphql(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row in the GraphQL row's shape (formula escaping undone: it is documented)."""
    label = row["group_label"]
    return {
        "groupKey": row["group_key"],
        "groupLabel": label[1:] if label.startswith("'=") else label,
        "currency": row["currency"] or None,
        "trips": int(row["trips"]),
        "totalMinor": int(row["total_minor"]),
        "minutes": float(row["minutes"]),
        "kilometres": float(row["kilometres"]),
        "co2Grams": int(row["co2_grams"]),
        "tripsWithoutCo2": int(row["trips_without_co2"]),
    }


@pytest.mark.parametrize("group_by", list(GroupBy))
async def test_csv_equals_graphql_rows_and_the_independent_computation(
    api: httpx.AsyncClient, setup: Setup, group_by: GroupBy
) -> None:
    org = str(setup.fleet.organisation_id)
    body = await report(api, setup.owner, group_by, org)
    assert "errors" not in body, body
    result = body["data"]["usageReport"]
    assert (result["month"], result["timezone"], result["groupBy"]) == (
        "2026-03",
        "America/New_York",
        group_by.value,
    )
    rows = result["rows"]

    response = await report_csv(api, setup.owner, group_by.value, org)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert (
        f'filename="usage-2026-03-{group_by.value.lower()}-{org}.csv"'
        in response.headers["content-disposition"]
    )
    parsed = list(csv.DictReader(io.StringIO(response.text)))
    assert response.text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert [_as_graphql(r) for r in parsed] == rows
    # Minor units are integers in the file, never decimals.
    assert all(r["total_minor"].lstrip("-").isdigit() for r in parsed)

    expected = expected_report(setup.fleet.trips, setup.fleet.organisation_id, group_by)
    assert {(r["groupKey"], r["currency"]): r for r in rows} == {
        key: {
            "groupKey": e.group_key,
            "groupLabel": e.group_label,
            "currency": e.currency,
            "trips": e.trips,
            "totalMinor": e.total_minor,
            "minutes": float(e.minutes),
            "kilometres": float(e.kilometres),
            "co2Grams": e.co2_grams,
            "tripsWithoutCo2": e.trips_without_co2,
        }
        for key, e in expected.items()
    }


async def test_csv_neutralises_formula_like_names(api: httpx.AsyncClient, setup: Setup) -> None:
    org = str(setup.fleet.organisation_id)
    response = await report_csv(api, setup.owner, "MEMBER", org)
    labels = [r["group_label"] for r in csv.DictReader(io.StringIO(response.text))]
    assert any(label.startswith("'" + FORMULA_NAME) for label in labels), labels
    assert not any(label.startswith("=") for label in labels)


async def test_report_access_rules_in_graphql_and_csv(api: httpx.AsyncClient, setup: Setup) -> None:
    org = str(setup.fleet.organisation_id)
    refusals = [
        (setup.outsider, org, "NOT_FOUND", 404),
        (setup.outsider_key, org, "NOT_FOUND", 404),
        (setup.rider, org, "FORBIDDEN", 403),
        (setup.writer_key, org, "MISSING_SCOPE", 403),
    ]
    for token, wanted, code, status in refusals:
        body = await report(api, token, GroupBy.MEMBER, wanted)
        assert codes(body) == [code], body
        response = await report_csv(api, token, "MEMBER", wanted)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code

    # A key with reports:read needs no organisationId: it acts for its own organisation.
    body = await report(api, setup.reader_key, GroupBy.PROVIDER, None)
    assert body["data"]["usageReport"]["organisationId"] == org, body
    response = await report_csv(api, setup.reader_key, "provider", None)
    assert response.status_code == 200, response.text

    unauthenticated = await report_csv(api, None, "MEMBER", org)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "UNAUTHENTICATED"
    bad_key = await report_csv(api, new_key(live=False), "MEMBER", org)
    assert (bad_key.status_code, bad_key.json()["error"]["code"]) == (401, "INVALID_API_KEY")
    bad_token = await report_csv(api, "not.a.token", "MEMBER", org)
    assert bad_token.status_code == 401

    bad_month = await report_csv(api, setup.owner, "MEMBER", org, month="2026-13")
    assert (bad_month.status_code, bad_month.json()["error"]["code"]) == (400, "INVALID_MONTH")
    bad_group = await report_csv(api, setup.owner, "COLOUR", org)
    assert (bad_group.status_code, bad_group.json()["error"]["code"]) == (400, "INVALID_GROUP_BY")
    assert codes(await report(api, setup.owner, GroupBy.MEMBER, org, month="03/2026")) == [
        "INVALID_MONTH"
    ]


async def test_decimal_columns_are_exact_in_the_csv(api: httpx.AsyncClient, setup: Setup) -> None:
    org = str(setup.fleet.organisation_id)
    response = await report_csv(api, setup.owner, "FORM_FACTOR", org)
    for row in csv.DictReader(io.StringIO(response.text)):
        assert Decimal(row["minutes"]).as_tuple().exponent == -2
        assert Decimal(row["kilometres"]).as_tuple().exponent == -3


@pytest.mark.parametrize("month", ["9999-12", "1969-12", "2026-13", "10000-01"])
async def test_months_outside_the_calendar_we_report_on_are_invalid(
    api: httpx.AsyncClient, setup: Setup, month: str
) -> None:
    org = str(setup.fleet.organisation_id)
    body = await report(api, setup.owner, GroupBy.MEMBER, org, month=month)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["INVALID_MONTH"]
    csv = await report_csv(api, setup.owner, "MEMBER", org, month=month)
    assert csv.status_code == 400
    assert csv.json()["error"]["code"] == "INVALID_MONTH"
