"""What the transit tests share: the real feeds' paths, their rows counted with plain ``csv``
(never through the reader under test), small zips built from text, and a clean slate of the
transit tables."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from sqlalchemy import text

from app.runtime import Runtime
from tests.conftest import require_conformance


def real_feed(name: str) -> Path:
    paths = {
        "caltrain": "transit/gtfs/caltrain/ct.zip",
        "cairns": "transit/gtfs/cairns-sunbus/cairns_gtfs.zip",
    }
    return require_conformance() / paths[name]


def raw_rows(path: Path | bytes, member: str) -> list[dict[str, str]]:
    """A member of the zip as dictionaries, read with the csv module alone."""
    source = io.BytesIO(path) if isinstance(path, bytes) else path
    with zipfile.ZipFile(source) as archive:
        if member not in archive.namelist():
            return []
        data = archive.read(member).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(data)))


def raw_counts(path: Path | bytes, *, frequencies: bool = True) -> dict[str, int]:
    """Rows per file, counted with plain csv: what a clean feed loads."""
    files = {
        "agencies": "agency.txt",
        "stops": "stops.txt",
        "routes": "routes.txt",
        "trips": "trips.txt",
        "stop_times": "stop_times.txt",
        "calendars": "calendar.txt",
        "calendar_dates": "calendar_dates.txt",
    }
    if frequencies:
        files["frequencies"] = "frequencies.txt"
    return {key: len(raw_rows(path, member)) for key, member in files.items()}


def make_zip(files: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return out.getvalue()


def rewrite_zip(path: Path, changes: dict[str, str]) -> bytes:
    """The zip with some members replaced (the others copied as they are)."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in changes:
                dst.writestr(info.filename, changes[info.filename])
            else:
                dst.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


def to_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# A tiny valid feed in Oslo: three stops in a line, one weekday trip.
BASE: dict[str, str] = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
    "A,Agency,https://a.example,Europe/Oslo\n",
    "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n"
    "S1,One,59.9100,10.7500\nS2,Two,59.9120,10.7500\nS3,Three,59.9200,10.7500\n",
    "routes.txt": "route_id,agency_id,route_short_name,route_long_name,route_type\n"
    "R1,A,1,Line one,3\n",
    "trips.txt": "route_id,service_id,trip_id\nR1,WK,T1\n",
    "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
    "T1,08:00:00,08:00:00,S1,1\nT1,08:05:00,08:05:00,S2,2\nT1,08:10:00,08:10:00,S3,3\n",
    "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,"
    "start_date,end_date\nWK,1,1,1,1,1,0,0,20240101,20241231\n",
}


async def clear_transit(runtime: Runtime) -> None:
    async with runtime.engine.begin() as conn:
        # transit_stop_times has no foreign key to its version: truncated by name.
        await conn.execute(text("TRUNCATE transit_feeds, transit_stop_times CASCADE"))
