"""Progress lines on stderr: a live counter on a terminal, a line per tenth when piped."""

from __future__ import annotations

import sys
import time
from types import TracebackType


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Progress:
    """``with Progress("copying vehicles", total) as p: p.advance(n)``."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self._started = time.perf_counter()
        self._tty = sys.stderr.isatty()
        self._last_draw = 0.0
        self._last_tenth = -1
        self._last_printed = -1

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.done = min(self.done, self.total)
            self._draw(force=True, final=True)
        elif self._tty:
            sys.stderr.write("\n")

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def advance(self, n: int) -> None:
        self.done += n
        self._draw()

    def _line(self) -> str:
        rate = self.done / self.elapsed if self.elapsed > 0 else 0.0
        percent = 100.0 * self.done / self.total
        return (
            f"[bench] {self.label}: {self.done:,}/{self.total:,} ({percent:5.1f}%) "
            f"{rate:,.0f}/s {self.elapsed:6.1f}s"
        )

    def _draw(self, *, force: bool = False, final: bool = False) -> None:
        now = time.perf_counter()
        if self._tty:
            # Redraw at most ten times a second: the counter is advanced per batch, but a
            # terminal write per call would still be wasted work on small batches.
            if force or now - self._last_draw >= 0.1:
                sys.stderr.write("\r" + self._line() + ("\n" if final else ""))
                sys.stderr.flush()
                self._last_draw = now
            return
        tenth = 10 * self.done // self.total
        if tenth > self._last_tenth or (final and self.done != self._last_printed):
            self._last_tenth = tenth
            self._last_printed = self.done
            print(self._line(), file=sys.stderr, flush=True)
