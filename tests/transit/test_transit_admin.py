"""Staff's transit feed mutations over GraphQL: a feed registered and loaded from a URL served
over HTTP, counts checked against the raw zip read here with csv; an unchanged reload; the
refusals (not staff, a path on the server, an unknown feed)."""

from __future__ import annotations

from typing import Any

import httpx

from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.booking_support import staff_token
from tests.transit.gtfs_support import raw_rows, real_feed

ADD = """mutation ($input: TransitFeedInput!) { addTransitFeed(input: $input) {
  unchanged footpaths findings
  feed { id name source activeVersion timezone counts lastError realtime { tripUpdates } } } }"""
SYNC = """mutation ($id: ID!) { syncTransitFeed(id: $id) { unchanged feed { activeVersion } } }"""


async def _gql(
    api: httpx.AsyncClient, query: str, token: str | None = None, **variables: Any
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    body: dict[str, Any] = response.json()
    return body


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_staff_add_and_sync_a_feed_from_a_url(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base = feed_server
    path = real_feed("cairns")
    server.set_body("/gtfs/cairns.zip", path.read_bytes(), content_type="application/zip")
    token = await staff_token(runtime)
    feed = {
        "id": "cairns",
        "gtfsUrl": base + "/gtfs/cairns.zip",
        "name": "Sunbus Cairns",
        "tripUpdatesUrl": base + "/gtfs/cairns-tu.pb",
    }

    assert _codes(await _gql(api, ADD, input=feed)) == ["FORBIDDEN"]
    body = await _gql(api, ADD, token, input=feed)
    assert "errors" not in body, body
    added = body["data"]["addTransitFeed"]
    assert added["unchanged"] is False and added["footpaths"] > 0
    loaded = added["feed"]
    assert (loaded["id"], loaded["name"], loaded["timezone"]) == (
        "cairns",
        "Sunbus Cairns",
        "Australia/Brisbane",
    )
    assert loaded["lastError"] is None and loaded["activeVersion"] is not None
    assert loaded["realtime"] == {"tripUpdates": base + "/gtfs/cairns-tu.pb"}
    for member, key in (
        ("stops.txt", "stops"),
        ("routes.txt", "routes"),
        ("trips.txt", "trips"),
        ("stop_times.txt", "stop_times"),
    ):
        assert loaded["counts"][key] == len(raw_rows(path, member)), key

    again = await _gql(api, SYNC, token, id="cairns")
    assert again["data"]["syncTransitFeed"] == {
        "unchanged": True,
        "feed": {"activeVersion": loaded["activeVersion"]},
    }
    listed = await _gql(api, "{ transitFeeds { id activeVersion } }", token)
    assert listed["data"]["transitFeeds"] == [
        {"id": "cairns", "activeVersion": loaded["activeVersion"]}
    ]

    # From the API a source is a URL, never a file of the server.
    on_disk = dict(feed, id="disk", gtfsUrl=str(path))
    assert _codes(await _gql(api, ADD, token, input=on_disk)) == ["INVALID_TRANSIT_SOURCE"]
    assert _codes(await _gql(api, SYNC, token, id="nowhere")) == ["UNKNOWN_TRANSIT_FEED"]
