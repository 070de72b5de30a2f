"""Property-based fuzzing of the whole schema (hypothesis-graphql): documents generated from
the committed SDL, valid ones with arbitrary argument values and invalid ones, sent over HTTP
and over WebSocket, anonymously and with every kind of credential. Whatever comes in, the
answer is the client's error or data, never ours: no 5xx, no ``INTERNAL_SERVER_ERROR``, no SQL,
traceback, file path or internal address in any answer or close reason.

Bounded and repeatable: a fixed number of documents per kind, generated with Hypothesis's
derandomised seed (the same documents on every run; a failure names the document). Providers
with data are registered first, so generated ids and areas meet real rows and code paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries
from websockets import ConnectionClosed

from app.fleet.principal import Scope
from app.main import create_app
from app.platform.settings import PROJECT_ROOT
from app.runtime import Runtime
from tests.booking_support import bookable_operator, sign_up, staff_token
from tests.conftest import make_settings
from tests.graphql.test_booking_updates import connect
from tests.graphql.test_subscriptions import served
from tests.webhook_support import api_key, organisation

SDL = (PROJECT_ROOT / "schema.graphql").read_text()

# Answers that would tell a stranger about our insides.
LEAKS = re.compile(
    r"Traceback|sqlalchemy|asyncpg|psycopg|redis\.|postgresql://|redis://|"
    r"\bSELECT\b.*\bFROM\b|\bINSERT INTO\b|\bUPDATE \w+ SET\b|File \"|\.py\b|/work/|"
    r"127\.0\.0\.1:(5432|6379)",
    re.DOTALL,
)

# What an attacker types into string arguments, besides random text: characters the database
# or a log line cannot take, injections, paths, schemes, our own id shapes, sizes.
HOSTILE_STRINGS = [
    "a\x00b",
    "\x00",
    "x\n\rERROR app: forged",
    "Ada\u202egnp.exe",
    "' OR 1=1 --",
    "%s%n%x",
    "../../../etc/passwd",
    "javascript:alert(1)",
    "https://127.0.0.1:6379/",
    "9999-12",
    "",
    " ",
    "simscoot:",
    "simscoot:\x00",
    "a" * 5000,
    "\U0001f6b2" * 200,
]
_STRINGS = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=40))

SCALARS: dict[str, st.SearchStrategy[graphql.ValueNode]] = {
    "String": _STRINGS.map(nodes.String),
    "ID": st.one_of(_STRINGS, st.sampled_from(["simscoot:1", "nobody:here", "1"])).map(
        nodes.String
    ),
    "Float": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, -90.0, 90.0, 180.0, -180.0, 1e308, -1e308, 52.52, 13.41]),
    ).map(lambda f: nodes.Float(f)),
    "Int": st.one_of(
        st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 1, 2**31 - 1, -(2**31)])
    ).map(nodes.Int),
    "Date": st.dates().map(lambda d: nodes.String(d.isoformat())),
    "DateTime": st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())),
    "Time": st.times().map(lambda t: nodes.String(t.isoformat())),
    "Long": st.integers(-(2**53), 2**53).map(nodes.Int),
    "JSON": st.one_of(
        st.integers(-(2**31), 2**31).map(nodes.Int),
        st.text(max_size=20).map(nodes.String),
        st.just(nodes.Object([])),
    ),
}

# Per transport and credential: enough to reach every root field several times over.
HTTP_EXAMPLES = 100
WS_EXAMPLES = 40


def _generate(strategy: st.SearchStrategy[Any], count: int) -> list[str]:
    found: list[str] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(document: Any) -> None:
        found.append(str(document))

    collect()
    return found


def _subscriptions() -> st.SearchStrategy[str]:
    """Subscription documents: Hypothesis-GraphQL generates queries and mutations only, so the
    subscription type is presented to it as a query type and the operation renamed."""
    schema = graphql.build_schema(SDL)
    assert schema.subscription_type is not None
    as_query = graphql.GraphQLSchema(
        query=schema.subscription_type, types=list(schema.type_map.values())
    )
    return queries(as_query, custom_scalars=SCALARS).map(lambda doc: f"subscription {doc}")


def _documents(count: int) -> list[str]:
    out: list[str] = []
    for mode in (Mode.POSITIVE, Mode.NEGATIVE):
        out += _generate(queries(SDL, custom_scalars=SCALARS, mode=mode), count)
        out += _generate(mutations(SDL, custom_scalars=SCALARS, mode=mode), count // 2)
    return out


def _check(answer: str, document: str, where: str) -> None:
    leak = LEAKS.search(answer)
    assert leak is None, f"{where}: internal text {leak.group()!r} in {answer[:500]}\n{document}"
    if answer.startswith("{"):
        body = json.loads(answer)
        payloads = body if isinstance(body, list) else [body]
        for payload in payloads:
            for error in payload.get("errors") or ():
                code = (error.get("extensions") or {}).get("code")
                assert code != "INTERNAL_SERVER_ERROR", f"{where}: {error}\n{document}"
                assert code, f"{where}: an error without a code: {error}\n{document}"


@pytest.fixture
async def world(runtime: Runtime, api: httpx.AsyncClient) -> AsyncIterator[dict[str, str]]:
    """Credentials of every kind, and data for the generated ids and areas to meet."""
    async with bookable_operator(runtime, "simscoot") as _:
        rider, _ = await sign_up(api)
        org = await organisation(runtime)
        yield {
            "anonymous": "",
            "rider": rider,
            "staff": await staff_token(runtime),
            "api key": await api_key(runtime, org, list(Scope)),
        }


@pytest.fixture
async def fuzz_api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    # Rate limits off: a fuzzer is one very busy caller, and RATE_LIMITED answers would hide
    # the code paths it is here to reach.
    app = create_app(make_settings(rate_limits_enabled=False))
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


DOCUMENTS = _documents(HTTP_EXAMPLES)


@pytest.mark.parametrize("who", ["anonymous", "rider", "staff", "api key"])
async def test_http_answers_every_generated_document_as_the_clients_error_or_data(
    fuzz_api: httpx.AsyncClient, world: dict[str, str], who: str
) -> None:
    headers = {"Authorization": f"Bearer {world[who]}"} if world[who] else {}
    assert len(DOCUMENTS) >= 4 * HTTP_EXAMPLES // 2
    for document in DOCUMENTS:
        response = await fuzz_api.post("/graphql", json={"query": document}, headers=headers)
        assert response.status_code < 500, (
            f"HTTP {response.status_code}: {response.text}\n{document}"
        )
        _check(response.text, document, f"HTTP as {who}")


WS_DOCUMENTS = _documents(WS_EXAMPLES) + _generate(_subscriptions(), WS_EXAMPLES)


@pytest.mark.parametrize("who", ["anonymous", "rider"])
async def test_websocket_answers_every_generated_document_and_closes_with_nothing_internal(
    runtime: Runtime, world: dict[str, str], who: str
) -> None:
    init = {"Authorization": f"Bearer {world[who]}"} if world[who] else None
    async with served(runtime, make_settings(rate_limits_enabled=False)) as base_url:
        index = 0
        while index < len(WS_DOCUMENTS):
            # A socket the server closed (a message it refuses) is replaced; the rest go on.
            async with connect(base_url, None, init_payload=init) as client:
                document = ""
                try:
                    while index < len(WS_DOCUMENTS):
                        document = WS_DOCUMENTS[index]
                        index += 1
                        await _one_operation(client, str(index), document, who)
                except ConnectionClosed as closed:
                    reason = closed.rcvd.reason if closed.rcvd else ""
                    code = closed.rcvd.code if closed.rcvd else None
                    assert code not in (1011, 4500), f"closed {code} {reason!r}\n{document}"
                    _check(reason, document, f"close reason as {who}")


async def _one_operation(client: Any, op_id: str, document: str, who: str) -> None:
    """Send one document and read until its first answer (a subscription is then stopped:
    its snapshot is enough). Late messages of earlier operations are checked and skipped."""
    await client.ws.send(
        json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": document}})
    )
    while True:
        try:
            message = await client.receive(within_seconds=10)
        except TimeoutError:
            raise AssertionError(f"no answer within 10 s as {who}:\n{document}") from None
        _check(json.dumps(message.get("payload")), document, f"WebSocket as {who}")
        if message.get("id") == op_id:
            break
    if message["type"] == "next":
        await client.ws.send(json.dumps({"id": op_id, "type": "complete"}))
