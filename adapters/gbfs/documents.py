"""GBFS file names, version strings, the document envelope and the discovery files.

Pure functions shared by the parser and the fetching adapter: which files we read, how a
``version`` header is normalised, what makes a document usable at all, and how ``gbfs.json``
(v1/v2 per language, v3 flat) and a v3 ``manifest.json`` are read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from adapters.base import AdapterError

# The files parse_snapshot understands. Everything else a publisher lists (gbfs_versions,
# system_hours, system_calendar, system_alerts, vehicle_availability, ...) is ignored.
USED_FEEDS: tuple[str, ...] = (
    "system_information",
    "vehicle_types",
    "system_pricing_plans",
    "system_regions",
    "station_information",
    "station_status",
    "vehicle_status",
    "free_bike_status",
    "geofencing_zones",
)
DISCOVERY_FEEDS: tuple[str, ...] = ("gbfs", "manifest")

# Every file name any GBFS version defines, so a typo in an explicit config can be told apart
# from a real but unused file.
ALL_GBFS_FEEDS: frozenset[str] = frozenset(
    {
        *USED_FEEDS,
        *DISCOVERY_FEEDS,
        "gbfs_versions",
        "system_hours",
        "system_calendar",
        "system_alerts",
        "vehicle_availability",
    }
)

SUPPORTED_MAJORS = (1, 2, 3)
DEFAULT_VERSION = "1.0"  # what the official validator assumes when `version` is absent

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:[-.].*)?$")
_LANGUAGE_KEY = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


def normalize_version(raw: object) -> tuple[str, bool]:
    """``(version, had_v_prefix)``: ``"v2.3"`` → ``("2.3", True)``; absent → ``("1.0", False)``."""
    if raw is None:
        return DEFAULT_VERSION, False
    text = str(raw).strip()
    if text[:1] in ("v", "V"):
        return text[1:], True
    return text, False


def version_tuple(version: str) -> tuple[int, int] | None:
    """``"3.1-RC3"`` → ``(3, 1)``; None when it is not ``X.Y``-shaped."""
    match = _VERSION.match(version)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def document_data(name: str, document: object, url: str | None = None) -> Mapping[str, Any]:
    """The ``data`` object of a GBFS document; AdapterError when the document is unusable."""
    if not isinstance(document, Mapping):
        raise AdapterError(
            f"{name}: expected a JSON object, got {type(document).__name__}", feed=name, url=url
        )
    data = document.get("data")
    if not isinstance(data, Mapping):
        raise AdapterError(f"{name}: document has no `data` object", feed=name, url=url)
    return data


def is_http_url(url: object) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _language_rank(key: str, preferred: str) -> int:
    if key.lower() == preferred.lower():
        return 0
    if key.split("-")[0].lower() == preferred.split("-")[0].lower():
        return 1
    return 2


def discovery_feeds(
    gbfs_document: object, *, preferred_language: str, base_url: str | None = None
) -> dict[str, str]:
    """``{feed name: absolute URL}`` from a ``gbfs.json`` of any version.

    v1/v2 nest the feed list under language keys: take the preferred language (exact, then same
    primary subtag), else the first key. v3 has ``data.feeds`` directly. Relative URLs are
    resolved against ``base_url``. The first entry wins when a name is listed twice.
    """
    data = document_data("gbfs", gbfs_document, base_url)
    feeds_raw: object = data.get("feeds")
    if feeds_raw is None:
        languages = [key for key in data if _LANGUAGE_KEY.match(key)]
        if not languages:
            raise AdapterError("gbfs: no `feeds` list and no language key", feed="gbfs")
        # sorted() is stable, so among equal ranks the publisher's first key wins.
        chosen = sorted(languages, key=lambda k: _language_rank(k, preferred_language))[0]
        entry = data[chosen]
        feeds_raw = entry.get("feeds") if isinstance(entry, Mapping) else None
    if not isinstance(feeds_raw, list):
        raise AdapterError("gbfs: `feeds` is not a list", feed="gbfs", url=base_url)
    feeds: dict[str, str] = {}
    for item in feeds_raw:
        if not isinstance(item, Mapping):
            continue
        name, url = item.get("name"), item.get("url")
        if not isinstance(name, str) or not isinstance(url, str) or name in feeds:
            continue
        feeds[name] = urljoin(base_url, url) if base_url else url
    return feeds


def manifest_gbfs_url(
    manifest_document: object, *, system_id: str | None, base_url: str | None = None
) -> tuple[str, str]:
    """``(gbfs.json URL, version)`` for one dataset of a v3 ``manifest.json``.

    The dataset is the one whose ``system_id`` matches, or the only one. Its highest version this
    adapter supports wins (the spec orders versions, but we do not rely on it).
    """
    data = document_data("manifest", manifest_document, base_url)
    datasets = [d for d in data.get("datasets") or [] if isinstance(d, Mapping)]
    ids = [str(d.get("system_id")) for d in datasets]
    if system_id is not None:
        matching = [d for d in datasets if d.get("system_id") == system_id]
        if not matching:
            raise AdapterError(
                f"manifest: no dataset with system_id {system_id!r} (has: {', '.join(ids)})",
                feed="manifest",
                url=base_url,
            )
        dataset = matching[0]
    elif len(datasets) == 1:
        dataset = datasets[0]
    else:
        raise AdapterError(
            f"manifest lists {len(datasets)} datasets ({', '.join(ids)}): set `system_id`",
            feed="manifest",
            url=base_url,
        )
    best: tuple[tuple[int, int], str, str] | None = None
    for entry in dataset.get("versions") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str):
            continue
        version, _ = normalize_version(entry.get("version"))
        parsed = version_tuple(version)
        if parsed is None or parsed[0] not in SUPPORTED_MAJORS:
            continue
        if best is None or parsed > best[0]:
            best = (parsed, version, str(entry["url"]))
    if best is None:
        raise AdapterError(
            f"manifest: dataset {dataset.get('system_id')!r} has no supported version",
            feed="manifest",
            url=base_url,
        )
    url = urljoin(base_url, best[2]) if base_url else best[2]
    return url, best[1]


def is_manifest(document: object) -> bool:
    return (
        isinstance(document, Mapping)
        and isinstance(document.get("data"), Mapping)
        and "datasets" in document["data"]
    )


class _Repeats(dict[str, Any]):
    """An object whose source repeated some keys (``json`` keeps the last value, as orjson)."""

    repeated: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for key, _ in pairs:
        counts[key] = counts.get(key, 0) + 1
    repeated = tuple(key for key, n in counts.items() if n > 1)
    if not repeated:
        return dict(pairs)
    obj = _Repeats(pairs)
    obj.repeated = repeated
    return obj


def duplicate_keys(body: bytes) -> list[str]:
    """JSON paths (``data.rental_apps.android``) of keys an object of ``body`` repeats.

    Parsing keeps only the last value of a repeated key, silently: Cooltra's system_information
    names two apps under one ``rental_apps.android``. Reparses ``body`` with the standard
    library, so callers keep it to small documents. Unreadable bodies have none.
    """
    try:
        document = json.loads(body, object_pairs_hook=_pairs)
    except ValueError:
        return []
    found: list[str] = []

    def walk(node: object, path: str) -> None:
        if isinstance(node, _Repeats):
            found.extend(f"{path}.{key}" if path else key for key in node.repeated)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    walk(document, "")
    return found
