"""The logs of real `mobility serve` and `mobility worker` processes, in their default format
(JSON): a caller's path or header cannot add a line or a field; the request id comes back on
HTTP answers and the WebSocket handshake and is on the access line; a task runs under the id
it was kicked with, and a webhook delivery logs with the id of the request behind its event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from app.fleet.outbox import EventType, emit
from app.fleet.principal import OrgActor, Role
from app.fleet.tasks import WEBHOOK_TASK
from app.fleet.webhooks import register_endpoint
from app.platform.db import transaction
from app.platform.request_id import REQUEST_ID
from app.runtime import Runtime
from app.task_queue import REQUEST_ID_LABEL, running_broker
from tests.processes import free_port, mobility_process, wait_for
from tests.webhook_support import Receiver, organisation, running

OUR_FIELDS = {"timestamp", "level", "logger", "message", "request_id", "exc", "stack"}
GENERATED = re.compile(r"[0-9a-f]{32}")
FORGED = '{"level":"ERROR","logger":"app.staff_auth","message":"forged"}'


async def _exchange(port: int, request: bytes) -> bytes:
    """The head of the server's answer to a request written as raw bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(10):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


def _header(head: bytes, name: bytes) -> str:
    [value] = [
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
        if line.lower().startswith(name + b":")
    ]
    return value.decode()


def _lines(log: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON lines of a process's output, and the others (what commands print on stdout)."""
    documents, others = [], []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            documents.append(json.loads(line))  # every line that looks like one must be one
        else:
            others.append(line)
    return documents, others


async def test_a_hostile_path_and_header_give_one_line_of_ours_and_the_id_comes_back(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "api.log"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with mobility_process(["serve", "--port", str(port), "--no-sync"], runtime.settings, log):
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:

            async def up() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get("/health")).status_code == 200
                return False

            await wait_for(up, 60, "the API process", [log])
            # A newline and a forged record in the path (percent-encoded, as a URL carries
            # them; the server decodes them), and a forged id in the header.
            hostile = await client.get(
                "/health%0A" + quote(FORGED, safe=""), headers={"X-Request-Id": 'x"}' + FORGED}
            )
            kept = await client.get("/health", headers={"X-Request-Id": "caller-id-1"})
        assert hostile.status_code == 400
        hostile_id = hostile.headers["x-request-id"]
        assert GENERATED.fullmatch(hostile_id), hostile_id
        assert kept.headers["x-request-id"] == "caller-id-1"

        # A forged record raw in the query string, which the access line repeats as sent.
        raw_query = await _exchange(
            port, b"GET /health?" + FORGED.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert raw_query.startswith(b"HTTP/1.1 200 "), raw_query
        raw_query_id = _header(raw_query, b"x-request-id")
        # The WebSocket handshake answers with the id too.
        handshake = await _exchange(
            port,
            b"GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Protocol: graphql-transport-ws\r\nX-Request-Id: ws-handshake-1\r\n"
            b"\r\n",
        )
        assert handshake.startswith(b"HTTP/1.1 101 "), handshake
        assert _header(handshake, b"x-request-id") == "ws-handshake-1"

        async def logged() -> bool:
            return "caller-id-1" in log.read_text(errors="replace")

        await wait_for(logged, 10, "the access lines", [log])

    documents, others = _lines(log)
    assert others == [f"serving GraphQL at {base_url}/graphql (Ctrl-C to stop)"]
    assert all(set(d) <= OUR_FIELDS and d["timestamp"].endswith("Z") for d in documents)
    # Each hostile request is one line, ours (the access line, INFO, its request's id), the
    # caller's text inside its message.
    forged = [d for d in documents if "forged" in d["message"]]
    assert sorted((d["logger"], d["level"], d["request_id"]) for d in forged) == sorted(
        [("uvicorn.access", "INFO", hostile_id), ("uvicorn.access", "INFO", raw_query_id)]
    )
    assert any(FORGED in d["message"] for d in forged)  # the raw query, as it came
    assert not any(d["level"] == "ERROR" for d in documents)
    [kept_line] = [d for d in documents if d.get("request_id") == "caller-id-1"]
    assert kept_line["logger"] == "uvicorn.access"


async def test_a_worker_runs_each_task_under_the_id_it_was_kicked_with(
    runtime: Runtime, tmp_path: Path
) -> None:
    receiver = Receiver()
    event_request = f"booking-request-{uuid.uuid4().hex[:8]}"
    kicking_request = f"kick-{uuid.uuid4().hex[:8]}"
    async with running(receiver) as base_url:
        org_id = await organisation(runtime)
        async with transaction(runtime.sessions) as session:
            await register_endpoint(
                session,
                OrgActor(org_id, user_id=uuid.uuid4(), role=Role.OWNER),
                f"{base_url}/hook",
                [EventType.BOOKING_CONFIRMED],
                settings=runtime.settings,
            )
        # The event written while a request is served, as a booking's transaction writes it.
        token = REQUEST_ID.set(event_request)
        try:
            async with transaction(runtime.sessions) as session:
                await emit(
                    session,
                    organisation_id=org_id,
                    event_type=EventType.BOOKING_CONFIRMED,
                    payload={"booking_id": "b-1"},
                )
        finally:
            REQUEST_ID.reset(token)
        log = tmp_path / "worker.log"
        with mobility_process(["worker"], runtime.settings, log):
            async with running_broker(runtime.settings) as broker:
                task = broker.find_task(WEBHOOK_TASK)
                assert task is not None
                token = REQUEST_ID.set(kicking_request)
                try:
                    in_request = await task.kiq()
                finally:
                    REQUEST_ID.reset(token)
                outside = await task.kiq()
                forged = await task.kicker().with_labels(**{REQUEST_ID_LABEL: FORGED}).kiq()

            ids = [in_request.task_id, outside.task_id, forged.task_id]

            async def ran() -> bool:
                text = log.read_text(errors="replace")
                return all(i in text for i in ids) and len(receiver.received) == 1

            await wait_for(ran, 60, "the three rounds", [log])
            await asyncio.sleep(0.5)  # the delivery's line follows its record

    documents, _ = _lines(log)
    executing = {
        task_id: d["request_id"]
        for d in documents
        for task_id in ids
        if d["message"].startswith("Executing task") and task_id in d["message"]
    }
    assert executing[in_request.task_id] == kicking_request
    assert GENERATED.fullmatch(executing[outside.task_id])
    assert GENERATED.fullmatch(executing[forged.task_id])
    assert len(set(executing.values())) == 3
    # The delivery logs with the id of the request behind its event, whichever round sent it.
    [delivery] = [d for d in documents if "delivery_id" in d]
    assert (delivery["event_type"], delivery["status"], delivery["request_id"]) == (
        "booking.confirmed",
        "DELIVERED",
        event_request,
    )
