"""A lean Redis client for the search hot path: one connection per process, shared by every
concurrent request, commands written as they come and replies matched in order.

redis-py's asyncio client takes a connection from a pool, wraps every command in a timeout
context and parses its reply through several layers of Python; under load that was about a
tenth of an API worker's CPU for the one script call a search makes (docs/performance.md).
Redis answers the commands of a connection in the order it received them, so many requests can
share one connection: each appends a future to a queue and writes its packed command; the
protocol feeds what arrives to hiredis and resolves the futures in order. Requests that arrive
together leave in one segment and come back in one.

Failure handling keeps the order invariant safe: a request that waits longer than the timeout,
a protocol error or a lost connection drops the connection and fails every request still waiting
on it (they cannot be matched any more); the next command opens a new connection. Errors are
redis-py's exception classes, so callers handle both clients alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int | float


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    db: int
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> Endpoint | None:
        """The endpoint of a plain ``redis://`` URL; None for what this client does not speak
        (TLS, unix sockets): callers then use redis-py."""
        parts = urlsplit(url)
        if parts.scheme != "redis" or parts.query:
            return None  # options in the query string (db=, password=...): redis-py reads them
        path = parts.path.strip("/")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(path) if path else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class _Protocol(asyncio.Protocol):
    def __init__(self, client: PipelinedRedis) -> None:
        self.client = client
        self.reader = hiredis.Reader()
        # (future, deadline) per command sent and not yet answered, in sending order.
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.watchdog: asyncio.TimerHandle | None = None

    def arm(self, delay: float) -> None:
        self.watchdog = asyncio.get_running_loop().call_later(delay, self.check_deadlines)

    def check_deadlines(self) -> None:
        # One timer per connection, not one per command: commands are answered in order, so
        # only the oldest waiting one can be the first to miss its deadline.
        self.watchdog = None
        if self.closed or not self.waiting:
            return
        late = self.waiting[0][1] - time.monotonic()
        if late <= 0:
            timeout = self.client.timeout
            self.abort(RedisTimeoutError(f"Redis did not answer within {timeout:g} s"))
        else:
            self.arm(late)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport; both have write/abort.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.abort(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:
                self.abort(RedisConnectionError("Redis sent a reply nobody asked for"))
                return
            future, _ = waiting.popleft()
            if not future.done():  # a cancelled caller: its reply is read and dropped
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Redis connection lost: {exc or 'closed by server'}"))

    def fail(self, error: Exception) -> None:
        self.closed = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.client._forget(self)
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def abort(self, error: Exception) -> None:
        self.fail(error)
        if self.transport is not None:
            self.transport.abort()


class PipelinedRedis:
    def __init__(self, endpoint: Endpoint, *, timeout_seconds: float = 1.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout_seconds
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._closed = False

    async def execute(self, *args: Arg) -> Any:
        """Send one command and return its reply (bytes, int, list, None); an error reply is
        raised as :class:`redis.exceptions.ResponseError`."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            if self._closed:
                raise RedisConnectionError("client closed")
            protocol = await self._connect()
        return _raise_error(await self._send(protocol, args))

    async def evalsha(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """Run a script by its digest, loading it with EVAL when Redis does not know it (first
        use, or after a restart or SCRIPT FLUSH)."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    async def aclose(self) -> None:
        self._closed = True
        if self._protocol is not None:
            self._protocol.abort(RedisConnectionError("client closed"))

    def _send(self, protocol: _Protocol, args: Sequence[Arg]) -> asyncio.Future[Any]:
        if protocol.closed or protocol.transport is None:
            # Never queue behind a dead connection: nothing would ever answer.
            raise RedisConnectionError("Redis connection closed")
        command: tuple[Any, ...] = tuple(args)
        packed = hiredis.pack_command(command)  # may raise: before anything is queued
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.waiting.append((future, time.monotonic() + self.timeout))
        try:
            protocol.transport.write(packed)
        except Exception as exc:  # uvloop raises on a transport the server already closed
            error = RedisConnectionError(f"Redis connection closed: {exc}")
            protocol.abort(error)  # fails this command's future with the others
            raise error from exc
        if protocol.watchdog is None:
            protocol.arm(self.timeout)
        return future

    def _forget(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    async def _connect(self) -> _Protocol:
        # Requests that arrive while a connection is being opened wait for that one. A finished
        # attempt is never reused: its connection may have been lost since.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        endpoint = self.endpoint
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self), endpoint.host, endpoint.port),
                self.timeout,
            )
        except TimeoutError as exc:
            raise RedisTimeoutError(f"could not connect to Redis at {endpoint.host}") from exc
        except OSError as exc:
            raise RedisConnectionError(f"could not connect to Redis: {exc}") from exc
        handshake: list[tuple[Arg, ...]] = []
        if endpoint.password is not None:
            handshake.append(
                ("AUTH", endpoint.username, endpoint.password)
                if endpoint.username
                else ("AUTH", endpoint.password)
            )
        if endpoint.db:
            handshake.append(("SELECT", endpoint.db))
        try:
            for command in handshake:
                _raise_error(await asyncio.wait_for(self._send(protocol, command), self.timeout))
        except BaseException:
            protocol.abort(RedisConnectionError("Redis handshake failed"))
            raise
        if self._closed:  # closed while this connection was opening: do not keep it
            protocol.abort(RedisConnectionError("client closed"))
            raise RedisConnectionError("client closed")
        self._protocol = protocol
        return protocol


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> Script:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())


def _raise_error(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        message = str(reply)
        if message.startswith("NOSCRIPT"):
            raise NoScriptError(message)
        raise ResponseError(message)
    return reply
