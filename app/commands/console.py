"""What every command writes to the terminal: a line on stdout, flushed at once (scripts and
tests read it while the process runs), progress lines, and an error on stderr with the exit
code it returns."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["fail", "progress", "say"]


def say(message: str = "") -> None:
    print(message, flush=True)


def progress(prefix: str) -> Callable[[str], None]:
    return lambda message: say(f"{prefix}: {message}")


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code
