"""``GET /tiles/{layer}/{z}/{x}/{y}.mvt`` and ``GET /tiles/{layer}.json``: the map as Mapbox
Vector Tiles (2.1), and a TileJSON 3.0 document per layer for MapLibre or Mapbox to load.

The same visibility as search: a request with ``Authorization: Bearer <API key or rider token>``
gets its organisations' private fleets too, an anonymous one the public ones only. Anonymous
tiles are ``Cache-Control: public``; credentialed ones ``private`` and ``Vary: Authorization``.
Every tile carries a strong ETag over its bytes (``If-None-Match`` → 304: a client re-fetches
only the tiles whose contents changed), and a short ``max-age`` (vehicles move). Refusals are
JSON ``{"error": {"code", "message"}}`` with stable codes. docs/tiles.md is the client's guide.
"""

from __future__ import annotations

import gzip
import logging
import re
import uuid

import asyncpg
import orjson
from fastapi import APIRouter, Request, Response

from app.platform.errors import DomainError
from app.rest.responses import DATABASE_DOWN, entity_tag, not_modified, refusal, status_of
from app.runtime import Runtime
from app.tiles.grid import InvalidTile, TileAddress
from app.tiles.layers import LAYERS
from app.tiles.service import TileQuery, TilesBusy

__all__ = ["MVT_MEDIA_TYPE", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/tiles", tags=["tiles"])

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
_NO_STORE = {"Cache-Control": "no-store"}
_COORDINATE = re.compile(r"[0-9]{1,8}")
# Smaller tiles are sent as they are: gzip would save nothing worth its header.
_GZIP_FROM_BYTES = 512


async def _viewer(request: Request, runtime: Runtime) -> frozenset[uuid.UUID]:
    return await runtime.identity.map_viewer(
        request.headers.get("authorization"),
        private_fleets=await runtime.search.has_private_fleets(),
    )


def _refused(exc: Exception) -> Response:
    if isinstance(exc, TilesBusy):
        return refusal(503, exc.code, exc.message, {**_NO_STORE, "Retry-After": "1"})
    if isinstance(exc, DomainError):
        return refusal(status_of(exc), exc.code, exc.message, _NO_STORE)
    if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, DATABASE_DOWN):
        # A statement that failed on data we did not expect: logged for us, not shown.
        log.error("tile statement failed: %s", exc.__class__.__name__, exc_info=exc)
        return refusal(500, "INTERNAL_ERROR", "the tile could not be drawn", _NO_STORE)
    log.warning("tiles not served: %s", exc.__class__.__name__)
    return refusal(503, "DATABASE_UNAVAILABLE", "the map could not be read; try again", _NO_STORE)


def _cache_headers(request: Request, max_age: int) -> dict[str, str]:
    vary = "Authorization, Accept-Encoding"
    if request.headers.get("authorization"):
        return {"Cache-Control": f"private, max-age={max_age}", "Vary": vary}
    return {"Cache-Control": f"public, max-age={max_age}", "Vary": vary}


@router.get("/{layer}/{z}/{x}/{y}.mvt", response_model=None)
async def tile(request: Request, layer: str, z: str, x: str, y: str) -> Response:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    try:
        query = TileQuery.parse(layer, _parameters(request))
        address = TileAddress.parse(
            _coordinate(z), _coordinate(x), _coordinate(y), max_zoom=settings.tiles_max_zoom
        )
        viewer = await _viewer(request, runtime)
        if await request.is_disconnected():
            # A map that panned on (MapLibre cancels tiles all the time) takes no slot.
            return Response(status_code=499)
        body = await runtime.tiles.tile(query, address, viewer)
    except (DomainError, asyncpg.PostgresError, *DATABASE_DOWN) as exc:
        return _refused(exc)
    headers = _cache_headers(request, settings.tiles_max_age_seconds)
    etag = entity_tag(body)
    # Gzipped for clients that take it (every browser; a street tile shrinks to a third). A
    # representation of its own: its own strong ETag (RFC 9110 §8.8.3).
    gzipped = len(body) >= _GZIP_FROM_BYTES and _accepts_gzip(request)
    if gzipped:
        etag = etag[:-1] + '-gzip"'
        headers["Content-Encoding"] = "gzip"
    headers["ETag"] = etag
    if not_modified(request.headers.get("if-none-match"), etag):
        headers.pop("Content-Encoding", None)
        return Response(status_code=304, headers=headers)
    if gzipped:
        body = gzip.compress(body, compresslevel=5, mtime=0)
    return Response(body, media_type=MVT_MEDIA_TYPE, headers=headers)


def _accepts_gzip(request: Request) -> bool:
    for coding in request.headers.get("accept-encoding", "").split(","):
        name, _, params = coding.strip().partition(";")
        if name.strip().lower() in {"gzip", "*"}:
            # "gzip;q=0" refuses it.
            return params.replace(" ", "").lower() not in {"q=0", "q=0.0", "q=0.00", "q=0.000"}
    return False


@router.get("/{layer}.json", response_model=None)
async def tilejson(request: Request, layer: str) -> Response:
    """TileJSON 3.0.0: where the layer's tiles are (with this request's filters), its zooms,
    the bounds of what the caller may see, and each MVT layer's attributes."""
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    try:
        query = TileQuery.parse(layer, _parameters(request))
        viewer = await _viewer(request, runtime)
        west, south, east, north = await runtime.tiles.bounds(query, viewer)
    except (DomainError, asyncpg.PostgresError, *DATABASE_DOWN) as exc:
        return _refused(exc)
    template = str(request.url_for("tile", layer=layer, z="0", x="0", y="0"))
    template = template.replace("/0/0/0.mvt", "/{z}/{x}/{y}.mvt")
    if request.url.query:
        template += "?" + request.url.query
    points_from = (
        settings.tiles_vehicle_points_from_zoom
        if layer == "vehicles"
        else settings.tiles_station_points_from_zoom
    )
    min_zoom = settings.tiles_min_zoom
    vector_layers = []
    for mvt_layer in LAYERS[layer]:
        clustered = mvt_layer.name.endswith("_clusters")
        vector_layers.append(
            {
                "id": mvt_layer.name,
                "description": mvt_layer.description,
                "fields": mvt_layer.fields,
                "minzoom": min_zoom if clustered or layer == "zones" else points_from,
                # A dense point tile is sent clustered at any zoom (docs/tiles.md).
                "maxzoom": settings.tiles_max_zoom,
            }
        )
    document = {
        "tilejson": "3.0.0",
        "name": layer,
        "description": f"The {layer} of the mobility API",
        "scheme": "xyz",
        "tiles": [template],
        "minzoom": min_zoom,
        "maxzoom": settings.tiles_max_zoom,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, min(13, settings.tiles_max_zoom)],
        "vector_layers": vector_layers,
    }
    return Response(
        orjson.dumps(document), media_type="application/json", headers=_cache_headers(request, 60)
    )


def _parameters(request: Request) -> dict[str, str]:
    """The query string; a parameter given more than once counts with all its values
    (``providers=a&providers=b`` is ``providers=a,b``)."""
    joined: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        joined.setdefault(key, []).append(value)
    return {key: ",".join(values) for key, values in joined.items()}


def _coordinate(raw: str) -> int:
    # ASCII digits only: FastAPI's int would take "+1", " 1" or "1_0", str.isdigit "²" or "١٢".
    if not _COORDINATE.fullmatch(raw):
        raise InvalidTile(f"{raw!r} is not a tile coordinate (a whole number from 0)")
    return int(raw)
