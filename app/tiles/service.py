"""Drawing a tile for one caller: its filters checked, the search's visibility rule applied
inside the statement (other organisations' private fleets left out, stale providers' vehicles
hidden, disabled providers never shown), one statement on the search's read-only pool.

A tile query waits for one of ``tiles_max_concurrent`` slots of the process before it takes a
connection (app/admission.py), so a burst of map requests queues instead of taking every
connection the search needs.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import asyncpg

from app.admission import slots
from app.platform.errors import DomainError, InvalidInput, NotFound
from app.platform.settings import Settings
from app.platform.vocabulary import FormFactor, PropulsionType
from app.search import repository
from app.search.service import SearchService
from app.tiles.grid import MAX_MERCATOR_LAT, TileAddress
from app.tiles.layers import (
    LAYERS,
    Statement,
    cluster_statement,
    point_statement,
    zone_statement,
)
from app.vehicle import VehicleFilter

__all__ = ["TILES", "TileQuery", "TileService", "TilesBusy", "UnknownLayer"]

TILES = "vector-tiles"  # the admission slots' kind
# How long a layer's bounds (TileJSON) are kept per process: they move as slowly as a city.
_BOUNDS_TTL_SECONDS = 60.0
Bounds = tuple[float, float, float, float]
_WORLD: Bounds = (-180.0, -MAX_MERCATOR_LAT, 180.0, MAX_MERCATOR_LAT)

# The query parameters each layer takes; anything else is refused (a misspelt filter must not
# pass silently as no filter).
_PARAMETERS: dict[str, frozenset[str]] = {
    "vehicles": frozenset({"form_factors", "propulsion_types", "providers", "min_range_meters"}),
    "stations": frozenset({"providers"}),
    "zones": frozenset({"providers"}),
}


class UnknownLayer(NotFound):
    code = "UNKNOWN_LAYER"


class TilesBusy(DomainError):
    """Every tile slot of the process stayed taken for longer than a map can wait, or a tile
    took too long to draw: try again in a moment (HTTP 503 with Retry-After)."""

    code = "TILES_BUSY"


_MAX_PROVIDERS = 50
_MAX_PROVIDER_ID = 64
_WHOLE_METRES = re.compile(r"[0-9]{1,7}")


def _words(raw: str, name: str, allowed: type[FormFactor] | type[PropulsionType]) -> frozenset[str]:
    values = frozenset(v.strip() for v in raw.split(",") if v.strip())
    known = {a.value for a in allowed}
    unknown = sorted(values - known)
    if unknown or not values:
        raise InvalidInput(
            f"{name} takes a comma-separated list of {', '.join(sorted(known))}"
            + (f"; not {', '.join(unknown)}" if unknown else ""),
            code="INVALID_FILTER",
        )
    return values


@dataclass(frozen=True, slots=True)
class TileQuery:
    """A tile request's filters, from its query string (docs/tiles.md)."""

    layer: str
    form_factors: frozenset[str] | None = None
    propulsion_types: frozenset[str] | None = None
    providers: tuple[str, ...] | None = None
    min_range_meters: float | None = None

    @classmethod
    def parse(cls, layer: str, params: Mapping[str, str]) -> TileQuery:
        if layer not in LAYERS:
            raise UnknownLayer(f"no layer {layer!r}: the layers are {', '.join(LAYERS)}")
        stray = sorted(set(params) - _PARAMETERS[layer])
        if stray:
            raise InvalidInput(
                f"the {layer} layer takes {', '.join(sorted(_PARAMETERS[layer]))}; "
                f"not {', '.join(stray)}",
                code="INVALID_FILTER",
            )
        providers = None
        if "providers" in params:
            providers = tuple(sorted({p.strip() for p in params["providers"].split(",")} - {""}))
            if not providers or len(providers) > _MAX_PROVIDERS:
                raise InvalidInput(
                    f"providers takes 1 to {_MAX_PROVIDERS} provider ids, comma-separated",
                    code="INVALID_FILTER",
                )
            if any(len(p) > _MAX_PROVIDER_ID for p in providers):
                raise InvalidInput("a provider id is at most 64 characters", code="INVALID_FILTER")
        min_range = None
        if "min_range_meters" in params:
            # Whole metres up to 1,000 km: a map filters by range in steps anyone can read, and
            # a float would make every request a new tile to draw.
            raw = params["min_range_meters"]
            if not _WHOLE_METRES.fullmatch(raw) or int(raw) > 1_000_000:
                raise InvalidInput(
                    "min_range_meters is whole metres, 0 to 1000000", code="INVALID_FILTER"
                )
            min_range = float(int(raw))
        return cls(
            layer=layer,
            form_factors=_words(params["form_factors"], "form_factors", FormFactor)
            if "form_factors" in params
            else None,
            propulsion_types=_words(params["propulsion_types"], "propulsion_types", PropulsionType)
            if "propulsion_types" in params
            else None,
            providers=providers,
            min_range_meters=min_range,
        )


Conditions = Callable[[Callable[[Any], str]], list[str]]
# (filters, tile, providers hidden from the caller, providers servable now)
TileKey = tuple[TileQuery, TileAddress, frozenset[str], frozenset[str]]
# Tiles kept per process, newest kept: a few MB at a few KB a tile.
_CACHE_ENTRIES = 2_000


class TileService:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, search: SearchService) -> None:
        self.settings = settings
        self.pool = pool
        self.search = search
        self._bounds: dict[tuple[str, frozenset[str]], tuple[float, Bounds]] = {}
        # Cluster and zone tiles drawn in the last few seconds, and those being drawn now (one
        # statement for every request of the same tile at once): the low zooms are few tiles
        # over many rows, and every viewer of a city asks for the same ones.
        self._cache: OrderedDict[TileKey, tuple[float, bytes]] = OrderedDict()
        self._drawing: dict[TileKey, asyncio.Future[bytes]] = {}

    async def tile(
        self,
        query: TileQuery,
        tile: TileAddress,
        viewer_orgs: frozenset[uuid.UUID] = frozenset(),
    ) -> bytes:
        """The tile as Mapbox Vector Tile bytes (empty when nothing visible is in it)."""
        conditions, hidden = await self._conditions(query, viewer_orgs)  # checks the filters
        if tile.z < self.settings.tiles_min_zoom:
            return b""  # a continent of vehicles is not a map anyone rides from
        table = query.layer
        if table != "zones":
            points_from = (
                self.settings.tiles_vehicle_points_from_zoom
                if table == "vehicles"
                else self.settings.tiles_station_points_from_zoom
            )
            if tile.z >= points_from:
                points = LAYERS[table][0]
                cap = self.settings.tiles_max_points
                st = Statement()
                sql = point_statement(table, points, tile, conditions(st.bind), st, cap)
                row = await self._run(sql, st, one_row=True)
                if row["features"] <= cap:
                    return bytes(row["tile"] or b"")
                # Too dense to draw every point: the same rows, counted per cell.

        async def draw() -> bytes:
            st = Statement()
            if table == "zones":
                sql = zone_statement(tile, conditions(st.bind), st)
            else:
                sql = cluster_statement(table, LAYERS[table][1], tile, conditions(st.bind), st)
            return bytes(await self._run(sql, st) or b"")

        ttl = self.settings.tiles_cluster_cache_seconds
        if ttl <= 0:
            return await draw()
        # Who may see what is part of the key, the very set the statement hides: another
        # caller's private fleet never comes out of the cache; nor does a provider gone stale.
        key = (query, tile, hidden, await self.search.servable_providers())
        return await self._cached(key, ttl, draw)

    async def _cached(
        self, key: TileKey, ttl: float, draw: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return cached[1]
        while (drawing := self._drawing.get(key)) is not None:
            try:
                return await asyncio.shield(drawing)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not drawing.cancelled() or (task is not None and task.cancelling()):
                    raise  # this request was cancelled, not (only) the drawing
                # The request drawing it went away (its client did): draw it here.
            except Exception:
                pass
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._drawing[key] = future
        try:
            body = await draw()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            # Waiters draw for themselves (each with its own error, if it fails again).
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no waiter
            raise
        finally:
            del self._drawing[key]
        future.set_result(body)
        self._cache[key] = (time.monotonic(), body)
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return body

    async def bounds(
        self, query: TileQuery, viewer_orgs: frozenset[uuid.UUID] = frozenset()
    ) -> Bounds:
        """(west, south, east, north) of what the caller may see of the layer, filters aside
        (the whole map when it is empty), for TileJSON; kept a minute per process and per
        visibility, so that varying a filter never costs a scan of the table."""
        plain = TileQuery(layer=query.layer)
        conditions, hidden = await self._conditions(plain, viewer_orgs)
        key = (query.layer, hidden)
        now = time.monotonic()
        cached = self._bounds.get(key)
        if cached is not None and now - cached[0] < _BOUNDS_TTL_SECONDS:
            return cached[1]
        st = Statement()
        table = "geofencing_zones" if query.layer == "zones" else query.layer
        alias = "z" if query.layer == "zones" else "v"
        sql = (
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            f"(SELECT ST_Extent({alias}.geom) AS e FROM {table} {alias} "
            f"WHERE {' AND '.join(['true', *conditions(st.bind)])}) s"
        )
        row = await self._run(sql, st, one_row=True)
        found: Bounds = _WORLD if row[0] is None else (row[0], row[1], row[2], row[3])
        if len(self._bounds) > 1_000:  # bounded: one entry per layer and visibility seen
            self._bounds.clear()
        self._bounds[key] = (now, found)
        return found

    async def _conditions(
        self, query: TileQuery, viewer_orgs: frozenset[uuid.UUID]
    ) -> tuple[Conditions, frozenset[str]]:
        """The layer's WHERE clauses for this caller, to bind into a statement, and the
        providers they hide from it: the search's own visibility rule and filter for vehicles;
        for stations and zones, enabled providers only (a stale provider's stations stay where
        they were, as in search), and not another organisation's private fleet."""
        providers = await self.search.validate_providers(query.providers, viewer_orgs)
        if query.layer == "vehicles":
            flt = await self.search.visible(
                VehicleFilter(
                    form_factors=query.form_factors,
                    propulsion_types=query.propulsion_types,
                    providers=providers,
                    min_range_meters=query.min_range_meters,
                ),
                viewer_orgs,
            )
            return (
                lambda bind: [repository.provider_condition(flt, bind), *flt.sql_clauses(bind)],
                flt.hidden_providers,
            )
        alias = "z" if query.layer == "zones" else "v"
        hidden = await self.search.hidden_providers(viewer_orgs)

        def shown(bind: Callable[[Any], str]) -> list[str]:
            clauses = [f"{alias}.provider_id = ANY(ARRAY(SELECT id FROM providers WHERE enabled))"]
            if hidden:
                clauses.append(f"{alias}.provider_id <> ALL({bind(sorted(hidden))})")
            if providers is not None:
                clauses.append(f"{alias}.provider_id = ANY({bind(sorted(providers))})")
            return clauses

        return shown, hidden

    @overload
    async def _run(self, sql: str, st: Statement, *, one_row: Literal[True]) -> asyncpg.Record: ...

    @overload
    async def _run(self, sql: str, st: Statement) -> Any: ...

    async def _run(self, sql: str, st: Statement, *, one_row: bool = False) -> Any:
        """One statement in one of the process's tile slots: waiting for a slot, and drawing,
        each have a deadline (TILES_BUSY past it), so a flood of expensive tiles queues briefly
        and then is refused, instead of piling up behind the slots without end."""
        settings = self.settings
        slot = slots(TILES, settings.tiles_max_concurrent)
        try:
            async with asyncio.timeout(settings.tiles_slot_wait_seconds):
                await slot.acquire()
        except TimeoutError:
            raise TilesBusy("the map is busy: try again in a moment") from None
        try:
            # asyncpg cancels the statement on the server when the timeout passes.
            timeout = settings.tiles_statement_timeout_seconds
            if one_row:
                row = await self.pool.fetchrow(sql, *st.params, timeout=timeout)
                assert row is not None  # every tile statement returns one row
                return row
            return await self.pool.fetchval(sql, *st.params, timeout=timeout)
        except TimeoutError:
            raise TilesBusy("this tile took too long to draw: try again in a moment") from None
        finally:
            slot.release()
