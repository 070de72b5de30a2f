"""The local GBFS feed server over real HTTP: validators, 304s, fault injection, folder serving."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from providers.simulators.feed_server import FeedServer, serve_in_background

STATIC_PATH = "/test-system/system_information.json"
STATIC_BODY = orjson.dumps({"last_updated": 1, "ttl": 0, "version": "2.3", "data": {}})
DYNAMIC_PATH = "/test-system/free_bike_status.json"


def conformance_dir() -> Path:
    """The shared conformance folder; missing is a failure in CI and a skip on a laptop."""
    default = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
    path = Path(os.environ.get("MOBILITY_CONFORMANCE_DIR", str(default)))
    if not path.is_dir():
        reason = f"conformance material not found at {path} (set MOBILITY_CONFORMANCE_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class Document:
    """A dynamic source whose content the test changes between requests."""

    def __init__(self) -> None:
        self.version = 1

    def __call__(self) -> dict[str, Any]:
        return {"data": {"bikes": [], "generation": self.version}}


@pytest.fixture
def document() -> Document:
    return Document()


@pytest.fixture
def server(document: Document) -> FeedServer:
    server = FeedServer()
    server.add_static(STATIC_PATH, STATIC_BODY)
    server.add_dynamic(DYNAMIC_PATH, document)
    return server


@pytest.fixture
async def client(server: FeedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_in_background(server.app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=5.0) as client,
    ):
        yield client


async def test_serves_json_with_strong_etag_and_last_modified(client: httpx.AsyncClient) -> None:
    response = await client.get(STATIC_PATH)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.content == STATIC_BODY
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    last_modified = parsedate_to_datetime(response.headers["last-modified"])
    assert last_modified.tzinfo is not None
    assert abs(last_modified.timestamp() - time.time()) < 5


async def test_if_none_match_answers_304_and_counts_it(
    client: httpx.AsyncClient, server: FeedServer
) -> None:
    first = await client.get(STATIC_PATH)
    etag = first.headers["etag"]

    second = await client.get(STATIC_PATH, headers={"If-None-Match": etag})
    listed = await client.get(STATIC_PATH, headers={"If-None-Match": f'"other", W/{etag}'})
    stale = await client.get(STATIC_PATH, headers={"If-None-Match": '"other"'})

    assert second.status_code == 304
    assert second.content == b""
    assert second.headers["etag"] == etag
    assert second.headers["last-modified"] == first.headers["last-modified"]
    assert listed.status_code == 304  # weak comparison, any tag of the list
    assert stale.status_code == 200
    assert server.request_counts[STATIC_PATH] == 4
    assert server.not_modified_counts[STATIC_PATH] == 2


async def test_if_modified_since_applies_only_without_if_none_match(
    client: httpx.AsyncClient, server: FeedServer
) -> None:
    first = await client.get(STATIC_PATH)
    last_modified = first.headers["last-modified"]
    earlier = formatdate(parsedate_to_datetime(last_modified).timestamp() - 60, usegmt=True)

    same = await client.get(STATIC_PATH, headers={"If-Modified-Since": last_modified})
    older = await client.get(STATIC_PATH, headers={"If-Modified-Since": earlier})
    garbage = await client.get(STATIC_PATH, headers={"If-Modified-Since": "yesterday"})
    etag_wins = await client.get(
        STATIC_PATH, headers={"If-Modified-Since": last_modified, "If-None-Match": '"other"'}
    )

    assert same.status_code == 304
    assert older.status_code == 200
    assert garbage.status_code == 200
    assert etag_wins.status_code == 200
    assert server.not_modified_counts[STATIC_PATH] == 1


async def test_dynamic_source_is_rendered_per_request(
    client: httpx.AsyncClient, document: Document
) -> None:
    first = await client.get(DYNAMIC_PATH)
    unchanged = await client.get(DYNAMIC_PATH, headers={"If-None-Match": first.headers["etag"]})
    document.version = 2
    changed = await client.get(DYNAMIC_PATH, headers={"If-None-Match": first.headers["etag"]})

    assert first.json() == {"data": {"bikes": [], "generation": 1}}
    assert unchanged.status_code == 304
    assert changed.status_code == 200
    assert changed.json()["data"]["generation"] == 2
    assert changed.headers["etag"] != first.headers["etag"]


async def test_last_modified_is_when_the_body_was_first_served() -> None:
    clock = [1_700_000_000.4]
    server = FeedServer(clock=lambda: clock[0])
    server.add_static(STATIC_PATH, STATIC_BODY)

    async with (
        serve_in_background(server.app) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        first = await client.get(STATIC_PATH)
        clock[0] += 100
        again = await client.get(STATIC_PATH)
        server.set_body(STATIC_PATH, b'{"changed": true}')
        changed = await client.get(STATIC_PATH)

    assert first.headers["last-modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert again.headers["last-modified"] == first.headers["last-modified"]
    assert changed.headers["last-modified"] == "Tue, 14 Nov 2023 22:15:00 GMT"


async def test_unknown_path_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nobody/gbfs.json")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert "/nobody/gbfs.json" in response.json()["error"]


async def test_fail_answers_the_status_until_reset(
    client: httpx.AsyncClient, server: FeedServer
) -> None:
    server.fail(STATIC_PATH, status=503)
    failed = await client.get(STATIC_PATH)
    other = await client.get(DYNAMIC_PATH)
    server.reset(STATIC_PATH)
    recovered = await client.get(STATIC_PATH)

    assert failed.status_code == 503
    assert failed.json()["status"] == 503
    assert other.status_code == 200
    assert recovered.status_code == 200
    assert recovered.content == STATIC_BODY


async def test_delay_trips_a_client_timeout(client: httpx.AsyncClient, server: FeedServer) -> None:
    server.delay(STATIC_PATH, 0.5)

    with pytest.raises(httpx.ReadTimeout):
        await client.get(STATIC_PATH, timeout=0.1)
    server.reset()
    assert (await client.get(STATIC_PATH, timeout=0.1)).status_code == 200


async def test_set_body_serves_malformed_bytes_as_is(
    client: httpx.AsyncClient, server: FeedServer
) -> None:
    server.set_body(DYNAMIC_PATH, b'{"data": {"bikes": [')
    response = await client.get(DYNAMIC_PATH)

    assert response.status_code == 200
    assert response.content == b'{"data": {"bikes": ['
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


async def test_reset_without_path_clears_every_fault(
    client: httpx.AsyncClient, server: FeedServer
) -> None:
    server.fail(STATIC_PATH)
    server.set_body(DYNAMIC_PATH, b"not json")
    server.reset()

    assert (await client.get(STATIC_PATH)).content == STATIC_BODY
    assert (await client.get(DYNAMIC_PATH)).json()["data"]["generation"] == 1


async def test_broken_generator_answers_500(client: httpx.AsyncClient, server: FeedServer) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("generator bug")

    server.add_dynamic("/test-system/station_status.json", broken)
    response = await client.get("/test-system/station_status.json")

    assert response.status_code == 500
    assert response.json()["status"] == 500


async def test_add_directory_serves_a_conformance_folder_unchanged() -> None:
    folder = conformance_dir() / "gbfs" / "feeds" / "tier-oslo"
    server = FeedServer()

    paths = server.add_directory("tier-oslo", folder)

    expected = sorted(f"/tier-oslo/{file.name}" for file in folder.glob("*.json"))
    assert paths == expected
    assert "/tier-oslo/geofencing_zones.json" in paths
    async with (
        serve_in_background(server.app) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        for path in paths:
            response = await client.get(path)
            assert response.status_code == 200
            assert response.content == (folder / path.rsplit("/", 1)[1]).read_bytes()


def test_add_directory_rejects_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        FeedServer().add_directory("x", tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        FeedServer().add_directory("x", tmp_path)


async def test_serve_in_background_runs_repeatedly_and_side_by_side() -> None:
    first, second = FeedServer(), FeedServer()
    first.add_static("/a/gbfs.json", b'{"server": 1}')
    second.add_static("/a/gbfs.json", b'{"server": 2}')

    async with serve_in_background(first.app) as url_1, serve_in_background(second.app) as url_2:
        assert url_1.startswith("http://127.0.0.1:") and url_1 != url_2
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(
                client.get(f"{url_1}/a/gbfs.json"), client.get(f"{url_2}/a/gbfs.json")
            )
        assert [answer.json()["server"] for answer in answers] == [1, 2]

    # Closed on exit: the port no longer accepts connections.
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url_1}/a/gbfs.json")

    # And a fresh server starts again in the same loop.
    async with (
        serve_in_background(first.app) as url_3,
        httpx.AsyncClient() as client,
    ):
        assert (await client.get(f"{url_3}/a/gbfs.json")).json() == {"server": 1}


async def test_serve_in_background_reports_a_port_in_use() -> None:
    server = FeedServer()
    async with serve_in_background(server.app) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="could not start"):
            async with serve_in_background(server.app, port=port):
                pass
