"""Collecting a snapshot's findings without flooding the validation report.

A real feed repeats the same deviation on every record (840 scooters with ``0``/``1``
booleans), so warnings are *tallied*: one finding per (code, feed, description), with the count
and a few example ids. Errors (skipped records) stay individual, because the ids of skipped records
are what an operator needs to fix them, up to a cap per (code, feed); past the cap one summary
error finding carries the remaining count, so a completely broken feed stays readable too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.dto import Finding, Severity

MAX_INDIVIDUAL_ERRORS = 20
_EXAMPLE_IDS = 3


@dataclass(slots=True)
class _Tally:
    severity: Severity
    code: str
    feed: str
    description: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def finding(self) -> Finding:
        if self.severity == "error":
            # Only ever the overflow of individually reported errors.
            shown = ", ".join(self.examples)
            return Finding(
                "error",
                self.code,
                self.feed,
                f"{self.count} more record(s) skipped: {self.description} (e.g. {shown})"
                if shown
                else f"{self.count} more record(s) skipped: {self.description}",
            )
        if self.count == 1:
            record_id = self.examples[0] if self.examples else None
            return Finding("warning", self.code, self.feed, self.description, record_id)
        suffix = f"; e.g. {', '.join(self.examples)}" if self.examples else ""
        return Finding(
            "warning", self.code, self.feed, f"{self.description} ({self.count} times{suffix})"
        )


class FindingCollector:
    """Accumulates findings in first-seen order; :meth:`findings` renders them."""

    def __init__(self, max_individual_errors: int = MAX_INDIVIDUAL_ERRORS) -> None:
        self._max_errors = max_individual_errors
        # Either a finished Finding (individual error) or a tally rendered at the end.
        self._items: list[Finding | _Tally] = []
        self._tallies: dict[tuple[Severity, str, str, str], _Tally] = {}
        self._error_counts: dict[tuple[str, str], int] = {}

    def error(self, code: str, feed: str, message: str, record_id: str | None = None) -> None:
        """A record was skipped (or a document could not be used)."""
        key = (code, feed)
        seen = self._error_counts.get(key, 0)
        self._error_counts[key] = seen + 1
        if seen < self._max_errors:
            self._items.append(Finding("error", code, feed, message, record_id))
            return
        tally = self._tally("error", code, feed, "same reason as the errors above")
        tally.count += 1
        if record_id is not None and len(tally.examples) < _EXAMPLE_IDS:
            tally.examples.append(record_id)

    def warn(self, code: str, feed: str, description: str, record_id: str | None = None) -> None:
        """An accepted deviation. Keep ``description`` free of per-record values so it tallies."""
        tally = self._tally("warning", code, feed, description)
        tally.count += 1
        if record_id is not None and len(tally.examples) < _EXAMPLE_IDS:
            tally.examples.append(record_id)

    def summary(self, code: str, feed: str, message: str, record_id: str | None = None) -> None:
        """One warning that already carries its own count (e.g. the vehicles that reference one
        unknown type id): kept as written, never tallied with others."""
        self._items.append(Finding("warning", code, feed, message, record_id))

    def findings(self) -> list[Finding]:
        return [item if isinstance(item, Finding) else item.finding() for item in self._items]

    def _tally(self, severity: Severity, code: str, feed: str, description: str) -> _Tally:
        key = (severity, code, feed, description)
        tally = self._tallies.get(key)
        if tally is None:
            tally = _Tally(severity, code, feed, description)
            self._tallies[key] = tally
            self._items.append(tally)
        return tally
