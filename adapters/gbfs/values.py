"""Lenient reading of single GBFS values, one feed at a time.

Real feeds break the schema in small ways that still carry meaning: booleans as ``0``/``1`` or
``"true"``, numbers as strings, ids as integers, POSIX-or-RFC 3339 timestamps (with a space for
the ``T``), sentinel timestamps, localized arrays where a plain string is expected. A
:class:`Reader` accepts those and tallies a warning for each; a value that cannot be understood
raises :class:`RecordSkipped`, which the record loops turn into an ``error`` finding.
Also here: :func:`records` (main-array iteration with id, duplicate and shape checks),
:func:`parse_records` (each of those records parsed; one that cannot be is skipped) and
:func:`coordinates` (range-checked lat/lon), shared by every per-file reader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from adapters.base import AdapterError
from adapters.dto import RentalUris
from adapters.gbfs.findings import FindingCollector
from adapters.money import to_minor_units_exact
from adapters.uris import safe_link

T = TypeVar("T")

# Before 2015-12-15 no GBFS feed existed (schema `minimum`); such values are placeholders.
SENTINEL_BEFORE = 1450155600
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")


class RecordSkipped(Exception):
    """The current record cannot be understood; ``code`` is the error finding's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LanguagePicker:
    """Resolves a v3 ``Array<Localized String>`` to one text.

    Order: the preferred language, then ``system_information.languages[0]``, then the first
    element. Tags match exactly (case-insensitive) first, then by primary subtag (``nb`` ~
    ``nb-NO``).
    """

    def __init__(self, preferred: str, system_languages: Sequence[str] = ()) -> None:
        self.preferred = preferred
        self.system_languages = list(system_languages)
        self.order = [preferred, *self.system_languages[:1]]

    @property
    def chosen(self) -> str:
        """The language texts resolve to when every listed language is translated (v3 MUST)."""
        for tag in self.system_languages:
            if tag.lower() == self.preferred.lower():
                return tag
        primary = self.preferred.split("-")[0].lower()
        for tag in self.system_languages:
            if tag.split("-")[0].lower() == primary:
                return tag
        return self.system_languages[0] if self.system_languages else self.preferred

    def pick(self, items: Sequence[Mapping[str, object]]) -> str | None:
        usable: list[tuple[str, str]] = []
        for item in items:
            text = item.get("text")
            if isinstance(text, str):
                usable.append((str(item.get("language") or ""), text))
        if not usable:
            return None
        for wanted in self.order:
            for language, text in usable:
                if language.lower() == wanted.lower():
                    return text
            primary = wanted.split("-")[0].lower()
            for language, text in usable:
                if language.split("-")[0].lower() == primary:
                    return text
        return usable[0][1]


class Reader:
    """Coerces the values of one feed, reporting every accepted deviation to ``findings``.

    Methods return None for an absent value (JSON ``null`` or missing key) and raise
    :class:`RecordSkipped` for a value that cannot be read. Wrap optional fields in
    :meth:`optional` so a bad optional value is dropped with a warning instead.
    """

    def __init__(
        self, findings: FindingCollector, feed: str, *, major: int, languages: LanguagePicker
    ) -> None:
        self.findings = findings
        self.feed = feed
        self.major = major
        self.languages = languages

    def warn(self, code: str, description: str, record_id: str | None) -> None:
        self.findings.warn(code, self.feed, description, record_id)

    def error(self, code: str, message: str, record_id: str | None) -> None:
        self.findings.error(code, self.feed, message, record_id)

    # --- combinators -------------------------------------------------------------------------

    def optional(
        self,
        read: Callable[[object, str, str | None], T | None],
        raw: object,
        field: str,
        record_id: str | None,
    ) -> T | None:
        """``read(raw)``, or None with an INVALID_OPTIONAL_FIELD warning if it is unreadable."""
        try:
            return read(raw, field, record_id)
        except RecordSkipped:
            self.warn("INVALID_OPTIONAL_FIELD", f"{field}: unreadable value dropped", record_id)
            return None

    def optional_field(
        self,
        read: Callable[[object, str, str | None], T | None],
        record: Mapping[str, object],
        field: str,
        record_id: str | None,
    ) -> T | None:
        """:meth:`optional` over the record's ``field``."""
        return self.optional(read, record.get(field), field, record_id)

    @staticmethod
    def require(value: T | None, field: str) -> T:
        if value is None:
            raise RecordSkipped("MISSING_FIELD", f"required field `{field}` is missing")
        return value

    def defaulted(self, value: T | None, default: T, field: str, record_id: str | None) -> T:
        """A missing required value with a safe default: use it, warn FIELD_DEFAULTED."""
        if value is None:
            self.warn("FIELD_DEFAULTED", f"required `{field}` missing, used {default!r}", record_id)
            return default
        return value

    # --- scalar readers ----------------------------------------------------------------------

    def boolean(self, raw: object, field: str, record_id: str | None) -> bool | None:
        if raw is None or isinstance(raw, bool):
            return raw
        if isinstance(raw, int | float) and raw in (0, 1):
            self.warn("COERCED_BOOLEAN", f"{field}: boolean sent as 0/1", record_id)
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            self.warn("COERCED_BOOLEAN", f"{field}: boolean sent as a string", record_id)
            return raw.strip().lower() in _TRUE
        raise RecordSkipped("INVALID_FIELD", f"`{field}` is not a boolean: {raw!r:.40}")

    def number(self, raw: object, field: str, record_id: str | None) -> float | None:
        if raw is None:
            return None
        if isinstance(raw, bool):
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is a boolean, not a number")
        value: float
        if isinstance(raw, int | float):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                raise RecordSkipped(
                    "INVALID_FIELD", f"`{field}` is not a number: {raw!r:.40}"
                ) from None
            self.warn("COERCED_NUMBER", f"{field}: number sent as a string", record_id)
        else:
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is not a number: {raw!r:.40}")
        if not math.isfinite(value):
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is not finite: {raw!r:.40}")
        return value

    def integer(self, raw: object, field: str, record_id: str | None) -> int | None:
        value = self.number(raw, field, record_id)
        if value is None:
            return None
        if not value.is_integer():
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is not an integer: {raw!r:.40}")
        if isinstance(raw, float):
            self.warn("COERCED_NUMBER", f"{field}: integer sent as a float", record_id)
        return int(value)

    def non_negative(self, raw: object, field: str, record_id: str | None) -> float | None:
        value = self.number(raw, field, record_id)
        if value is not None and value < 0:
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is negative: {raw!r:.40}")
        return value

    def count(self, raw: object, field: str, record_id: str | None) -> int | None:
        value = self.integer(raw, field, record_id)
        if value is not None and value < 0:
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is negative: {raw!r:.40}")
        return value

    def text(self, raw: object, field: str, record_id: str | None) -> str | None:
        if isinstance(raw, str):
            return self._without_nul(raw, field, record_id)
        if raw is None:
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            self.warn("COERCED_STRING", f"{field}: sent as a number, not a string", record_id)
            return str(raw)
        raise RecordSkipped("INVALID_FIELD", f"`{field}` is not a string: {raw!r:.40}")

    def _without_nul(self, value: str, field: str, record_id: str | None) -> str:
        # PostgreSQL text and jsonb cannot hold NUL: one such character would fail the whole
        # merge, so it is dropped here, at the vendor boundary, and reported.
        if "\x00" not in value:
            return value
        self.warn("NUL_CHARACTER_REMOVED", f"{field}: NUL character(s) removed", record_id)
        return value.replace("\x00", "")

    def ident(self, raw: object, field: str, record_id: str | None) -> str | None:
        value = self.text(raw, field, record_id)
        if value is not None and not value.strip():
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is empty")
        return value

    def localized(self, raw: object, field: str, record_id: str | None) -> str | None:
        """A v3 localized array or a v1/v2 plain string, resolved to one text."""
        if raw is None:
            return None
        if isinstance(raw, str):
            if self.major >= 3:
                self.warn(
                    "LOCALIZED_STRING_SHAPE", f"{field}: plain string in a v3 feed", record_id
                )
            return self._without_nul(raw, field, record_id)
        if isinstance(raw, list):
            if self.major < 3:
                self.warn(
                    "LOCALIZED_STRING_SHAPE", f"{field}: localized array in a v1/v2 feed", record_id
                )
            text = self.languages.pick([item for item in raw if isinstance(item, Mapping)])
            if text is None and raw:
                raise RecordSkipped("INVALID_FIELD", f"`{field}` has no usable localized text")
            return self._without_nul(text, field, record_id) if text is not None else None
        raise RecordSkipped("INVALID_FIELD", f"`{field}` is not a string: {raw!r:.40}")

    def money(self, raw: object, field: str, record_id: str | None, currency: str) -> int | None:
        """A major-unit amount (negative allowed) in minor units of ``currency``."""
        if raw is None:
            return None
        if isinstance(raw, str):
            self.warn("COERCED_NUMBER", f"{field}: number sent as a string", record_id)
        elif isinstance(raw, bool) or not isinstance(raw, int | float):
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is not a number: {raw!r:.40}")
        try:
            value, rounded = to_minor_units_exact(raw, currency)
        except ValueError as exc:
            raise RecordSkipped("INVALID_FIELD", f"`{field}`: {exc}") from None
        if rounded:
            self.warn(
                "PRICE_ROUNDED",
                f"{field}: more decimals than {currency} minor units, rounded half-up",
                record_id,
            )
        return value

    def timestamp(self, raw: object, field: str, record_id: str | None) -> datetime | None:
        """POSIX seconds (v1/v2) or RFC 3339 (v3), either accepted in any version; UTC out.

        Values before 2015-12-15 are placeholders (``86400`` is seen in real feeds): None.
        """
        if raw is None:
            return None
        if isinstance(raw, bool):
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is a boolean, not a timestamp")
        moment: datetime
        if isinstance(raw, int | float):
            if self.major >= 3:
                self.warn("TIMESTAMP_TYPE", f"{field}: POSIX number in a v3 feed", record_id)
            if not math.isfinite(raw) or raw < SENTINEL_BEFORE:
                self._sentinel(field, record_id)
                return None
            try:
                moment = datetime.fromtimestamp(raw, UTC)
            except (OverflowError, OSError, ValueError):
                raise RecordSkipped(
                    "INVALID_FIELD", f"`{field}` is out of range: {raw!r}"
                ) from None
            return moment
        if not isinstance(raw, str):
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is not a timestamp: {raw!r:.40}")
        text = raw.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            self.warn("TIMESTAMP_TYPE", f"{field}: POSIX seconds sent as a string", record_id)
            return self.timestamp(float(text), field, record_id)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise RecordSkipped(
                "INVALID_FIELD", f"`{field}` is not a timestamp: {raw!r:.40}"
            ) from None
        if self.major < 3:
            self.warn("TIMESTAMP_TYPE", f"{field}: date-time string in a v1/v2 feed", record_id)
        if not _RFC3339.match(text):
            # e.g. Check Almere's "2025-05-21 07:47:43.124370+00:00"
            self.warn("TIMESTAMP_NOT_RFC3339", f"{field}: not strict RFC 3339, parsed", record_id)
        if moment.tzinfo is None:
            self.warn("TIMESTAMP_NO_OFFSET", f"{field}: no UTC offset, assumed UTC", record_id)
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        if moment.timestamp() < SENTINEL_BEFORE:
            self._sentinel(field, record_id)
            return None
        return moment

    def _sentinel(self, field: str, record_id: str | None) -> None:
        self.warn(
            "SENTINEL_TIMESTAMP", f"{field}: placeholder before 2015-12-15, unknown", record_id
        )

    def rental_uris(self, raw: object, field: str, record_id: str | None) -> RentalUris | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is not an object")
        uris = {
            key: self.optional(self.link, raw.get(key), f"{field}.{key}", record_id)
            for key in ("android", "ios", "web")
        }
        if not any(uris.values()):
            return None
        return RentalUris(android=uris["android"], ios=uris["ios"], web=uris["web"])

    def link(self, raw: object, field: str, record_id: str | None) -> str | None:
        """A text that reaches riders' apps as a link (adapters/uris.py): a script or
        local-data scheme, or a malformed link, is dropped and reported."""
        value = self.text(raw, field, record_id)
        if value is None or safe_link(value) is not None:
            return value
        self.warn("UNSAFE_URI", f"{field}: not an http(s) or app link, dropped", record_id)
        return None

    def id_list(self, raw: object, field: str, record_id: str | None) -> tuple[str, ...] | None:
        """An array of ids; a single id string is accepted as a one-element array."""
        if raw is None:
            return None
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            self.warn("COERCED_ARRAY", f"{field}: single id instead of an array", record_id)
            raw = [raw]
        if not isinstance(raw, list):
            raise RecordSkipped("INVALID_FIELD", f"`{field}` is not an array")
        ids: list[str] = []
        for item in raw:
            value = self.ident(item, field, record_id)
            if value is not None and value not in ids:
                ids.append(value)
        return tuple(ids)


def records(
    data: Mapping[str, Any],
    array_keys: Sequence[str],
    id_keys: Sequence[str],
    reader: Reader,
    accepted: Container[str],
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(id, record)`` for each usable object of a feed's main array.

    The first of ``array_keys`` / ``id_keys`` is the name for the feed's version (``vehicles`` /
    ``vehicle_id`` in v3); a later one (``bikes`` / ``bike_id``) is accepted with a warning.
    A missing main array fails the whole document (AdapterError), because treating it as empty
    would delete every record of the provider. Non-objects, records without an id, and ids already
    in ``accepted`` (the caller adds the ids it keeps: duplicates keep the first) are skipped
    with an error finding, or a warning when the record repeats the first one exactly (nothing
    is lost: myBuxi lists a station twice, byte for byte).
    """
    array: object = None
    for position, key in enumerate(array_keys):
        if isinstance(data.get(key), list):
            array = data[key]
            if position:
                reader.warn("FIELD_VERSION_MISMATCH", f"array `{key}` used", None)
            break
    if not isinstance(array, list):
        wanted = " or ".join(f"`{key}`" for key in array_keys)
        raise AdapterError(f"{reader.feed}: no {wanted} array in `data`", feed=reader.feed)
    first: dict[str, Mapping[str, Any]] = {}  # the first record yielded for each id
    for index, raw in enumerate(array):
        position_id = f"{array_keys[0]}[{index}]"
        if not isinstance(raw, Mapping):
            reader.error("INVALID_RECORD", "record is not an object", position_id)
            continue
        key = next((k for k in id_keys if raw.get(k) is not None), id_keys[0])
        try:
            record_id = reader.ident(raw.get(key), key, position_id)
        except RecordSkipped as skipped:
            reader.error("MISSING_ID", skipped.message, position_id)
            continue
        if record_id is None:
            reader.error("MISSING_ID", f"record has no `{id_keys[0]}`", position_id)
            continue
        if key != id_keys[0]:
            reader.warn("FIELD_VERSION_MISMATCH", f"id field `{key}` used", record_id)
        if record_id in accepted:
            if first.get(record_id) == raw:
                reader.warn("DUPLICATE_RECORD", "record repeated exactly: one kept", record_id)
            else:
                reader.error("DUPLICATE_ID", f"duplicate id {record_id!r}: first kept", record_id)
            continue
        first.setdefault(record_id, raw)
        yield record_id, raw


def parse_records(
    data: Mapping[str, Any],
    array_keys: Sequence[str],
    id_keys: Sequence[str],
    reader: Reader,
    what: str,
    parse: Callable[[str, Mapping[str, Any]], T],
) -> list[T]:
    """Each usable record of a feed's main array (:func:`records`) through ``parse``, in feed
    order; a record ``parse`` refuses (:class:`RecordSkipped`) is an error finding ``{what}
    skipped: ...`` and left out, and its id stays free for a later record."""
    kept: dict[str, T] = {}
    for record_id, raw in records(data, array_keys, id_keys, reader, kept):
        try:
            kept[record_id] = parse(record_id, raw)
        except RecordSkipped as skipped:
            reader.error(skipped.code, f"{what} skipped: {skipped.message}", record_id)
    return list(kept.values())


def coordinates(
    reader: Reader, raw_lat: object, raw_lon: object, record_id: str
) -> tuple[float, float] | None:
    """``(lat, lon)``; None when absent (or the ``0, 0`` no-fix placeholder).

    Non-numeric or out-of-range values raise RecordSkipped(COORDINATES_INVALID).
    """
    if raw_lat is None or raw_lon is None:
        return None
    try:
        lat = reader.number(raw_lat, "lat", record_id)
        lon = reader.number(raw_lon, "lon", record_id)
    except RecordSkipped as skipped:
        raise RecordSkipped("COORDINATES_INVALID", skipped.message) from None
    if lat is None or lon is None:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise RecordSkipped("COORDINATES_INVALID", f"lat/lon out of range: {lat}, {lon}")
    if lat == 0 and lon == 0:
        # Trackers without a GPS fix report 0,0 ("Null Island", in the Gulf of Guinea).
        reader.warn("COORDINATES_ZERO", "lat/lon 0,0 treated as unknown", record_id)
        return None
    return lat, lon
