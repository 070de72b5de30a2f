"""GbfsAdapter over real HTTP: config validation, discovery, conditional GET and fetch failures.

Operators are played by real local servers (the project's FeedServer, or a tiny Starlette app
where a test needs to see request headers); the adapter reads them with a real httpx client and a
real FeedCache. Expected values are computed from each test's own documents.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.base import AdapterConfigError, AdapterError, AvailabilityAdapter, FetchContext
from adapters.dto import Snapshot
from adapters.gbfs import GbfsAdapter
from adapters.http import FeedCache
from providers.simulators.feed_server import FeedServer, serve_in_background

Doc = dict[str, Any]
Received = tuple[str, dict[str, str]]  # request path, request headers


def env(data: Doc, *, version: str = "2.3", ttl: int = 60, last_updated: Any = None) -> Doc:
    """A GBFS envelope; ``last_updated`` defaults to now, so a ttl > 0 makes the file fresh."""
    stamp = int(time.time()) if last_updated is None else last_updated
    return {"last_updated": stamp, "ttl": ttl, "version": version, "data": data}


def system_doc(system_id: str = "sys") -> Doc:
    return env({"system_id": system_id, "name": "Sys", "timezone": "UTC", "language": "en"})


def types_doc() -> Doc:
    return env(
        {
            "vehicle_types": [
                {
                    "vehicle_type_id": "es",
                    "form_factor": "scooter",
                    "propulsion_type": "electric",
                    "max_range_meters": 1000,
                }
            ]
        }
    )


def bikes_doc(ttl: int = 60) -> Doc:
    bike = {
        "bike_id": "b1",
        "lat": 1.0,
        "lon": 2.0,
        "is_reserved": 0,
        "is_disabled": False,
        "vehicle_type_id": "es",
        "current_range_meters": 10,
    }
    return env({"bikes": [bike]}, ttl=ttl)


def gbfs_v2(base_url: str, names: list[str]) -> Doc:
    """A v2 gbfs.json listing ``/sys/<name>.json`` under "en", after an empty "de" list."""
    feeds = [{"name": n, "url": f"{base_url}/sys/{n}.json"} for n in names]
    return env({"de": {"feeds": []}, "en": {"feeds": feeds}})


def serve(server: FeedServer, documents: dict[str, object]) -> None:
    """Serve each document (a dict as JSON, or raw bytes) at its path."""
    for path, document in documents.items():
        body = document if isinstance(document, bytes) else orjson.dumps(document)
        server.add_static(path, body)


async def sync(adapter: GbfsAdapter, cache: FeedCache | None = None) -> Snapshot:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await adapter.fetch_snapshot(FetchContext(http=client, cache=cache or FeedCache()))


def explicit(base_url: str, paths: list[str]) -> GbfsAdapter:
    """An adapter configured with explicit URLs, one per path, named by the file's stem."""
    feeds = {path.rsplit("/", 1)[1].removesuffix(".json"): base_url + path for path in paths}
    return GbfsAdapter.from_config({"feeds": feeds})


# --- configuration ---------------------------------------------------------------------------


def test_adapter_satisfies_the_protocol_and_is_named_gbfs() -> None:
    adapter = GbfsAdapter.from_config({"discovery_url": "https://x/gbfs.json"})

    assert isinstance(adapter, AvailabilityAdapter)
    assert GbfsAdapter.name == "gbfs"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "exactly one"),
        ({"discovery_url": "ftp://x/gbfs.json"}, "http"),
        ({"discovery_url": "https://x/gbfs.json", "feeds": {}}, "exactly one"),
        ({"feeds": {"system_information": "https://x/si"}}, "nothing to aggregate"),
        (
            {"feeds": {"system_information": "https://x/si", "vehicle_statuses": "https://x/vs"}},
            "unknown feed",
        ),
        ({"feeds": {"system_information": "file:/si", "vehicle_status": "https://x/vs"}}, "http"),
        ({"discovery_url": "https://x/gbfs.json", "colour": "blue"}, "unknown option"),
        ({"discovery_url": "https://x/gbfs.json", "headers": {"X-Key": 1}}, "headers"),
        ({"discovery_url": "https://x/gbfs.json", "language": "english please"}, "language"),
        (
            {
                "feeds": {"system_information": "https://x/si", "vehicle_status": "https://x/vs"},
                "system_id": "a",
            },
            "system_id",
        ),
    ],
)
def test_unusable_config_raises_config_error_saying_what_is_wrong(
    config: Doc, message: str
) -> None:
    with pytest.raises(AdapterConfigError, match=message):
        GbfsAdapter.from_config(config)


@pytest.mark.parametrize(
    "feeds",
    [
        {"vehicle_status": "https://x/vs"},
        {"station_status": "https://x/ss"},
        {"system_information": "https://x/si", "station_status": "https://x/ss"},
        {"geofencing_zones": "https://x/gz"},
    ],
)
def test_partial_explicit_feed_sets_with_a_content_feed_are_accepted(
    feeds: dict[str, str],
) -> None:
    adapter = GbfsAdapter.from_config({"feeds": feeds})

    assert adapter.feeds == feeds


def test_headers_are_not_shown_in_repr() -> None:
    secret = "Bearer secret-token"
    adapter = GbfsAdapter.from_config(
        {"discovery_url": "https://x/gbfs.json", "headers": {"Authorization": secret}}
    )

    assert secret not in repr(adapter)
    assert "secret-token" not in repr(adapter)


# --- discovery -------------------------------------------------------------------------------


async def test_discovery_fetches_the_listed_feeds_and_ignores_unknown_ones(
    feed_server: tuple[FeedServer, str],
) -> None:
    server, base_url = feed_server
    listed = ["system_information", "vehicle_types", "free_bike_status", "system_hours"]
    types, bikes = types_doc(), bikes_doc()
    documents: dict[str, object] = {
        "/sys/gbfs.json": gbfs_v2(base_url, listed),
        "/sys/system_information.json": system_doc(),
        "/sys/vehicle_types.json": types,
        "/sys/free_bike_status.json": bikes,
        "/sys/system_hours.json": env({"rental_hours": []}),
    }
    serve(server, documents)
    adapter = GbfsAdapter.from_config({"discovery_url": f"{base_url}/sys/gbfs.json"})

    snapshot = await sync(adapter)

    assert [v.external_id for v in snapshot.vehicles] == [
        b["bike_id"] for b in bikes["data"]["bikes"]
    ]
    assert [t.raw_form_factor for t in snapshot.vehicle_types] == [
        t["form_factor"] for t in types["data"]["vehicle_types"]
    ]
    assert set(server.request_counts) == set(documents) - {"/sys/system_hours.json"}
    assert {m.name: m.url for m in snapshot.feeds} == {
        "gbfs": f"{base_url}/sys/gbfs.json",
        **{name: f"{base_url}/sys/{name}.json" for name in listed if name != "system_hours"},
    }


async def test_manifest_discovery_picks_the_configured_system_and_its_highest_version(
    feed_server: tuple[FeedServer, str],
) -> None:
    server, base_url = feed_server

    def v3(data: Doc) -> Doc:
        return env(data, version="3.0", last_updated="2024-01-01T00:00:00Z")

    versions = [
        {"version": "2.3", "url": f"{base_url}/sys/2/gbfs.json"},
        {"version": "3.0", "url": f"{base_url}/sys/3/gbfs.json"},
    ]
    vehicles = [{"vehicle_id": "v1", "lat": 1.0, "lon": 2.0, "is_reserved": False}]
    documents: dict[str, object] = {
        "/sys/manifest.json": v3(
            {
                "datasets": [
                    {
                        "system_id": "other",
                        "versions": [{"version": "3.0", "url": f"{base_url}/other/gbfs.json"}],
                    },
                    {"system_id": "sys", "versions": versions},
                ]
            }
        ),
        "/other/gbfs.json": v3({"feeds": []}),
        "/sys/2/gbfs.json": gbfs_v2(base_url, ["system_information", "free_bike_status"]),
        "/sys/3/gbfs.json": v3(
            {
                "feeds": [
                    {"name": "system_information", "url": "system_information.json"},
                    {"name": "vehicle_status", "url": "vehicle_status.json"},
                ]
            }
        ),
        "/sys/3/system_information.json": v3(
            {
                "system_id": "sys",
                "languages": ["en"],
                "name": [{"text": "Sys", "language": "en"}],
                "timezone": "UTC",
            }
        ),
        "/sys/3/vehicle_status.json": v3({"vehicles": vehicles}),
    }
    serve(server, documents)
    adapter = GbfsAdapter.from_config(
        {"discovery_url": f"{base_url}/sys/manifest.json", "system_id": "sys"}
    )

    snapshot = await sync(adapter)

    highest = max(versions, key=lambda v: tuple(int(p) for p in v["version"].split(".")))
    assert snapshot.version == highest["version"]
    assert [v.external_id for v in snapshot.vehicles] == [v["vehicle_id"] for v in vehicles]
    assert {m.name for m in snapshot.feeds} == {
        "manifest",
        "gbfs",
        "system_information",
        "vehicle_status",
    }
    assert server.request_counts["/other/gbfs.json"] == 0
    assert server.request_counts["/sys/2/gbfs.json"] == 0


async def test_discovery_leading_to_another_system_id_fails_the_sync(
    feed_server: tuple[FeedServer, str],
) -> None:
    server, base_url = feed_server
    serve(
        server,
        {
            "/sys/gbfs.json": gbfs_v2(base_url, ["system_information", "free_bike_status"]),
            "/sys/system_information.json": system_doc("sys"),
            "/sys/free_bike_status.json": env({"bikes": []}),
        },
    )
    expected = "another"
    adapter = GbfsAdapter.from_config(
        {"discovery_url": f"{base_url}/sys/gbfs.json", "system_id": expected}
    )

    with pytest.raises(AdapterError, match=expected) as excinfo:
        await sync(adapter)
    assert (excinfo.value.feed, excinfo.value.url) == (
        "system_information",
        f"{base_url}/sys/system_information.json",
    )


# --- fetching --------------------------------------------------------------------------------


async def test_fresh_feeds_are_not_refetched_and_stale_ones_are_revalidated_with_a_304(
    feed_server: tuple[FeedServer, str],
) -> None:
    server, base_url = feed_server
    documents: dict[str, Doc] = {
        "/sys/system_information.json": system_doc(),
        "/sys/vehicle_types.json": types_doc(),
        "/sys/free_bike_status.json": bikes_doc(ttl=0),
    }
    serve(server, dict(documents))
    adapter = explicit(base_url, list(documents))
    cache = FeedCache()

    first = await sync(adapter, cache)
    server.reset_counts()
    second = await sync(adapter, cache)

    # last_updated is now: a ttl > 0 keeps the file fresh; ttl 0 means ask again (conditionally).
    stale = {path for path, document in documents.items() if document["ttl"] == 0}
    assert dict(server.request_counts) == dict.fromkeys(stale, 1)
    assert dict(server.not_modified_counts) == dict.fromkeys(stale, 1)
    assert not any(m.not_modified for m in first.feeds)
    assert len(second.feeds) == len(documents)
    assert all(m.not_modified for m in second.feeds)
    assert [v.external_id for v in second.vehicles] == [v.external_id for v in first.vehicles]


async def test_a_failing_feed_fails_the_sync_with_its_name_and_url(
    feed_server: tuple[FeedServer, str],
) -> None:
    server, base_url = feed_server
    serve(
        server,
        {
            "/sys/system_information.json": system_doc(),
            "/sys/free_bike_status.json": bikes_doc(),
        },
    )
    status = 500
    server.fail("/sys/free_bike_status.json", status)
    adapter = explicit(base_url, ["/sys/system_information.json", "/sys/free_bike_status.json"])

    with pytest.raises(AdapterError, match=str(status)) as excinfo:
        await sync(adapter)
    assert (excinfo.value.feed, excinfo.value.url) == (
        "free_bike_status",
        f"{base_url}/sys/free_bike_status.json",
    )


async def test_a_document_without_data_fails_the_sync_naming_the_feed(
    feed_server: tuple[FeedServer, str],
) -> None:
    server, base_url = feed_server
    serve(
        server,
        {
            "/sys/system_information.json": system_doc(),
            "/sys/free_bike_status.json": {"bikes": []},
        },
    )
    adapter = explicit(base_url, ["/sys/system_information.json", "/sys/free_bike_status.json"])

    with pytest.raises(AdapterError, match="data") as excinfo:
        await sync(adapter)
    assert (excinfo.value.feed, excinfo.value.url) == (
        "free_bike_status",
        f"{base_url}/sys/free_bike_status.json",
    )


async def test_a_feed_set_without_system_information_syncs_with_a_missing_feed_error(
    feed_server: tuple[FeedServer, str],
) -> None:
    server, base_url = feed_server
    bikes = bikes_doc()
    documents: dict[str, object] = {
        "/sys/vehicle_types.json": types_doc(),
        "/sys/free_bike_status.json": bikes,
    }
    serve(server, documents)
    adapter = explicit(base_url, list(documents))

    snapshot = await sync(adapter)

    assert [v.external_id for v in snapshot.vehicles] == [
        b["bike_id"] for b in bikes["data"]["bikes"]
    ]
    missing = [(f.severity, f.feed) for f in snapshot.findings if f.code == "MISSING_FEED"]
    assert missing == [("error", "system_information")]
    assert {m.name for m in snapshot.feeds} == {"vehicle_types", "free_bike_status"}


# --- headers ---------------------------------------------------------------------------------


@pytest.fixture
async def recording_server() -> AsyncIterator[tuple[dict[str, Doc], list[Received], str]]:
    """A minimal operator that serves ``documents`` by path and records every request's headers."""
    documents: dict[str, Doc] = {}
    received: list[Received] = []

    async def handle(request: Request) -> Response:
        received.append((request.url.path, dict(request.headers)))
        document = documents.get(request.url.path)
        if document is None:
            return Response(status_code=404)
        return JSONResponse(document)

    app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET"])])
    async with serve_in_background(app) as base_url:
        yield documents, received, base_url


async def test_configured_headers_are_sent_with_every_request(
    recording_server: tuple[dict[str, Doc], list[Received], str],
) -> None:
    documents, received, base_url = recording_server
    listed = ["system_information", "free_bike_status"]
    documents.update(
        {
            "/sys/gbfs.json": gbfs_v2(base_url, listed),
            "/sys/system_information.json": system_doc(),
            "/sys/free_bike_status.json": env({"bikes": []}),
        }
    )
    headers = {"X-Api-Key": "k-123", "X-Client": "aggregator-test"}
    adapter = GbfsAdapter.from_config(
        {"discovery_url": f"{base_url}/sys/gbfs.json", "headers": headers}
    )

    await sync(adapter)

    # Starlette lower-cases header names; HTTP header names are case-insensitive.
    sent = {name.lower(): value for name, value in headers.items()}
    seen = [(path, {name: got.get(name) for name in sent}) for path, got in received]
    assert sorted(path for path, _ in seen) == sorted(documents)
    assert all(values == sent for _, values in seen)
