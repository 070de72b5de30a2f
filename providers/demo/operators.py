"""The three demo operators (slugs, names, GBFS versions, feed paths), where they are, the epoch.

The epoch is the clock of every demo document: ``epoch = int(now // EPOCH_SECONDS)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from geo.areas import BBox

EPOCH_SECONDS: Final = 30

#: Alexanderplatz.
CENTRE: Final[tuple[float, float]] = (52.5219, 13.4132)


#: Central Berlin (Mitte, Prenzlauer Berg, Friedrichshain, Kreuzberg): every demo point is inside.
BERLIN_BOX: Final = BBox(min_lat=52.48, min_lon=13.34, max_lat=52.56, max_lon=13.49)


@dataclass(frozen=True)
class DemoProvider:
    slug: str
    name: str
    #: GBFS feed name -> URL path on the feed server; includes ``gbfs`` (the discovery file).
    feed_paths: dict[str, str]
    gbfs_version: str = "3.0"

    @property
    def discovery_path(self) -> str:
        return self.feed_paths["gbfs"]


def _feed_paths(slug: str, feeds: tuple[str, ...]) -> dict[str, str]:
    return {feed: f"/{slug}/{feed}.json" for feed in feeds}


CARS: Final = "demo-cars"
SCOOTERS: Final = "demo-scooters"
BIKES: Final = "demo-bikes"

DEMO_PROVIDERS: Final[tuple[DemoProvider, ...]] = (
    DemoProvider(
        slug=CARS,
        name="Demo CarShare",
        gbfs_version="3.0",
        feed_paths=_feed_paths(
            CARS,
            (
                "gbfs",
                "system_information",
                "vehicle_types",
                "vehicle_status",
                "system_pricing_plans",
                "geofencing_zones",
            ),
        ),
    ),
    DemoProvider(
        slug=SCOOTERS,
        name="Demo Scoot",
        gbfs_version="2.3",
        feed_paths=_feed_paths(
            SCOOTERS,
            (
                "gbfs",
                "system_information",
                "vehicle_types",
                "free_bike_status",
                "system_pricing_plans",
                "geofencing_zones",
            ),
        ),
    ),
    DemoProvider(
        slug=BIKES,
        name="Demo Bikes",
        gbfs_version="3.0",
        feed_paths=_feed_paths(
            BIKES,
            (
                "gbfs",
                "system_information",
                "vehicle_types",
                "station_information",
                "station_status",
                "vehicle_status",
                "system_pricing_plans",
            ),
        ),
    ),
)


def epoch_of(now: float) -> int:
    return int(now // EPOCH_SECONDS)
