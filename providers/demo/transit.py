"""The demo transit network: a small GTFS feed generated around the demo operators, so
`stops(near:)`, departures and journeys that combine a shared vehicle with transit work right
after `make run`.

Three lines cross at Alexanderplatz, where the demo fleets are: an underground line west to
east, a tram north to south and a bus on the diagonal, both directions, every few minutes from
05:00 to 00:30 (past midnight: times beyond 24:00:00), written as ``frequencies.txt`` templates
(exact times) so the feed exercises that part of GTFS too. The calendar runs every day from a
month before the day it is generated to a year after, so the demo never runs out of service.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from adapters.gtfs_schedule import CALENDAR_WEEKDAYS
from geo.distance import geodesic_meters

SLUG: Final = "demo-transit"
NAME: Final = "Demo Transit"
TIMEZONE: Final = "Europe/Berlin"
HUB: Final = ("alexanderplatz", "Alexanderplatz", 52.5219, 13.4132)


@dataclass(frozen=True)
class DemoLine:
    route_id: str
    short_name: str
    long_name: str
    route_type: int  # GTFS: 0 tram, 1 underground, 3 bus
    color: str
    speed_kmh: float  # average between stops, dwell included
    headway_minutes: int
    stops: tuple[tuple[str, str, float, float], ...]  # (id, name, lat, lon), west/north first


LINES: Final[tuple[DemoLine, ...]] = (
    DemoLine(
        "U9",
        "U9",
        "Tiergarten - Alexanderplatz - Lichtenberg",
        1,
        "1E6FB9",
        32.0,
        5,
        (
            ("u9-tiergarten", "Tiergarten", 52.5145, 13.3500),
            ("u9-friedrichstr", "Friedrichstraße", 52.5200, 13.3870),
            ("u9-museumsinsel", "Museumsinsel", 52.5190, 13.4000),
            HUB,
            ("u9-strausberger", "Strausberger Platz", 52.5185, 13.4300),
            ("u9-frankfurter-tor", "Frankfurter Tor", 52.5157, 13.4540),
            ("u9-samariter", "Samariterstraße", 52.5148, 13.4650),
            ("u9-lichtenberg", "Frankfurter Allee", 52.5140, 13.4800),
        ),
    ),
    DemoLine(
        "M9",
        "M9",
        "Prenzlauer Berg - Alexanderplatz - Kreuzberg",
        0,
        "BE1414",
        17.0,
        8,
        (
            ("m9-schoenhauser", "Schönhauser Allee", 52.5490, 13.4140),
            ("m9-eberswalder", "Eberswalder Straße", 52.5410, 13.4120),
            ("m9-senefelder", "Senefelderplatz", 52.5330, 13.4125),
            ("m9-rosa-luxemburg", "Rosa-Luxemburg-Platz", 52.5270, 13.4110),
            HUB,
            ("m9-jannowitz", "Jannowitzbrücke", 52.5150, 13.4180),
            ("m9-heinrich-heine", "Heinrich-Heine-Straße", 52.5080, 13.4160),
            ("m9-moritzplatz", "Moritzplatz", 52.5035, 13.4110),
            ("m9-kottbusser", "Kottbusser Tor", 52.4990, 13.4180),
        ),
    ),
    DemoLine(
        "B42",
        "142",
        "Mauerpark - Alexanderplatz - Ostkreuz",
        3,
        "A5027D",
        15.0,
        10,
        (
            ("b42-mauerpark", "Mauerpark", 52.5430, 13.4020),
            ("b42-zionskirche", "Zionskirchplatz", 52.5350, 13.4040),
            ("b42-weinmeister", "Weinmeisterstraße", 52.5270, 13.4060),
            HUB,
            ("b42-karl-marx", "Karl-Marx-Allee", 52.5195, 13.4250),
            ("b42-ostbahnhof", "Ostbahnhof", 52.5105, 13.4350),
            ("b42-wuehlischplatz", "Wühlischplatz", 52.5070, 13.4550),
            ("b42-ostkreuz", "Ostkreuz", 52.5030, 13.4690),
        ),
    ),
)

FIRST_DEPARTURE: Final = 5 * 3600
LAST_DEPARTURE: Final = 24 * 3600 + 30 * 60  # 00:30 the next morning, on the same service day
DWELL_SECONDS: Final = 30


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _csv(rows: list[list[object]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def demo_gtfs(today: date) -> bytes:
    """The feed as a GTFS zip, its calendar around `today`."""
    stops: dict[str, list[object]] = {}
    routes: list[list[object]] = [
        [
            "route_id",
            "agency_id",
            "route_short_name",
            "route_long_name",
            "route_type",
            "route_color",
        ]
    ]
    trips: list[list[object]] = [
        ["route_id", "service_id", "trip_id", "trip_headsign", "direction_id"]
    ]
    stop_times: list[list[object]] = [
        ["trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence"]
    ]
    frequencies: list[list[object]] = [
        ["trip_id", "start_time", "end_time", "headway_secs", "exact_times"]
    ]
    for line in LINES:
        routes.append(
            [line.route_id, "demo", line.short_name, line.long_name, line.route_type, line.color]
        )
        for direction, path in enumerate((line.stops, tuple(reversed(line.stops)))):
            trip_id = f"{line.route_id}-{direction}"
            trips.append([line.route_id, "daily", trip_id, path[-1][1], direction])
            t = FIRST_DEPARTURE
            for sequence, (stop_id, name, lat, lon) in enumerate(path, 1):
                stops[stop_id] = [stop_id, name, lat, lon]
                if sequence > 1:
                    _, _, plat, plon = path[sequence - 2]
                    metres = geodesic_meters(plat, plon, lat, lon) * 1.2
                    t += round(metres / (line.speed_kmh / 3.6))
                arrival = t
                if 1 < sequence < len(path):
                    t += DWELL_SECONDS
                stop_times.append([trip_id, _hms(arrival), _hms(t), stop_id, sequence])
            frequencies.append(
                [
                    trip_id,
                    _hms(FIRST_DEPARTURE),
                    _hms(LAST_DEPARTURE),
                    line.headway_minutes * 60,
                    1,
                ]
            )
    start, end = today - timedelta(days=30), today + timedelta(days=365)
    files = {
        "agency.txt": _csv(
            [
                ["agency_id", "agency_name", "agency_url", "agency_timezone"],
                ["demo", NAME, "https://example.org/demo-transit", TIMEZONE],
            ]
        ),
        "stops.txt": _csv([["stop_id", "stop_name", "stop_lat", "stop_lon"], *stops.values()]),
        "routes.txt": _csv(routes),
        "trips.txt": _csv(trips),
        "stop_times.txt": _csv(stop_times),
        "frequencies.txt": _csv(frequencies),
        "calendar.txt": _csv(
            [
                ["service_id", *CALENDAR_WEEKDAYS, "start_date", "end_date"],
                ["daily", 1, 1, 1, 1, 1, 1, 1, start.strftime("%Y%m%d"), end.strftime("%Y%m%d")],
            ]
        ),
        "feed_info.txt": _csv(
            [
                ["feed_publisher_name", "feed_publisher_url", "feed_lang", "feed_version"],
                ["Demo", "https://example.org/demo-transit", "en", today.isoformat()],
            ]
        ),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            # A fixed timestamp: the same day's feed is the same bytes, so a second
            # `mobility demo` finds it unchanged and does not reload it.
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return buffer.getvalue()
