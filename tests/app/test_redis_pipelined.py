"""The hot path's pipelined Redis client against the real Redis: replies matched to their
callers under concurrency, scripts loaded on demand, failures that drop the connection without
mixing up replies, and recovery without a restart."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.platform.redis_pipelined import Endpoint, PipelinedRedis, Script
from tests.conftest import TEST_REDIS_URL

PREFIX = "test:pipelined:"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL)
    yield client
    keys = [k async for k in client.scan_iter(match=PREFIX + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _client(timeout_seconds: float = 1.0) -> PipelinedRedis:
    """A client of the test Redis, not yet connected."""
    endpoint = Endpoint.from_url(TEST_REDIS_URL)
    assert endpoint is not None
    return PipelinedRedis(endpoint, timeout_seconds=timeout_seconds)


@pytest.fixture
async def pipelined() -> AsyncIterator[PipelinedRedis]:
    client = _client()
    yield client
    await client.aclose()


def test_endpoint_from_url() -> None:
    endpoint = Endpoint.from_url("redis://us%40er:p%3Ass@cache.internal:6380/7")
    assert endpoint == Endpoint("cache.internal", 6380, 7, "us@er", "p:ss")
    assert Endpoint.from_url("redis://localhost") == Endpoint("localhost", 6379, 0, None, None)
    # What the lean client does not speak is left to redis-py.
    assert Endpoint.from_url("rediss://localhost:6380/0") is None
    assert Endpoint.from_url("unix:///run/redis.sock") is None
    # Options in the query string are redis-py's to read; ignoring them would pick db 0.
    assert Endpoint.from_url("redis://localhost:6379?db=3") is None
    assert Endpoint.from_url("redis://localhost/2?password=secret") is None


async def test_concurrent_commands_get_their_own_replies(
    redis: Redis, pipelined: PipelinedRedis
) -> None:
    values = {f"{PREFIX}{i}": f"value-{random.random()}" for i in range(300)}
    await redis.mset(values)
    keys = list(values)
    random.shuffle(keys)
    replies = await asyncio.gather(*(pipelined.execute("GET", key) for key in keys))
    assert [r.decode() for r in replies] == [values[k] for k in keys]
    # The database of the URL was selected: the same keys, seen from redis-py on that db.
    assert await pipelined.execute("DBSIZE") == await redis.dbsize()


async def test_error_reply_raises_and_keeps_the_connection(
    redis: Redis, pipelined: PipelinedRedis
) -> None:
    await redis.set(f"{PREFIX}text", "not a number")
    with pytest.raises(ResponseError, match="not an integer"):
        await pipelined.execute("INCR", f"{PREFIX}text")
    # The error was one reply in the stream: the next command gets its own answer.
    assert await pipelined.execute("ECHO", "after") == b"after"


async def test_script_is_loaded_on_first_use_and_after_a_flush(
    redis: Redis, pipelined: PipelinedRedis
) -> None:
    script = Script.of("return {KEYS[1], ARGV[1] + 1}")
    await redis.script_flush()
    assert await pipelined.evalsha(script, [f"{PREFIX}k"], [41]) == [f"{PREFIX}k".encode(), 42]
    assert (await redis.script_exists(script.sha)) == [True]
    await redis.script_flush()
    assert await pipelined.evalsha(script, [f"{PREFIX}k"], [1]) == [f"{PREFIX}k".encode(), 2]


async def test_killed_connection_fails_waiting_commands_then_reconnects(
    redis: Redis, pipelined: PipelinedRedis
) -> None:
    own_id = await pipelined.execute("CLIENT", "ID")
    # A command that blocks on the server, killed from another connection while it waits.
    blocked = asyncio.ensure_future(pipelined.execute("BLPOP", f"{PREFIX}never", 5))
    await asyncio.sleep(0.1)
    assert await redis.client_kill_filter(_id=own_id) == 1
    with pytest.raises(RedisConnectionError):
        await blocked
    # The next command opens a fresh connection; no restart needed.
    assert await pipelined.execute("CLIENT", "ID") != own_id
    assert await pipelined.execute("ECHO", "back") == b"back"


async def test_timeout_drops_the_connection_and_fails_every_waiting_command(
    redis: Redis,
) -> None:
    client = _client(0.3)
    try:
        first_id = await client.execute("CLIENT", "ID")
        # BLPOP holds the line: the commands behind it on the same connection wait too.
        blocked = asyncio.ensure_future(client.execute("BLPOP", f"{PREFIX}never", 5))
        behind = asyncio.ensure_future(client.execute("ECHO", "behind"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for waiting in (blocked, behind):
            with pytest.raises(RedisTimeoutError):
                await waiting
        assert loop.time() - started < 1.5  # the deadline, not BLPOP's 5 s
        assert await client.execute("CLIENT", "ID") != first_id
    finally:
        await client.aclose()


async def test_unreachable_redis_is_a_connection_error() -> None:
    # A port nobody listens on: found by binding one and closing it.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = PipelinedRedis(Endpoint("127.0.0.1", port, 0, None, None), timeout_seconds=0.5)
    with pytest.raises(RedisConnectionError):
        await client.execute("PING")
    await client.aclose()


async def test_cancelled_caller_does_not_shift_replies(
    redis: Redis, pipelined: PipelinedRedis
) -> None:
    await redis.set(f"{PREFIX}a", "A")
    await redis.set(f"{PREFIX}b", "B")
    slow = asyncio.ensure_future(pipelined.execute("BLPOP", f"{PREFIX}list", 0.3))
    after = asyncio.ensure_future(pipelined.execute("GET", f"{PREFIX}a"))
    await asyncio.sleep(0.05)
    slow.cancel()
    # The cancelled command's reply still arrives first and is dropped, not given to `after`.
    assert await after == b"A"
    assert await pipelined.execute("GET", f"{PREFIX}b") == b"B"


async def test_caller_cancelled_while_connecting_leaves_no_stale_connection(
    redis: Redis,
) -> None:
    client = _client()
    try:
        first = asyncio.ensure_future(client.execute("PING"))
        await asyncio.sleep(0)  # the command is now waiting for the connection to open
        first.cancel()
        await asyncio.sleep(0.2)  # the connection opens anyway
        own_id = await client.execute("CLIENT", "ID")
        assert await redis.client_kill_filter(_id=own_id) == 1
        await asyncio.sleep(0.1)
        # The finished connection attempt must not be handed out again: its connection is
        # gone, and a command queued on it would wait forever.
        assert await asyncio.wait_for(client.execute("ECHO", "fresh"), 3) == b"fresh"
    finally:
        await client.aclose()


async def test_argument_that_cannot_be_sent_leaves_the_reply_order_intact(
    redis: Redis, pipelined: PipelinedRedis
) -> None:
    await redis.set(f"{PREFIX}x", "X")
    with pytest.raises(TypeError):
        await pipelined.execute("SET", f"{PREFIX}y", None)  # type: ignore[arg-type]
    # Nothing was queued for the refused command: the next reply is the next caller's.
    assert await pipelined.execute("GET", f"{PREFIX}x") == b"X"
    assert await pipelined.execute("ECHO", "next") == b"next"


async def test_close_while_connecting_keeps_no_connection() -> None:
    client = _client()
    pending = asyncio.ensure_future(client.execute("PING"))
    await asyncio.sleep(0)  # the command waits for the connection to open
    await client.aclose()
    with pytest.raises(RedisConnectionError):
        await pending
    assert client._protocol is None
    with pytest.raises(RedisConnectionError):
        await client.execute("PING")
