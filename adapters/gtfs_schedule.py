"""GTFS Schedule's names that the house both reads (`app/transit/gtfs_zip.py`) and writes (the
demo network, `providers/demo/transit.py`): one spelling of the spec where both sides need it."""

from __future__ import annotations

from typing import Final

__all__ = ["CALENDAR_WEEKDAYS"]

# calendar.txt's service-day columns, Monday first: the order of a calendar's weekday flags.
CALENDAR_WEEKDAYS: Final = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
