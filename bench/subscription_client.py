"""One process of ``vehicleUpdates`` subscribers for the subscription benchmark
(bench/subscriptions.py), started with multiprocessing's spawn: light imports only.

Each subscriber is its own WebSocket (``graphql-transport-ws``: ``connection_init``, ``ack``,
``subscribe``, then ``next`` messages; the server's protocol pings are answered), on its own
box. The process records what every subscriber received and when (``time.monotonic()``, the
same clock as the parent's on Linux), and talks to the parent over a pipe:

- it sends ``("ready", opened)`` once every subscriber got its first message (the SNAPSHOT) or
  failed;
- it answers ``"status"`` with ``("status", changes, last_arrival)``: vehicles received in
  messages after the first, over all its subscribers, and when the last one arrived;
- on ``"finish"`` it closes its sockets and sends ``("result", records)``.

Vehicles are kept as (id, lat, lon) and removed ones as ids; the parent checks them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

# What a map client asks for: the fields it draws and filters on.
_FIELDS = "id providerId formFactor propulsionType lat lon currentRangeMeters isReserved"
SUBSCRIPTION = (
    "subscription Live($box: WithinInput!, $first: Int!) { "
    "vehicleUpdates(within: $box, first: $first) { "
    f"kind created {{ {_FIELDS} }} updated {{ {_FIELDS} }} removed }} }}"
)

# (min_lat, min_lon, max_lat, max_lon)
BoxTuple = tuple[float, float, float, float]
Vehicle = tuple[str, float, float]


@dataclass(slots=True)
class Message:
    """One ``next`` of a subscriber, as received."""

    at: float
    kind: str
    created: list[Vehicle]
    updated: list[Vehicle]
    removed: list[str]


@dataclass(slots=True)
class Record:
    """What one subscriber did and received."""

    index: int
    started_at: float = 0.0  # before the WebSocket handshake
    subscribed_at: float = 0.0  # `subscribe` sent
    messages: list[Message] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "started_at": self.started_at,
            "subscribed_at": self.subscribed_at,
            "error": self.error,
            "messages": [
                {
                    "at": m.at,
                    "kind": m.kind,
                    "created": m.created,
                    "updated": m.updated,
                    "removed": m.removed,
                }
                for m in self.messages
            ],
        }


def _vehicles(items: list[dict[str, Any]]) -> list[Vehicle]:
    return [(v["id"], v["lat"], v["lon"]) for v in items]


class _Tally:
    def __init__(self) -> None:
        self.changes = 0
        self.last_arrival = 0.0


async def _subscriber(
    url: str,
    record: Record,
    box: BoxTuple,
    first: int,
    gate: asyncio.Semaphore,
    snapshot: asyncio.Event,
    tally: _Tally,
) -> None:
    async with gate:  # a bounded number of handshakes and snapshots in flight
        record.started_at = time.monotonic()
        ws = await connect(
            url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            open_timeout=120,
            ping_interval=None,  # the server pings at the protocol level, and we answer
            max_size=None,
            compression=None,
        )
        try:
            await _open(ws, record, box, first)
            # The gate is released only with the snapshot in hand.
            await _read(ws, record, snapshot, tally, until_snapshot=True)
        except BaseException:
            await ws.close()
            raise
    try:
        await _read(ws, record, snapshot, tally, until_snapshot=False)
    finally:
        await ws.close()


async def _open(ws: ClientConnection, record: Record, box: BoxTuple, first: int) -> None:
    await ws.send('{"type":"connection_init"}')
    while True:
        reply = orjson.loads(await ws.recv())
        if reply["type"] == "connection_ack":
            break
        if reply["type"] == "ping":
            await ws.send('{"type":"pong"}')
            continue
        raise RuntimeError(f"expected connection_ack, got {reply}")
    variables = {
        "box": {"minLat": box[0], "minLon": box[1], "maxLat": box[2], "maxLon": box[3]},
        "first": first,
    }
    payload = {"query": SUBSCRIPTION, "variables": variables}
    # Text frames, as browsers send them.
    await ws.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": payload}).decode())
    record.subscribed_at = time.monotonic()


async def _read(
    ws: ClientConnection,
    record: Record,
    snapshot: asyncio.Event,
    tally: _Tally,
    *,
    until_snapshot: bool,
) -> None:
    while True:
        raw = await ws.recv()
        at = time.monotonic()
        message = orjson.loads(raw)
        kind = message.get("type")
        if kind == "ping":
            await ws.send('{"type":"pong"}')
            continue
        if kind != "next" or message["payload"].get("errors"):
            record.error = f"unexpected {kind}: {raw[:300]!r}"
            snapshot.set()
            return
        update = message["payload"]["data"]["vehicleUpdates"]
        received = Message(
            at=at,
            kind=update["kind"],
            created=_vehicles(update["created"]),
            updated=_vehicles(update["updated"]),
            removed=list(update["removed"]),
        )
        record.messages.append(received)
        if len(record.messages) == 1:
            snapshot.set()
            if until_snapshot:
                return
        else:
            tally.changes += len(received.created) + len(received.updated) + len(received.removed)
            tally.last_arrival = at


async def _serve(
    conn: Connection, url: str, subscriptions: list[tuple[int, BoxTuple]], first: int, gate: int
) -> None:
    semaphore = asyncio.Semaphore(gate)
    tally = _Tally()
    records = [Record(index) for index, _ in subscriptions]
    events = [asyncio.Event() for _ in subscriptions]

    async def one(record: Record, box: BoxTuple, event: asyncio.Event) -> None:
        try:
            await _subscriber(url, record, box, first, semaphore, event, tally)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            record.error = record.error or f"{exc.__class__.__name__}: {exc}"
        finally:
            event.set()

    tasks = [
        asyncio.create_task(one(record, box, event))
        for record, (_, box), event in zip(records, subscriptions, events, strict=True)
    ]
    await asyncio.gather(*(e.wait() for e in events))
    opened = sum(1 for r in records if r.error is None and r.messages)
    conn.send(("ready", opened))
    while True:
        command = await asyncio.to_thread(conn.recv)
        if command == "status":
            conn.send(("status", tally.changes, tally.last_arrival))
        elif command == "finish":
            break
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    conn.send(("result", [r.to_json() for r in records]))


def run(
    conn: Connection,
    url: str,
    subscriptions: list[tuple[int, BoxTuple]],
    first: int,
    gate: int,
) -> None:
    """The process's entry point (multiprocessing target)."""
    try:
        import uvloop

        uvloop.run(_serve(conn, url, subscriptions, first, gate))
    except ImportError:
        asyncio.run(_serve(conn, url, subscriptions, first, gate))
    finally:
        conn.close()


async def warm_up(url: str, box: BoxTuple, first: int, count: int) -> int:
    """Open ``count`` subscriptions at once, take their snapshots and close them: every API
    worker then has its live-update hub listening and its caches filled, so what the real
    subscribers add to its memory is theirs. Returns how many got a snapshot."""
    gate = asyncio.Semaphore(count)
    tally = _Tally()
    records = [Record(i) for i in range(count)]

    async def one(record: Record) -> None:
        event = asyncio.Event()
        task = asyncio.create_task(_subscriber(url, record, box, first, gate, event, tally))
        await event.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    await asyncio.gather(*(one(r) for r in records))
    return sum(1 for r in records if r.error is None and r.messages)
