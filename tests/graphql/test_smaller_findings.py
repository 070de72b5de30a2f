"""The smaller findings of the attacker's first hour (issue 16, item 13), each answered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.fleet.api_keys import new_key
from app.main import create_app
from app.platform.settings import Settings
from app.runtime import Runtime
from app.staff_auth import new_token
from tests.booking_support import codes, gql, sign_up, staff_token
from tests.conftest import make_settings
from tests.graphql.test_quotes_api import fleet

__all__ = ["fleet"]


@pytest.fixture
async def closed_api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app as production configures GraphQL: no introspection, no suggestions."""
    settings = make_settings(graphql_introspection=False, graphql_suggestions=False)
    app = create_app(settings)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def test_introspection_and_suggestions_are_off_in_production_by_default() -> None:
    production = Settings(environment="production")
    assert not production.introspection_enabled and not production.suggestions_enabled
    development = Settings(environment="development")
    assert development.introspection_enabled and development.suggestions_enabled


async def test_introspection_off_refuses_the_schema_but_not_typename(
    closed_api: httpx.AsyncClient,
) -> None:
    refused = await gql(closed_api, "{ __schema { types { name } } }")
    assert set(codes(refused)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert (await gql(closed_api, "{ __typename }"))["data"] == {"__typename": "Query"}


@pytest.mark.parametrize(
    "query",
    [
        '{ vehicle(ids: "x") { id } }',  # an argument
        "{ vehicls { id } }",  # a field
        "{ vehicles(near: {lat: 1, lon: 1, radiusMeters: 9}) { idd } }",  # a field below
    ],
)
async def test_no_suggestions_name_the_schema(
    api: httpx.AsyncClient, closed_api: httpx.AsyncClient, query: str
) -> None:
    told = await gql(api, query)
    assert "Did you mean" in told["errors"][0]["message"]  # the premise: suggestions by default
    closed = await gql(closed_api, query)
    assert closed["errors"] and all("Did you mean" not in e["message"] for e in closed["errors"])
    assert codes(closed) == codes(told)


async def test_me_with_a_forged_staff_token_or_api_key_is_an_error_not_anonymous(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    me = "{ me { email } }"
    assert codes(await gql(api, me, token=new_token())) == ["INVALID_TOKEN"]
    assert codes(await gql(api, me, token=new_key(live=False))) == ["INVALID_API_KEY"]
    # A real staff token is not a rider: null, no error.
    assert await gql(api, me, token=await staff_token(runtime)) == {"data": {"me": None}}


async def test_trip_options_and_quotes_are_for_rides_not_journeys_across_the_world(
    api: httpx.AsyncClient, fleet: str
) -> None:
    from tests.graphql.test_quotes_api import ORIGIN

    antipode = {"lat": -ORIGIN[0], "lon": ORIGIN[1] - 180}
    trip = await gql(
        api,
        "query($f: LatLonInput!, $t: LatLonInput!) {"
        " tripOptions(from: $f, to: $t) { rideMinutes } }",
        {"f": {"lat": ORIGIN[0], "lon": ORIGIN[1]}, "t": antipode},
    )
    assert codes(trip) == ["TRIP_TOO_LONG"]
    vehicle = (
        await gql(
            api,
            f"{{ vehicles(near: {{lat: {ORIGIN[0]}, lon: {ORIGIN[1]}, radiusMeters: 3000}},"
            " first: 1) { id } }",
        )
    )["data"]["vehicles"][0]["id"]
    quote = await gql(
        api,
        "query($v: ID!, $t: LatLonInput!) { quote(vehicleId: $v, to: $t) { id } }",
        {"v": vehicle, "t": antipode},
    )
    assert codes(quote) == ["TRIP_TOO_LONG"]


SIGN_UP = "mutation($i: SignUpInput!) { signUp(input: $i) { rider { displayName } } }"


@pytest.mark.parametrize(
    "name",
    [
        "Ada\u202egnp.exe",
        "Ada\nLovelace",
        "Ada\u2066x\u2069",
        "Ada\u200b",
        "Ada\x07",
        "Ada\u2028Lovelace",
    ],
)
async def test_display_names_refuse_controls_and_invisible_formatting(
    api: httpx.AsyncClient, name: str
) -> None:
    body = await gql(
        api,
        SIGN_UP,
        {"i": {"email": "n@example.org", "password": "correct horse battery", "displayName": name}},
    )
    assert codes(body) == ["INVALID_DISPLAY_NAME"]


async def test_display_names_keep_what_scripts_and_emoji_need(api: httpx.AsyncClient) -> None:
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # with a ZWNJ inside
    for i, name in enumerate(["Zo\u00eb", persian, "\U0001f469\u200d\U0001f4bb Ada", "\u00c5sa"]):
        body = await gql(
            api,
            SIGN_UP,
            {
                "i": {
                    "email": f"n{i}@example.org",
                    "password": "correct horse battery",
                    "displayName": name,
                }
            },
        )
        assert "errors" not in body, body
        assert body["data"]["signUp"]["rider"]["displayName"] == name


async def test_organisation_names_refuse_bidi_overrides(api: httpx.AsyncClient) -> None:
    token, _ = await sign_up(api)
    body = await gql(
        api,
        'mutation($n: String!) { createOrganisation(name: $n, timezone: "UTC") { id } }',
        {"n": "Acme\u202e"},
        token,
    )
    assert codes(body) == ["INVALID_NAME"]
