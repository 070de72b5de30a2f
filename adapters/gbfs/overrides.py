"""A provider's overrides: what a deployment adds to or corrects in an operator's GBFS feed.

Modelled on Lamassu's feed-provider configuration, and given as the adapter config's
``"overrides"`` object (see docs/adapters.md)::

    {"vehicle_types": [<GBFS vehicle_type objects>],
     "pricing_plans": [<GBFS plan objects>],
     "vehicle_type_map": {"<operator's type id>": "<type id to use>"},
     "pricing_plan_map": {"<operator's plan id>": "<plan id to use>"},
     "exclude_feeds": ["geofencing_zones", ...]}

Supplied types and plans are read by the same parser as feed documents (GBFS 3.0 field names;
``name`` and ``description`` may be plain strings), strictly: a record the parser would skip, or
any value it would have to coerce or drop, refuses the whole configuration at registration with
:class:`AdapterConfigError`, rather than surprising the first sync.

Precedence, decided in :func:`adapters.gbfs.parse.parse_snapshot`: the feed's own record wins
when both have the same id (an override written once must not silently outlive the operator's
fix; the shadowed override is reported), and a deployment that wants to replace an operator's
type says so explicitly by mapping the operator's id to a supplied type of its own id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.base import AdapterConfigError
from adapters.dto import PricingPlan, VehicleType
from adapters.gbfs.catalog import parse_pricing_plans, parse_vehicle_types
from adapters.gbfs.documents import USED_FEEDS
from adapters.gbfs.findings import FindingCollector
from adapters.gbfs.values import LanguagePicker, Reader

__all__ = ["OVERRIDES_FEED", "FeedOverrides", "parse_overrides"]

# Findings about the overrides carry this name where a GBFS file name would be.
OVERRIDES_FEED = "overrides"
_KEYS = ("vehicle_types", "pricing_plans", "vehicle_type_map", "pricing_plan_map", "exclude_feeds")
# What a supplied record may leave out without being refused: names need no localization
# (one deployment, one language), and a supplier may not know a range.
_ACCEPTED_WARNINGS = frozenset({"LOCALIZED_STRING_SHAPE", "MISSING_MAX_RANGE"})
# A system without system_information has no name, time zone or languages: every sync would
# report it as an error, so excluding it is refused rather than degrading the provider for good.
_NEVER_EXCLUDED = frozenset({"system_information"})


@dataclass(frozen=True, slots=True)
class FeedOverrides:
    vehicle_types: tuple[VehicleType, ...] = ()
    pricing_plans: tuple[PricingPlan, ...] = ()
    vehicle_type_map: Mapping[str, str] = field(default_factory=dict)
    pricing_plan_map: Mapping[str, str] = field(default_factory=dict)
    exclude_feeds: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(
            self.vehicle_types
            or self.pricing_plans
            or self.vehicle_type_map
            or self.pricing_plan_map
            or self.exclude_feeds
        )


class _AnyPlan:
    """Supplied types may name plans the feed publishes: resolved at sync, not here."""

    def __contains__(self, item: object) -> bool:
        return True


def parse_overrides(raw: object, *, language: str = "en") -> FeedOverrides:
    """Validate and parse the ``overrides`` object; :class:`AdapterConfigError` says what is wrong.

    ``language`` resolves localized names of supplied records (the provider's language).
    """
    if not isinstance(raw, Mapping):
        raise AdapterConfigError("gbfs: `overrides` must be an object")
    unknown = sorted(str(key) for key in raw if key not in _KEYS)
    if unknown:
        raise AdapterConfigError(
            f"gbfs: unknown override(s) {', '.join(unknown)} (known: {', '.join(_KEYS)})"
        )
    picker = LanguagePicker(language)
    plans = _supplied(raw.get("pricing_plans"), "pricing_plans", picker)
    types = _supplied(raw.get("vehicle_types"), "vehicle_types", picker)
    return FeedOverrides(
        vehicle_types=tuple(t for t in types if isinstance(t, VehicleType)),
        pricing_plans=tuple(p for p in plans if isinstance(p, PricingPlan)),
        vehicle_type_map=_id_map(raw.get("vehicle_type_map"), "vehicle_type_map"),
        pricing_plan_map=_id_map(raw.get("pricing_plan_map"), "pricing_plan_map"),
        exclude_feeds=_excluded(raw.get("exclude_feeds")),
    )


def _supplied(
    raw: object, section: str, picker: LanguagePicker
) -> list[VehicleType] | list[PricingPlan]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise AdapterConfigError(f"gbfs: `overrides.{section}` must be a non-empty array")
    findings = FindingCollector()
    reader = Reader(findings, OVERRIDES_FEED, major=3, languages=picker)
    parsed: list[VehicleType] | list[PricingPlan]
    if section == "vehicle_types":
        parsed = parse_vehicle_types({"vehicle_types": raw}, reader, _AnyPlan())
    else:
        parsed = parse_pricing_plans({"plans": raw}, reader)
    problems = [
        f"{f.record_id}: {f.message}" if f.record_id else f.message
        for f in findings.findings()
        if f.severity == "error" or f.code not in _ACCEPTED_WARNINGS
    ]
    if problems:
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        shown = "; ".join(problems[:5]) + more
        raise AdapterConfigError(f"gbfs: `overrides.{section}`: {shown}")
    return parsed


def _id_map(raw: object, name: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not raw:
        raise AdapterConfigError(f"gbfs: `overrides.{name}` must be a non-empty object")
    mapping: dict[str, str] = {}
    for source, target in raw.items():
        if not (_is_id(source) and _is_id(target)):
            raise AdapterConfigError(
                f"gbfs: `overrides.{name}` maps ids to ids (non-empty strings), "
                f"got {source!r:.40}: {target!r:.40}"
            )
        if source == target:
            raise AdapterConfigError(f"gbfs: `overrides.{name}` maps {source!r} to itself")
        mapping[source] = target
    # Maps apply once; a chain would read as if it applied twice.
    chained = sorted(target for target in mapping.values() if target in mapping)
    if chained:
        raise AdapterConfigError(
            f"gbfs: `overrides.{name}` maps to {', '.join(map(repr, chained))}, which it also "
            "maps: give each operator id its final target"
        )
    return mapping


def _excluded(raw: object) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise AdapterConfigError("gbfs: `overrides.exclude_feeds` must be an array of file names")
    names = list(_unique(raw, "exclude_feeds"))
    unknown = sorted(name for name in names if name not in USED_FEEDS)
    if unknown:
        raise AdapterConfigError(
            f"gbfs: `overrides.exclude_feeds`: {', '.join(unknown)} is not a file this adapter "
            f"reads (it reads {', '.join(USED_FEEDS)})"
        )
    never = sorted(_NEVER_EXCLUDED & set(names))
    if never:
        raise AdapterConfigError(
            f"gbfs: `overrides.exclude_feeds`: {', '.join(never)} cannot be excluded "
            "(it names the system, its time zone and languages)"
        )
    return frozenset(names)


def _unique(names: list[str], name: str) -> Iterator[str]:
    seen: set[str] = set()
    for item in names:
        if item in seen:
            raise AdapterConfigError(f"gbfs: `overrides.{name}` lists {item!r} twice")
        seen.add(item)
        yield item


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
