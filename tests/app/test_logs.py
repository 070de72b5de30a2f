"""app/platform/logs.py and app/platform/request_id.py: one JSON object per line whatever a
caller sends, the request id taken or made at the edge and returned, and carried through the
task queue's labels."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import pytest
from taskiq import TaskiqMessage

from app.main import create_app
from app.platform.logs import JsonFormatter, TextFormatter, configure_logging
from app.platform.request_id import REQUEST_ID, well_formed
from app.runtime import Runtime
from app.task_queue import REQUEST_ID_LABEL, RequestIdMiddleware
from tests.conftest import make_settings

# A caller's value that tries to end the line and start a forged one, in every way a reader
# might split a line or a terminal act on it.
HOSTILE = (
    'x\u0000\n{"level":"ERROR","logger":"app.staff_auth","message":"forged"}\r\u2028\x1b[31m\x9b'
)
GENERATED = re.compile(r"[0-9a-f]{32}")


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("app.rest.ingest", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_hostile_value_stays_inside_one_string_of_one_line() -> None:
    line = JsonFormatter().format(_record("push for %s refused", HOSTILE, provider=HOSTILE))
    # One line by every reader's rule: Python's splitlines also splits at U+2028 and C1 controls.
    assert line.splitlines() == [line]
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", line)
    document = json.loads(line)
    assert set(document) == {"timestamp", "level", "logger", "message", "provider"}
    assert (document["level"], document["logger"]) == ("WARNING", "app.rest.ingest")
    assert document["message"] == f"push for {HOSTILE} refused"
    assert document["provider"] == HOSTILE


def test_fields_timestamp_extras_and_exceptions() -> None:
    try:
        raise ValueError(f"bad {HOSTILE}")
    except ValueError:
        record = logging.LogRecord(
            "app.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    # An extra named like one of ours cannot replace it.
    record.__dict__.update({"level": "DEBUG", "count": 3})
    document = json.loads(JsonFormatter().format(record))
    assert document["level"] == "ERROR"
    assert document["extra_level"] == "DEBUG"
    assert document["count"] == 3
    # ISO 8601 in UTC, to the millisecond, of the record's own time.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["timestamp"])
    stamp = document["timestamp"].replace("Z", "+00:00")
    assert abs(datetime.fromisoformat(stamp).timestamp() - record.created) < 0.001
    # The traceback: one string field, all of it, the hostile text inside it escaped.
    assert document["exc"].startswith("Traceback (most recent call last):")
    assert document["exc"].rstrip().endswith(f"ValueError: bad {HOSTILE}")


def test_values_json_cannot_take_are_still_one_line() -> None:
    # A lone surrogate (a path decoded with surrogateescape) and an object of no JSON type.
    line = JsonFormatter().format(_record("got %s", "a\udcff\n", thing=object()))
    assert line.splitlines() == [line]
    document = json.loads(line)
    assert document["message"] == "got a\udcff\n"
    assert document["thing"].startswith("<object object at")


def test_the_request_id_comes_from_the_context_or_the_record() -> None:
    formatter = JsonFormatter()
    assert "request_id" not in json.loads(formatter.format(_record("m")))
    token = REQUEST_ID.set("req-1")
    try:
        assert json.loads(formatter.format(_record("m")))["request_id"] == "req-1"
        # A webhook delivery logs with its event's id, whatever the round's is.
        explicit = json.loads(formatter.format(_record("m", request_id="req-2")))
        assert explicit["request_id"] == "req-2"
        text = TextFormatter().format(_record("got %s", HOSTILE, provider="a\nb"))
    finally:
        REQUEST_ID.reset(token)
    assert text.splitlines() == [text]
    assert text.startswith("WARNING app.rest.ingest [req-1]: got x\\x00\\n{")
    assert text.endswith(" provider=a\\nb")


def test_configure_logging_writes_json_lines_and_keeps_urls_of_httpx_out() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("httpx").level)
    buffer = io.StringIO()
    try:
        configure_logging("DEBUG", "json", stream=buffer)
        logging.getLogger("app.test").info("first %s", HOSTILE)
        logging.getLogger("httpx").info("HTTP Request: GET https://feed.example/?key=s3cr3t")
        logging.getLogger("app.test").debug("second")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(saved[2])
    lines = buffer.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == [f"first {HOSTILE}", "second"]


@pytest.mark.parametrize(
    ("given", "taken"),
    [
        ("0f8e2c4a-6b1d-4e0a-9d5c-3a2b1c0d9e8f", True),
        ("Root.1-5759e988:bd862e3f-e1be", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ('x"}{"level":"ERROR"', False),
        ("abc def", False),
        ("caf\u00e9", False),
    ],
)
async def test_an_incoming_request_id_is_taken_only_if_well_formed(
    api: httpx.AsyncClient, given: str, taken: bool
) -> None:
    response = await api.get("/health", headers={b"X-Request-Id": given.encode("utf-8")})
    assert response.status_code == 200
    returned = response.headers["x-request-id"]
    if taken:
        assert returned == given
    else:
        assert returned != given and GENERATED.fullmatch(returned), returned


async def test_every_answer_has_its_own_id_refusals_and_the_fast_path_included(
    api: httpx.AsyncClient,
) -> None:
    answers = [
        await api.get("/health"),
        await api.post("/graphql", json={"query": "{ __typename }"}),  # the fast path
        await api.get("/gbfs/v3/a%00b/gbfs.json"),  # refused at the edge (400)
        await api.get("/no/such/route"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 400, 404]
    ids = [r.headers["x-request-id"] for r in answers]
    assert all(GENERATED.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    # The fast path's answer carries it once, beside its own headers.
    assert answers[1].headers.get_list("x-request-id") == [ids[1]]
    assert answers[1].headers["content-type"].startswith("application/")


async def test_a_browser_of_an_allowed_origin_may_send_and_read_the_id(runtime: Runtime) -> None:
    origin = "https://app.example"
    app = create_app(make_settings(cors_origins=origin))
    app.state.runtime = runtime
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        preflight = await client.options(
            "/graphql",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-request-id",
            },
        )
        answer = await client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Origin": origin, "X-Request-Id": "browser-1"},
        )
    assert preflight.status_code == 200
    assert "x-request-id" in preflight.headers["access-control-allow-headers"].lower()
    assert GENERATED.fullmatch(preflight.headers["x-request-id"])
    assert answer.headers["x-request-id"] == "browser-1"
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()


@contextmanager
def _in_request(request_id: str | None) -> Iterator[None]:
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


def _message(labels: dict[str, object]) -> TaskiqMessage:
    return TaskiqMessage(task_id="t", task_name="n", labels=labels, args=[], kwargs={})


def test_a_task_kicked_in_a_request_carries_its_id_in_a_label() -> None:
    middleware = RequestIdMiddleware()
    with _in_request("req-7"):
        sent = middleware.pre_send(_message({}))
    assert sent.labels[REQUEST_ID_LABEL] == "req-7"
    with _in_request(None):
        assert REQUEST_ID_LABEL not in middleware.pre_send(_message({})).labels


async def test_the_worker_runs_a_task_under_its_label_or_a_new_id() -> None:
    middleware = RequestIdMiddleware()
    seen: list[str | None] = []

    async def run(labels: dict[str, object]) -> None:
        # As the receiver does: each message in a task of its own, pre_execute then the task.
        message = middleware.pre_execute(_message(labels))
        seen.append(REQUEST_ID.get())
        middleware.post_execute(message, None)  # type: ignore[arg-type]

    await asyncio.create_task(run({REQUEST_ID_LABEL: "req-7"}))
    await asyncio.create_task(run({}))
    await asyncio.create_task(run({REQUEST_ID_LABEL: 'x"\n{"level":"ERROR"}'}))
    assert seen[0] == "req-7"
    assert seen[1] is not None and GENERATED.fullmatch(seen[1])
    assert seen[2] is not None and GENERATED.fullmatch(seen[2])
    assert REQUEST_ID.get() is None  # nothing leaked into the caller's context


def test_well_formed() -> None:
    assert well_formed(None) is None
    assert well_formed(b"abc-DEF_1.2:3") == "abc-DEF_1.2:3"
    assert well_formed("a\nb") is None
