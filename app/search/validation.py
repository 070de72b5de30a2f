"""The checks every search request goes through before it reads anything: its area, its page
size, the providers it names (which must exist and be visible to the caller)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.platform.errors import InvalidInput, UnknownProvider
from app.platform.settings import Settings
from app.search import repository
from app.search.schemas import RankedArea
from geo.areas import BBox, Near, valid_lat, valid_lon

__all__ = ["Area", "check_point", "validate_area", "validate_first", "validate_providers"]


@dataclass(frozen=True, slots=True)
class Area:
    near: Near | None
    bbox: BBox | None

    def ranked(self) -> RankedArea:
        """The point answers are ranked from and how far they may be (see RankedArea)."""
        if self.near is not None:
            near = self.near
            return RankedArea(near.lat, near.lon, near.radius_meters, None)
        if self.bbox is None:
            raise ValueError("an area without `near` or `within` has no ranking")
        lat, lon = self.bbox.centre
        # A hair past the farthest corner: the box decides membership, the reach only has to
        # hold it whole, whichever way either store rounds.
        return RankedArea(lat, lon, self.bbox.farthest_corner_meters() * 1.0001 + 1.0, self.bbox)


def check_point(lat: float, lon: float, what: str) -> None:
    if not (math.isfinite(lat) and valid_lat(lat)):
        raise InvalidInput(
            f"{what}: latitude {lat} is out of range; use a value from -90 to 90",
            code="INVALID_COORDINATES",
        )
    if not (math.isfinite(lon) and valid_lon(lon)):
        raise InvalidInput(
            f"{what}: longitude {lon} is out of range; use a value from -180 to 180",
            code="INVALID_COORDINATES",
        )


def validate_area(
    settings: Settings, near: Near | None, bbox: BBox | None, *, required: bool = True
) -> Area:
    if near is not None and bbox is not None:
        raise InvalidInput("give either `near` or `within`, not both", code="INVALID_AREA")
    if near is None and bbox is None:
        if required:
            raise InvalidInput(
                "give exactly one of `near` (a point and radius) or `within` (a bounding box)",
                code="INVALID_AREA",
            )
        return Area(None, None)
    if near is not None:
        check_point(near.lat, near.lon, "near")
        cap = settings.max_radius_meters
        if not math.isfinite(near.radius_meters) or not 0 < near.radius_meters <= cap:
            raise InvalidInput(
                f"radiusMeters must be greater than 0 and at most {cap:g}; "
                f"got {near.radius_meters:g}",
                code="INVALID_RADIUS",
            )
    if bbox is not None:
        check_point(bbox.min_lat, bbox.min_lon, "within (min corner)")
        check_point(bbox.max_lat, bbox.max_lon, "within (max corner)")
        if bbox.min_lat > bbox.max_lat or bbox.min_lon > bbox.max_lon:
            raise InvalidInput(
                "within: the bounding box is inverted; minLat must be <= maxLat and "
                "minLon <= maxLon",
                code="INVALID_BOUNDING_BOX",
            )
        span = settings.max_bbox_span_degrees
        if bbox.max_lat - bbox.min_lat > span or bbox.max_lon - bbox.min_lon > span:
            raise InvalidInput(
                f"within: the bounding box may span at most {span:g} degrees each way; "
                "zoom in or search `near` a point",
                code="INVALID_BOUNDING_BOX",
            )
    return Area(near, bbox)


def validate_first(settings: Settings, first: int | None) -> int:
    if first is None:
        return settings.default_first
    if not 0 < first <= settings.max_first:
        raise InvalidInput(
            f"first must be between 1 and {settings.max_first}; got {first}", code="INVALID_FIRST"
        )
    return first


async def validate_providers(
    session: AsyncSession,
    providers: Sequence[str] | None,
    hidden: frozenset[str] = frozenset(),
) -> frozenset[str] | None:
    """The providers a request names, all of which must exist and be visible to the caller:
    a private fleet the caller may not see (``hidden``) is refused exactly as an id that
    does not exist, so its existence is not told (DESIGN.md: visibility is one rule)."""
    if providers is None:
        return None
    wanted = frozenset(providers)
    unknown = wanted - (await repository.known_provider_ids(session) - hidden)
    if unknown:
        raise UnknownProvider(
            f"unknown provider(s): {', '.join(sorted(unknown))}; list them with `providers`"
        )
    return wanted
