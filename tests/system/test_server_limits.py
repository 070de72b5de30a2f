"""`mobility serve` against slow clients: partial headers and trickled bodies are cut off at
their deadlines, and connections past the cap are answered 503, while ordinary requests are
served throughout. A real server process and raw sockets (app/server.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from app.runtime import Runtime
from tests.processes import free_port, mobility_process, wait_for

# Generous next to the deadlines below: the test checks that the server acts, not how fast.
WITHIN_SECONDS = 15.0


@contextlib.contextmanager
def _server(runtime: Runtime, log: Path, **env: str) -> Iterator[str]:
    port = free_port()
    with mobility_process(
        ["serve", "--port", str(port), "--no-sync"], runtime.settings, log, **env
    ):
        yield f"http://127.0.0.1:{port}"


async def _up(base_url: str, log: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:

        async def up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await client.get("/health")).status_code == 200
            return False

        await wait_for(up, 60, "the API process", [log])


@contextlib.asynccontextmanager
async def _socket(
    base_url: str,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    port = int(base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent before it closed the connection."""
    async with asyncio.timeout(WITHIN_SECONDS):
        return await reader.read()


async def test_partial_headers_are_cut_off_and_others_are_served(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "api.log"
    with _server(runtime, log, MOBILITY_HTTP_HEADER_TIMEOUT_SECONDS="1") as base_url:
        await _up(base_url, log)
        async with contextlib.AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(_socket(base_url)) for _ in range(50)]
            for _, writer in sockets:
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                await writer.drain()
            async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
                assert (await client.get("/health")).status_code == 200
            answers = await asyncio.gather(*(_closed_by_server(r) for r, _ in sockets))
        assert answers == [b""] * 50  # closed without an answer: nothing was asked


async def test_a_trickled_body_gets_408(runtime: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with _server(runtime, log, MOBILITY_HTTP_BODY_TIMEOUT_SECONDS="1") as base_url:
        await _up(base_url, log)
        async with _socket(base_url) as (reader, writer):
            writer.write(
                b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"query": '
            )
            await writer.drain()
            answer = await _closed_by_server(reader)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"code":"REQUEST_TIMEOUT"' in answer
        # A keep-alive client pausing between requests is not cut off by the header deadline.
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
            for _ in range(2):
                response = await client.post("/graphql", json={"query": "{ __typename }"})
                assert response.json() == {"data": {"__typename": "Query"}}
                await asyncio.sleep(0.5)


async def test_connections_past_the_cap_get_503(runtime: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with _server(
        runtime, log, MOBILITY_MAX_CONNECTIONS="5", MOBILITY_HTTP_HEADER_TIMEOUT_SECONDS="30"
    ) as base_url:
        await _up(base_url, log)
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(5):
                _, writer = await stack.enter_async_context(_socket(base_url))
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                await writer.drain()
            await asyncio.sleep(0.5)  # the server has accepted them
            async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
                assert (await client.get("/health")).status_code == 503
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:

            async def served_again() -> bool:
                return (await client.get("/health")).status_code == 200

            await wait_for(served_again, WITHIN_SECONDS, "the server to serve again", [log])
