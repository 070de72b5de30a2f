"""A live API for clients nobody on the team wrote: the JavaScript reference clients and a real
browser (web/test/). It is the product as a user meets it: a real `mobility serve` process over
the test database, two operators, and a control endpoint through which a client test causes what
it must then observe (a sync in another process, a server restart).

- ``live-scooters``: a GBFS 2.3 operator served by :class:`FeedServer`, whose vehicles move
  when the control endpoint says so (:class:`MovingFleet`);
- ``sim-scooters``: the TOMP-API simulator, bookable (``tests/booking_support.bookable_operator``,
  which also checks every TOMP exchange against the 1.6.1 document at the end).

The control endpoint (``MOBILITY_CONTROL_URL`` for the JavaScript tests):

- ``GET /info``: what a test needs to know (URLs, the fleet's centre, ids and positions as the
  operators published them, CORS origins);
- ``POST /move``: moves some of ``live-scooters``' vehicles in the feed, then runs
  ``mobility sync live-scooters`` as its own process; answers the positions before and after,
  which the test uses as its oracle (they come from the feed, not from the API);
- ``POST /restart``: kills the API process (SIGKILL, as a host dies) and starts a new one on
  the same port;
- ``GET /pages/{name}``: a static page for browser tests, so that a page can be loaded from an
  origin other than the API's (CORS).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from app.platform.db import transaction
from app.runtime import Runtime
from providers.service import register_provider
from providers.simulators.feed_server import FeedServer, serve_in_background
from tests.booking_support import bookable_operator
from tests.processes import free_port, kill_group, process_env, wait_for

LIVE_PROVIDER = "live-scooters"
BOOKABLE_PROVIDER = "sim-scooters"
# Server pings every second, so a client test sees several within its run.
KEEPALIVE_SECONDS = 1.0
_PAGES = Path(__file__).parent / "pages"


@dataclass
class MovingFleet:
    """``count`` scooters on a ring around ``centre``; each move shifts every third vehicle
    (a different third each time) by ``step_m`` metres north. Positions are rounded to 7
    decimals, as a feed would publish them."""

    centre: tuple[float, float]
    count: int = 24
    step_m: float = 40.0
    moves: int = 0
    _offsets: dict[str, float] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return [f"scoot-{i:03d}" for i in range(self.count)]

    def positions(self) -> dict[str, tuple[float, float]]:
        lat0, lon0 = self.centre
        out: dict[str, tuple[float, float]] = {}
        for i, vehicle_id in enumerate(self.ids()):
            angle = 2 * math.pi * i / self.count
            radius_m = 60.0 + 10.0 * (i % 7)
            north = radius_m * math.sin(angle) + self._offsets.get(vehicle_id, 0.0)
            east = radius_m * math.cos(angle)
            lat = lat0 + north / 111_320.0
            lon = lon0 + east / (111_320.0 * math.cos(math.radians(lat0)))
            out[vehicle_id] = (round(lat, 7), round(lon, 7))
        return out

    def move(self) -> list[str]:
        moved = [v for i, v in enumerate(self.ids()) if i % 3 == self.moves % 3]
        for vehicle_id in moved:
            self._offsets[vehicle_id] = self._offsets.get(vehicle_id, 0.0) + self.step_m
        self.moves += 1
        return moved

    def documents(self, base_url: str) -> dict[str, Any]:
        def envelope(data: dict[str, Any]) -> dict[str, Any]:
            return {"last_updated": 1_700_000_000, "ttl": 0, "version": "2.3", "data": data}

        feeds = ["system_information", "vehicle_types", "free_bike_status"]
        return {
            "gbfs": envelope(
                {"en": {"feeds": [{"name": f, "url": f"{base_url}/live/{f}.json"} for f in feeds]}}
            ),
            "system_information": envelope(
                {
                    "system_id": LIVE_PROVIDER,
                    "language": "en",
                    "name": "Live Scooters",
                    "timezone": "Europe/Berlin",
                }
            ),
            "vehicle_types": envelope(
                {
                    "vehicle_types": [
                        {
                            "vehicle_type_id": "kick",
                            "form_factor": "scooter_standing",
                            "propulsion_type": "electric",
                            "max_range_meters": 30_000,
                            "name": "Kick scooter",
                        }
                    ]
                }
            ),
        }

    def free_bike_status(self) -> dict[str, Any]:
        bikes = [
            {
                "bike_id": vehicle_id,
                "lat": lat,
                "lon": lon,
                "is_reserved": False,
                "is_disabled": False,
                "vehicle_type_id": "kick",
                "current_range_meters": 20_000,
            }
            for vehicle_id, (lat, lon) in self.positions().items()
        ]
        return {"last_updated": 1_700_000_000, "ttl": 0, "version": "2.3", "data": {"bikes": bikes}}


@dataclass
class LiveApi:
    runtime: Runtime
    fleet: MovingFleet
    api_url: str
    control_url: str
    bookable_vehicle_ids: list[str]
    # Where the simulator put each bookable vehicle, from the simulator (the web app test's
    # oracle for what the map must draw).
    bookable_positions: dict[str, tuple[float, float]]
    port: int
    log: Path
    extra_env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    _restart_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def cors_allowed_origin(self) -> str:
        return self.control_url

    @property
    def cors_refused_origin(self) -> str:
        # The same server under another host name is another origin to a browser.
        return self.control_url.replace("127.0.0.1", "localhost")

    def info(self) -> dict[str, Any]:
        lat, lon = self.fleet.centre
        return {
            "apiUrl": self.api_url,
            "wsUrl": self.api_url.replace("http://", "ws://") + "/graphql",
            "centre": {"lat": lat, "lon": lon},
            "liveProvider": LIVE_PROVIDER,
            "liveVehicleIds": [f"{LIVE_PROVIDER}:{v}" for v in self.fleet.ids()],
            "bookableProvider": BOOKABLE_PROVIDER,
            "bookableVehicleIds": self.bookable_vehicle_ids,
            # Positions as the operators published them (the feed, the simulator), not the API.
            "livePositions": {
                f"{LIVE_PROVIDER}:{v}": {"lat": p[0], "lon": p[1]}
                for v, p in self.fleet.positions().items()
            },
            "bookablePositions": {
                v: {"lat": p[0], "lon": p[1]} for v, p in self.bookable_positions.items()
            },
            "keepAliveSeconds": KEEPALIVE_SECONDS,
            "corsAllowedOrigin": self.cors_allowed_origin,
            "corsRefusedOrigin": self.cors_refused_origin,
        }

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port), "--no-sync"],
            env=process_env(self.runtime.settings, **self.extra_env),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process)
            self.process = None

    async def wait_until_up(self) -> None:
        async with httpx.AsyncClient(base_url=self.api_url, timeout=5) as client:

            async def up() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get("/health")).status_code == 200
                return False

            await wait_for(up, 60, "the API process", [self.log])

    async def restart(self) -> None:
        async with self._restart_lock:
            self.stop()
            self.start()
            await self.wait_until_up()

    async def move_and_sync(self) -> dict[str, Any]:
        before = self.fleet.positions()
        moved = self.fleet.move()
        after = self.fleet.positions()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            "sync",
            LIVE_PROVIDER,
            env=process_env(self.runtime.settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"mobility sync failed:\n{output.decode(errors='replace')}")
        return {
            "moved": [f"{LIVE_PROVIDER}:{v}" for v in moved],
            "before": {f"{LIVE_PROVIDER}:{k}": list(p) for k, p in before.items()},
            "after": {f"{LIVE_PROVIDER}:{k}": list(p) for k, p in after.items()},
        }


def _control_app(live: LiveApi) -> Starlette:
    async def info(request: Request) -> Response:
        return JSONResponse(live.info())

    async def move(request: Request) -> Response:
        return JSONResponse(await live.move_and_sync())

    async def restart(request: Request) -> Response:
        await live.restart()
        return JSONResponse({"restarted": True})

    async def page(request: Request) -> Response:
        name = request.path_params["name"]
        pages = {p.name: p for p in _PAGES.glob("*.html")}
        if name not in pages:
            return Response(status_code=404)
        return HTMLResponse(pages[name].read_text())

    return Starlette(
        routes=[
            Route("/info", info),
            Route("/move", move, methods=["POST"]),
            Route("/restart", restart, methods=["POST"]),
            Route("/pages/{name}", page),
        ]
    )


@asynccontextmanager
async def live_api(runtime: Runtime, log: Path, **extra_env: str) -> AsyncIterator[LiveApi]:
    """The whole set-up, torn down on exit (the API process killed, the servers stopped)."""
    feeds = FeedServer()
    control_port = free_port()
    control_url = f"http://127.0.0.1:{control_port}"
    async with (
        serve_in_background(feeds.app) as feeds_url,
        bookable_operator(runtime, BOOKABLE_PROVIDER) as (sim, _),
    ):
        lat, lon = sim.vehicles[0].lat, sim.vehicles[0].lon
        fleet = MovingFleet(centre=(lat, lon))
        for name, document in fleet.documents(feeds_url).items():
            feeds.add_dynamic(f"/live/{name}.json", lambda d=document: d)  # type: ignore[misc]
        feeds.add_dynamic("/live/free_bike_status.json", fleet.free_bike_status)
        async with transaction(runtime.sessions) as session:
            await register_provider(
                session,
                slug=LIVE_PROVIDER,
                name="Live Scooters",
                adapter="gbfs",
                config={"discovery_url": f"{feeds_url}/live/gbfs.json"},
            )
        report = await runtime.sync.sync(LIVE_PROVIDER)
        assert report.ok, report.error
        live = LiveApi(
            runtime=runtime,
            fleet=fleet,
            api_url="",
            control_url=control_url,
            bookable_vehicle_ids=[f"{BOOKABLE_PROVIDER}:{v.vehicle_id}" for v in sim.vehicles],
            bookable_positions={
                f"{BOOKABLE_PROVIDER}:{v.vehicle_id}": (v.lat, v.lon) for v in sim.vehicles
            },
            port=free_port(),
            log=log,
            extra_env={
                "MOBILITY_WS_KEEPALIVE_SECONDS": str(KEEPALIVE_SECONDS),
                "MOBILITY_CORS_ORIGINS": control_url,
                **extra_env,
            },
        )
        live.api_url = f"http://127.0.0.1:{live.port}"
        async with serve_in_background(_control_app(live), port=control_port):
            live.start()
            try:
                await live.wait_until_up()
                yield live
            finally:
                live.stop()


__all__ = ["BOOKABLE_PROVIDER", "LIVE_PROVIDER", "LiveApi", "MovingFleet", "live_api"]
