"""Feed overrides through the admin API: validated with the config, visible to staff only, and
their findings first in the provider's health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.platform.db import transaction
from app.runtime import Runtime
from app.staff_auth import create_token
from providers.simulators.feed_server import FeedServer
from tests.helpers import feed_dir, raw

FOLDER = "lillestrom-bysykkel"
ADD = """
mutation($input: ProviderInput!) { addProvider(input: $input) { id config overrides { language } } }
"""
SET = """
mutation($id: ID!, $overrides: JSON) {
  setProviderOverrides(id: $id, overrides: $overrides) {
    id config
    overrides { vehicleTypeIds pricingPlanIds excludedFeeds language
                vehicleTypeMap { operatorId mappedTo } pricingPlanMap { operatorId mappedTo } }
  }
}"""
SEE = """
query { providers { id config overrides { excludedFeeds }
                    health { validation { warnings sample { feed code recordId } } } } }"""
GOOD_TYPE = {
    "vehicle_type_id": "city-bike",
    "form_factor": "bicycle",
    "propulsion_type": "human",
    "name": "City bike",
}


async def _token(runtime: Runtime) -> str:
    async with transaction(runtime.sessions) as session:
        _, token = await create_token(session, "ops")
    return token


async def gql(
    api: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, token: str = ""
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def _feeds(server: FeedServer, base_url: str) -> dict[str, str]:
    paths = server.add_directory("lille", feed_dir(FOLDER))
    return {Path(p).stem: base_url + p for p in paths if Path(p).stem != "gbfs"}


async def _stored_config(runtime: Runtime) -> dict[str, Any] | None:
    async with runtime.sessions() as session:
        row = await session.execute(text("SELECT config FROM providers WHERE id = 'lille'"))
        value = row.scalar_one_or_none()
    return value


async def test_bad_overrides_are_refused_with_a_code_and_change_nothing(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    token = await _token(runtime)
    feeds = _feeds(server, base_url)
    bad_type = {**GOOD_TYPE, "propulsion_type": "pedal_power"}

    body = await gql(
        api,
        ADD,
        {
            "input": {
                "id": "lille",
                "config": {"feeds": feeds, "overrides": {"vehicle_types": [bad_type]}},
            }
        },
        token,
    )
    assert _codes(body) == ["INVALID_PROVIDER_CONFIG"]
    assert "pedal_power" in body["errors"][0]["message"]
    assert await _stored_config(runtime) is None

    body = await gql(api, ADD, {"input": {"id": "lille", "config": {"feeds": feeds}}}, token)
    assert body["data"]["addProvider"]["overrides"] is None
    for overrides in (
        {"vehicle_types": [bad_type]},
        {"exclude_feeds": ["station_information", "station_status"]},  # nothing left
        {"vehicle_type_map": {"a": "b", "b": "c"}},
        ["not", "an", "object"],
    ):
        body = await gql(api, SET, {"id": "lille", "overrides": overrides}, token)
        assert _codes(body) == ["INVALID_PROVIDER_CONFIG"], overrides
    assert await _stored_config(runtime) == {"feeds": feeds}

    body = await gql(api, SET, {"id": "lille", "overrides": {"exclude_feeds": []}})
    assert _codes(body) == ["FORBIDDEN"]
    body = await gql(api, SET, {"id": "ghost", "overrides": None}, token)
    assert _codes(body) == ["PROVIDER_NOT_FOUND"]


async def test_staff_see_the_config_masked_and_the_overrides_and_findings_come_first(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    token = await _token(runtime)
    feeds = _feeds(server, base_url)
    config = {"feeds": feeds, "language": "nb", "headers": {"X-Api-Key": "s3cr3t-key"}}
    await gql(api, ADD, {"input": {"id": "lille", "config": config}}, token)
    raw_types = raw(FOLDER, "vehicle_types")["data"]["vehicle_types"]
    overrides = {
        "vehicle_types": [GOOD_TYPE],
        # Map the operator's one type to ours; a second entry names an id the feed never uses.
        "vehicle_type_map": {raw_types[0]["vehicle_type_id"]: "city-bike", "retired": "city-bike"},
        "exclude_feeds": ["system_pricing_plans"],
    }

    body = await gql(api, SET, {"id": "lille", "overrides": overrides}, token)

    provider = body["data"]["setProviderOverrides"]
    assert provider["overrides"] == {
        "vehicleTypeIds": ["city-bike"],
        "pricingPlanIds": [],
        "excludedFeeds": ["system_pricing_plans"],
        "language": "nb",
        "vehicleTypeMap": [
            {"operatorId": op, "mappedTo": "city-bike"}
            for op in sorted(overrides["vehicle_type_map"])
        ],
        "pricingPlanMap": [],
    }
    # The rest of the config is kept; a header's value never comes out.
    assert provider["config"] == {
        "adapter": "gbfs",
        "feeds": feeds,
        "language": "nb",
        "headers": {"X-Api-Key": "***"},
        "overrides": overrides,
    }
    assert "s3cr3t-key" not in str(body)

    report = await runtime.sync.sync("lille")
    assert report.ok, report.error
    async with runtime.sessions() as session:
        plans = await session.execute(text("SELECT count(*) FROM pricing_plans"))
        counts = await session.execute(
            text("SELECT vehicle_types_available FROM stations WHERE provider_id = 'lille'")
        )
        assert plans.scalar_one() == 0  # excluded: never read
        type_ids = {c["vehicle_type_id"] for row in counts for c in row[0]}
    assert type_ids <= {"lille:city-bike"} and type_ids

    seen = (await gql(api, SEE, token=token))["data"]["providers"]
    (lille,) = seen
    assert lille["overrides"] == {"excludedFeeds": ["system_pricing_plans"]}
    first = lille["health"]["validation"]["sample"][0]
    assert first == {"feed": "overrides", "code": "OVERRIDE_UNUSED", "recordId": "retired"}
    anonymous = (await gql(api, SEE))["data"]["providers"]
    assert [(p["config"], p["overrides"]) for p in anonymous] == [(None, None)]

    # null removes them, and only them.
    body = await gql(api, SET, {"id": "lille", "overrides": None}, token)
    assert body["data"]["setProviderOverrides"]["overrides"] is None
    assert await _stored_config(runtime) == {k: v for k, v in config.items()}
