"""A TOMP-API 1.6.1 transport operator, simulated: a real HTTP server for tests and the demo.

``python -m providers.simulators.tomp_server --port 8002 --fleet car|scooter [--seed N]
[--center-lat … --center-lon …] [--vehicles N] [--system-id …]`` runs it as its own process;
``TompSimulator(...).app`` is the same server for :func:`serve_in_background` in a test.

It serves the TOMP operator endpoints (``/operator/ping``, ``/operator/meta``,
``/planning/offers``, ``/bookings``, ``/bookings/{id}``, ``/bookings/{id}/events``,
``/legs/{id}``, ``/legs/{id}/events``; the state machine is :mod:`tomp_state`) and publishes the
same fleet as a GBFS 2.3 feed set under ``/gbfs/`` so the aggregator's GBFS adapter can sync its
availability. Reserved vehicles are listed with ``is_reserved: true``; vehicles in use are left
out, as GBFS 2.3 requires ("vehicles that are part of an active rental MUST NOT appear"), unless
``list_vehicles_in_use`` is set, which lists them as reserved.

The control path ``/_sim/…`` (and the same methods on the object) is not TOMP: fault injection
per endpoint (``hang``, ``lose_response``, ``error``, ``reject``, ``delay``), a journal of every
TOMP request and response, the booking states, and a clock that tests can move forward.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal, TypeAlias, get_args

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from providers.simulators.tomp_fleet import (
    DEFAULT_CENTER,
    FLEETS,
    GBFS_FEEDS,
    FleetName,
    SimVehicle,
    build_vehicles,
    gbfs_document,
    no_parking_zone,
)
from providers.simulators.tomp_state import Reply, TompOperatorState, error_body

__all__ = ["FaultMode", "JournalEntry", "TompSimulator", "main"]

logger = logging.getLogger(__name__)

FaultMode: TypeAlias = Literal["hang", "lose_response", "error", "reject", "delay"]
_Handler: TypeAlias = Callable[[Request, Any, float], Reply]

_JSON: Final = "application/json"
SUPPORTED_API_VERSIONS: Final = ("1.6",)
_ALL_HEADERS: Final = ("Accept-Language", "Api", "Api-Version", "maas-id")


@dataclass(frozen=True, slots=True)
class _SimRoute:
    method: str
    path: str  # Starlette's, with {id}
    handler: _Handler
    required: tuple[str, ...]  # headers a request is refused without

    @property
    def key(self) -> str:
        """How faults and the journal name the route: ``"POST /bookings"``."""
        return f"{self.method} {self.path}"


# The module digit of TOMP error codes (x001 Missing, x008 Unsupported API-version, …).
_MODULE: Final = {"operator": 1, "planning": 2, "bookings": 3, "legs": 4}
# A hanging request gives up on its own after this long, so nothing outlives a forgotten test.
_HANG_LIMIT_SECONDS: Final = 120.0
_JOURNAL_LIMIT: Final = 10_000


@dataclass(slots=True)
class _Fault:
    mode: FaultMode
    remaining: int | None  # None: until cleared
    status: int
    errorcode: int | None
    delay_seconds: float
    retry_after: str | None


@dataclass(slots=True)
class JournalEntry:
    """One TOMP request as the simulator received it and the answer it sent (or None when the
    answer was lost on purpose)."""

    method: str
    path: str
    route: str  # "POST /bookings/{id}/events"
    request_headers: dict[str, str]
    request_body: Any
    status: int | None = None
    response_body: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", errors="replace")


def _module(route: str) -> int:
    segment = route.split(" ", 1)[1].strip("/").split("/", 1)[0]
    return _MODULE.get(segment, 7)


class TompSimulator:
    """One simulated TOMP operator with its fleet; ``app`` is its ASGI application."""

    def __init__(
        self,
        *,
        fleet: FleetName = "scooter",
        seed: int = 1,
        center: tuple[float, float] = DEFAULT_CENTER,
        vehicles: int = 20,
        system_id: str | None = None,
        radius_m: float = 1500.0,
        offer_ttl_seconds: float = 300.0,
        pending_ttl_seconds: float = 300.0,
        reservation_ttl_seconds: float = 900.0,
        list_vehicles_in_use: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if fleet not in FLEETS:
            raise ValueError(f"unknown fleet {fleet!r} (car, scooter)")
        self.kind = FLEETS[fleet]
        self.system_id = system_id or f"tomp-sim-{fleet}"
        self.zone = no_parking_zone(center)
        self._clock = clock
        self._clock_offset = 0.0
        self.list_vehicles_in_use = list_vehicles_in_use
        fleet_vehicles = build_vehicles(
            self.kind,
            system_id=self.system_id,
            seed=seed,
            count=vehicles,
            center=center,
            radius_m=radius_m,
            zone=self.zone,
            now=int(self.now()),
        )
        self.state = TompOperatorState(
            self.kind,
            fleet_vehicles,
            system_id=self.system_id,
            offer_ttl=offer_ttl_seconds,
            pending_ttl=pending_ttl_seconds,
            reservation_ttl=reservation_ttl_seconds,
        )
        self.journal: list[JournalEntry] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._lock = asyncio.Lock()
        self._app: Starlette | None = None

    # -- observation and control (also on /_sim/…) -------------------------------------------

    def now(self) -> float:
        return self._clock() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (expiry, ride durations) without sleeping."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._clock_offset += seconds

    @property
    def vehicles(self) -> list[SimVehicle]:
        return list(self.state.vehicles.values())

    def inject_fault(
        self,
        route: str,
        mode: FaultMode,
        *,
        times: int | None = 1,
        status: int | None = None,
        errorcode: int | None = None,
        delay_seconds: float = 0.0,
        retry_after: str | None = None,
    ) -> None:
        """Make the next ``times`` calls to ``route`` (e.g. ``"POST /bookings"``) misbehave:
        ``hang`` before doing anything; ``lose_response``: do the work, then hang (the client
        never learns the outcome); ``error``: answer ``status`` (500) with an error body;
        ``reject``: answer ``status`` (403) with TOMP ``errorcode``; ``delay``: wait, then
        answer normally."""
        if route not in self._routes_by_key():
            raise ValueError(f"unknown route {route!r}: {sorted(self._routes_by_key())}")
        if mode not in get_args(FaultMode):
            raise ValueError(f"unknown fault mode {mode!r}")
        default_status = {"error": 500, "reject": 403}.get(mode, 200)
        self._faults.setdefault(route, []).append(
            _Fault(mode, times, status or default_status, errorcode, delay_seconds, retry_after)
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def requests_to(self, route: str) -> list[JournalEntry]:
        return [entry for entry in self.journal if entry.route == route]

    def bookings_view(self) -> list[dict[str, Any]]:
        return [
            {
                "id": b.booking_id,
                "state": b.state,
                "leg_id": b.leg_id,
                "leg_state": b.leg_state,
                "vehicle_id": b.vehicle_id,
                "price_minor": b.price_minor,
                "distance_m": b.distance_m,
            }
            for b in self.state.bookings.values()
        ]

    # -- HTTP ---------------------------------------------------------------------------------

    def _routes_by_key(self) -> dict[str, _SimRoute]:
        """The TOMP routes served, by their key."""
        s = self.state

        def param(request: Request) -> str:
            return str(request.path_params["id"])

        routes = (
            _SimRoute("GET", "/operator/ping", lambda r, b, now: Reply(200), ("Accept-Language",)),
            _SimRoute(
                "GET",
                "/operator/meta",
                lambda r, b, now: Reply(200, self._meta(r)),
                ("Accept-Language", "maas-id"),
            ),
            _SimRoute("POST", "/planning/offers", lambda r, b, now: s.plan(b, now), _ALL_HEADERS),
            _SimRoute(
                "POST", "/bookings", lambda r, b, now: s.create_booking(b, now), _ALL_HEADERS
            ),
            _SimRoute(
                "GET", "/bookings/{id}", lambda r, b, now: s.get_booking(param(r)), _ALL_HEADERS
            ),
            _SimRoute(
                "POST",
                "/bookings/{id}/events",
                lambda r, b, now: s.booking_event(param(r), b, now),
                _ALL_HEADERS,
            ),
            _SimRoute("GET", "/legs/{id}", lambda r, b, now: s.get_leg(param(r)), _ALL_HEADERS),
            _SimRoute(
                "POST",
                "/legs/{id}/events",
                lambda r, b, now: s.leg_event(param(r), b, now),
                _ALL_HEADERS,
            ),
        )
        return {route.key: route for route in routes}

    @property
    def app(self) -> Starlette:
        if self._app is None:
            routes = [
                Route(r.path, self._endpoint(key, r.handler, r.required), methods=[r.method])
                for key, r in self._routes_by_key().items()
            ]
            routes += [
                Route("/gbfs/{feed}.json", self._gbfs, methods=["GET"]),
                Route("/_sim/journal", self._sim_journal, methods=["GET", "DELETE"]),
                Route("/_sim/bookings", self._sim_bookings, methods=["GET"]),
                Route("/_sim/faults", self._sim_faults, methods=["POST", "DELETE"]),
                Route("/_sim/clock", self._sim_clock, methods=["POST"]),
            ]
            self._app = Starlette(routes=routes)
        return self._app

    def _endpoint(
        self, key: str, handler: _Handler, required: tuple[str, ...]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, key, handler, required)

        return endpoint

    async def _serve(
        self, request: Request, key: str, handler: _Handler, required: tuple[str, ...]
    ) -> Response:
        body = _decode(await request.body())
        entry = JournalEntry(
            method=request.method,
            path=request.url.path,
            route=key,
            request_headers=dict(request.headers),
            request_body=body,
        )
        self._record(entry)
        fault = self._take_fault(key)
        if fault is not None and fault.delay_seconds > 0:
            await asyncio.sleep(fault.delay_seconds)
        if fault is not None and fault.mode == "hang":
            await _wait_for_disconnect(request)
            return Response(status_code=504)  # nobody is listening any more
        if fault is not None and fault.mode in ("error", "reject"):
            code = fault.errorcode or _module(key) * 1000 + (2 if fault.mode == "reject" else 0)
            title = "Injected failure" if fault.mode == "error" else "Injected rejection"
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            reply = Reply(
                fault.status,
                error_body(fault.status, code, title, f"{key} (fault injection)", entry.path),
                headers,
            )
            return self._respond(entry, reply)
        reply = self._check_headers(request, key, required, entry.path) or await self._handle(
            request, key, handler, body, entry.path
        )
        if fault is not None and fault.mode == "lose_response":
            await _wait_for_disconnect(request)
            entry.response_headers = {"x-sim-lost": "true"}
            return Response(status_code=504)
        return self._respond(entry, reply)

    async def _handle(
        self, request: Request, key: str, handler: _Handler, body: Any, instance: str
    ) -> Reply:
        if isinstance(body, str):  # not JSON
            code = _module(key) * 1000 + 2
            return Reply(400, error_body(400, code, "Invalid", "body is not JSON", instance))
        async with self._lock:
            now = self.now()
            self.state.sweep(now)
            return handler(request, body, now)

    def _respond(self, entry: JournalEntry, reply: Reply) -> Response:
        headers = dict(reply.headers)
        if reply.body is not None:
            headers.setdefault("Content-Language", "en")
        entry.status = reply.status
        entry.response_body = reply.body
        entry.response_headers = headers
        if reply.body is None:
            return Response(status_code=reply.status, headers=headers)
        return Response(
            orjson.dumps(reply.body), status_code=reply.status, headers=headers, media_type=_JSON
        )

    def _record(self, entry: JournalEntry) -> None:
        self.journal.append(entry)
        if len(self.journal) > _JOURNAL_LIMIT:  # a long demo run must not grow without bound
            del self.journal[: len(self.journal) - _JOURNAL_LIMIT]

    def _take_fault(self, key: str) -> _Fault | None:
        queue = self._faults.get(key)
        if not queue:
            return None
        fault = queue[0]
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
        return fault

    def _check_headers(
        self, request: Request, key: str, required: tuple[str, ...], instance: str
    ) -> Reply | None:
        module = _module(key)
        missing = [name for name in required if not request.headers.get(name)]
        if missing:
            detail = f"missing required header(s): {', '.join(missing)}"
            return Reply(400, error_body(400, module * 1000 + 1, "Missing", detail, instance))
        if "Api" in required and request.headers["Api"] != "TOMP":
            detail = f"Api must be TOMP, got {request.headers['Api']!r}"
            return Reply(400, error_body(400, module * 1000 + 2, "Invalid", detail, instance))
        version = request.headers.get("Api-Version")
        if "Api-Version" in required and not str(version).startswith(SUPPORTED_API_VERSIONS):
            detail = f"Api-Version {version!r} is not supported (1.6.x)"
            return Reply(
                400, error_body(400, module * 1000 + 8, "Unsupported API-version", detail, instance)
            )
        return None

    def _meta(self, request: Request) -> list[dict[str, Any]]:
        base = str(request.base_url).rstrip("/")
        endpoints: list[dict[str, Any]] = []
        for method, path, events in (
            ("GET", "/operator/ping", ()),
            ("GET", "/operator/meta", ()),
            ("POST", "/planning/offers", ()),
            ("POST", "/bookings", ()),
            ("GET", "/bookings/{id}", ()),
            ("POST", "/bookings/{id}/events", ("COMMIT", "CANCEL")),
            ("GET", "/legs/{id}", ()),
            ("POST", "/legs/{id}/events", ("SET_IN_USE", "PAUSE", "FINISH", "CANCEL")),
        ):
            if not events:
                endpoints.append({"method": method, "path": path, "status": "IMPLEMENTED"})
            for event in events:
                endpoints.append(
                    {"method": method, "path": path, "eventType": event, "status": "IMPLEMENTED"}
                )
        # The GBFS feed carries availability; its vehicle ids are TOMP asset ids (`useAssets`).
        endpoints.append(
            {
                "method": "GET",
                "path": f"{base}/gbfs/free_bike_status.json",
                "externalType": "GBFS",
                "useAssets": ["bike_id"],
                "status": "IMPLEMENTED",
            }
        )
        identifiers: dict[str, list[str]] = {
            name: []
            for name in (
                "operatorInformation",
                "planning",
                "booking",
                "tripExecution",
                "support",
                "payment",
                "general",
            )
        }
        return [
            {
                "version": "1.6.1",
                "baseUrl": base,
                "endpoints": endpoints,
                "scenarios": [],
                "processIdentifiers": identifiers,
            }
        ]

    # -- GBFS ---------------------------------------------------------------------------------

    def gbfs_documents(self, base_url: str) -> dict[str, dict[str, Any]]:
        """Every published GBFS document by feed name (``gbfs`` included), as served now."""
        now = self.now()
        self.state.sweep(now)
        booked = self.state.booked_vehicles()
        listed = [
            (vehicle, vehicle.vehicle_id in booked)
            for vehicle in self.state.vehicles.values()
            if booked.get(vehicle.vehicle_id) != "STARTED" or self.list_vehicles_in_use
        ]
        return {
            feed: gbfs_document(
                feed,
                kind=self.kind,
                system_id=self.system_id,
                base_url=base_url.rstrip("/"),
                vehicles=listed,
                zone=self.zone,
                reserve_minutes=int(self.state.reservation_ttl // 60),
                now=int(now),
            )
            for feed in ("gbfs", *GBFS_FEEDS)
        }

    async def _gbfs(self, request: Request) -> Response:
        feed = str(request.path_params["feed"])
        if feed != "gbfs" and feed not in GBFS_FEEDS:
            return Response(orjson.dumps({"error": f"no feed {feed}"}), 404, media_type=_JSON)
        async with self._lock:
            documents = self.gbfs_documents(str(request.base_url))
        return Response(orjson.dumps(documents[feed]), media_type=_JSON)

    # -- control path -------------------------------------------------------------------------

    async def _sim_journal(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.journal.clear()
            return Response(status_code=204)
        return Response(orjson.dumps([asdict(e) for e in self.journal]), media_type=_JSON)

    async def _sim_bookings(self, request: Request) -> Response:
        async with self._lock:
            self.state.sweep(self.now())
            view = self.bookings_view()
        return Response(orjson.dumps(view), media_type=_JSON)

    async def _sim_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_faults()
            return Response(status_code=204)
        try:
            spec = orjson.loads(await request.body())
            self.inject_fault(
                str(spec["route"]),
                spec["mode"],
                times=spec.get("times", 1),
                status=spec.get("status"),
                errorcode=spec.get("errorcode"),
                delay_seconds=float(spec.get("delay_seconds", 0.0)),
                retry_after=spec.get("retry_after"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return Response(orjson.dumps({"error": str(exc)}), 400, media_type=_JSON)
        return Response(status_code=204)

    async def _sim_clock(self, request: Request) -> Response:
        try:
            spec = orjson.loads(await request.body())
            self.advance(float(spec["advance_seconds"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return Response(orjson.dumps({"error": str(exc)}), 400, media_type=_JSON)
        return Response(orjson.dumps({"now": self.now()}), media_type=_JSON)


async def _wait_for_disconnect(request: Request) -> None:
    """Hold the request open until the client gives up (or the hang limit passes)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_HANG_LIMIT_SECONDS):
            # The body was read already: the next message is the client's disconnect.
            while (await request.receive())["type"] != "http.disconnect":
                pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m providers.simulators.tomp_server",
        description="A simulated TOMP-API 1.6.1 operator that also publishes GBFS 2.3.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--fleet", choices=sorted(FLEETS), default="scooter")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--center-lat", type=float, default=DEFAULT_CENTER[0])
    parser.add_argument("--center-lon", type=float, default=DEFAULT_CENTER[1])
    parser.add_argument("--vehicles", type=int, default=20)
    parser.add_argument("--system-id", default=None)
    parser.add_argument("--offer-ttl", type=float, default=300.0, help="seconds")
    parser.add_argument("--pending-ttl", type=float, default=300.0, help="seconds")
    parser.add_argument("--reservation-ttl", type=float, default=900.0, help="seconds")
    parser.add_argument(
        "--list-in-use",
        action="store_true",
        help="list vehicles in use as reserved in free_bike_status (GBFS 2.3 says omit them)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.vehicles < 0:
        raise SystemExit("--vehicles must not be negative")
    simulator = TompSimulator(
        fleet=args.fleet,
        seed=args.seed,
        center=(args.center_lat, args.center_lon),
        vehicles=args.vehicles,
        system_id=args.system_id,
        offer_ttl_seconds=args.offer_ttl,
        pending_ttl_seconds=args.pending_ttl,
        reservation_ttl_seconds=args.reservation_ttl,
        list_vehicles_in_use=args.list_in_use,
    )
    uvicorn.run(simulator.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
