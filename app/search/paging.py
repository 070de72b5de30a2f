"""Pages of a vehicle search: the cursor format and the page as the service returns it.

Search order is (distance, id) from the query's point (docs/search.md), so a page ends at a
position in that order and the next page is a keyset read: what sorts after it. The cursor
carries that position, bound to the query it came from:

    base64url(JSON {"v": 1, "q": <query fingerprint>, "d": <distance in mm>, "id": <vehicle id>})

- ``v``: the format's version; another version is refused, never guessed at.
- ``q``: a hash of the query's area and filter as the client gave them (not the caller, not
  the visibility rules, not ``first``): a cursor of another query is refused.
- ``d``: the last vehicle's distance in whole millimetres, exactly as search ranks by it
  (geo.distance.ranking_meters), so equal distances compare equal on the next page.
- ``id``: the last vehicle's id, the tie-breaker.

The cursor is opaque to clients but not secret, and not signed: it grants nothing (the next
page is the query's own answer after that position, with the caller's visibility applied), so
a forged one can only ask for a position the client could have asked for by paging. Every
field is checked; anything malformed is ``INVALID_CURSOR``, never an internal error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from app.platform.errors import InvalidInput
from app.search.schemas import PagePosition, VehicleFilter, VehicleHit
from geo.areas import BBox, Near

CURSOR_VERSION = 1
INVALID_CURSOR = "INVALID_CURSOR"
# Far above any real cursor (a distance, a provider-scoped id), low enough that a huge
# argument is refused before anything decodes it.
_MAX_CURSOR_CHARS = 2_048
_MAX_ID_CHARS = 512
# Millimetres: more than any distance on Earth, and exact in a double.
_MAX_DISTANCE_MM = 10**11


@dataclass(frozen=True, slots=True)
class VehiclePage:
    """Up to ``first`` hits in search order, whether more follow, and the fingerprint their
    cursors are bound to."""

    hits: list[VehicleHit]
    has_next_page: bool
    fingerprint: str


def query_fingerprint(near: Near | None, bbox: BBox | None, flt: VehicleFilter) -> str:
    """A short hash of what the client asked: the area and its filter. The service's own
    additions to the filter (hidden private fleets, freshness) are left out on purpose: they
    depend on the caller and the moment, not on the query."""

    if near is not None:
        area: list[Any] = ["near", float(near.lat), float(near.lon), float(near.radius_meters)]
    elif bbox is not None:
        area = [
            "within",
            float(bbox.min_lat),
            float(bbox.min_lon),
            float(bbox.max_lat),
            float(bbox.max_lon),
        ]
    else:
        raise ValueError("a page needs an area")
    canonical = orjson.dumps(
        [
            "vehicles",
            area,
            *flt.fingerprint_parts(),
        ]
    )
    return base64.urlsafe_b64encode(hashlib.blake2b(canonical, digest_size=9).digest()).decode()


def encode_cursor(fingerprint: str, distance_meters: float | None, vehicle_id: str) -> str:
    """The cursor of a hit of a page of the query with ``fingerprint``."""
    millimetres = round((distance_meters or 0.0) * 1000.0)
    payload = orjson.dumps(
        {"v": CURSOR_VERSION, "q": fingerprint, "d": millimetres, "id": vehicle_id}
    )
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(cursor: str, fingerprint: str) -> PagePosition:
    """The position ``cursor`` marks in the query with ``fingerprint``; InvalidInput
    (INVALID_CURSOR) for anything else."""
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise _invalid("the cursor is too long to be one of ours")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        raise _invalid("the cursor is not one of ours") from None
    if not isinstance(payload, dict) or payload.get("v") != CURSOR_VERSION:
        raise _invalid("the cursor is not one of ours, or from an older version of the API")
    if payload.get("q") != fingerprint:
        raise _invalid(
            "the cursor belongs to another query: page with the same area and filter, or "
            "start again without `after`"
        )
    millimetres, vehicle_id = payload.get("d"), payload.get("id")
    if (
        type(millimetres) is not int
        or not 0 <= millimetres <= _MAX_DISTANCE_MM
        or type(vehicle_id) is not str
        or not 0 < len(vehicle_id) <= _MAX_ID_CHARS
    ):
        raise _invalid("the cursor is not one of ours")
    # The same float ranking_meters gives for this distance: millimetres / 1000.
    return PagePosition(millimetres / 1000.0, vehicle_id)


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(f"after: {message}", code=INVALID_CURSOR)
