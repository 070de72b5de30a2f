"""Logs: the format of every line a process writes to stderr, and the level.

Read by app/cli.py (app/platform/logs.py ``configure_logging``) for every command; what each
field of a line means is docs/operations-logs.md.
"""

from __future__ import annotations

from typing import Literal

from app.platform.settings.base import MobilityBaseSettings

LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class LogSettings(MobilityBaseSettings):
    # "json": one JSON object per line, for a log pipeline; "text": one escaped line per record
    # for a person at a terminal. Unset: json for the long-running processes (serve, worker,
    # scheduler), text for the one-shot commands, whose lines a person reads.
    log_format: LogFormat | None = None
    # Unset: INFO for the long-running processes (access lines, operator calls, webhook
    # deliveries, sync outcomes), WARNING for the one-shot commands (their output is stdout).
    log_level: LogLevel | None = None
