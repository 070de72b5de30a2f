"""Reference data: ``system_pricing_plans``, ``vehicle_types`` and ``system_regions``.

Prices become integer minor units (``adapters.money``, ROUND_HALF_UP, a warning when rounding was
needed). A plan with an unreadable segment is skipped as a whole: dropping one segment would
quote the customer a lower price than the operator charges. The deprecated ``scooter`` form
factor maps to ``scooter_standing`` (raw value kept). When a feed publishes no
``vehicle_types``, the spec says every vehicle is a non-motorised bicycle: :func:`default_type`.
A reference to a type the feed does not describe keeps its record under
:func:`adapters.dto.placeholder_vehicle_type`; an operator's plan ids can be redirected
(``plan_map``, from the provider's overrides) before they are resolved.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from adapters.dto import (
    FormFactor,
    PricingPlan,
    PricingSegment,
    PropulsionType,
    Region,
    VehicleType,
)
from adapters.gbfs.values import Reader, RecordSkipped, parse_records

# Synthesized when there is no vehicle_types feed; GBFS ids never need to look like this one,
# and it is only ever used for a feed that has no type ids of its own.
DEFAULT_VEHICLE_TYPE_ID = "default-bicycle"
RETURN_CONSTRAINTS = frozenset({"free_floating", "roundtrip_station", "any_station", "hybrid"})
_FORM_FACTORS = {member.value: member for member in FormFactor}
_PROPULSION = {member.value: member for member in PropulsionType}
_DEPRECATED_FORM_FACTORS = {"scooter": FormFactor.SCOOTER_STANDING}


def default_type() -> VehicleType:
    return VehicleType(
        external_id=DEFAULT_VEHICLE_TYPE_ID,
        form_factor=FormFactor.BICYCLE,
        propulsion_type=PropulsionType.HUMAN,
    )


# --- pricing plans ---------------------------------------------------------------------------


def parse_pricing_plans(data: Mapping[str, Any], reader: Reader) -> list[PricingPlan]:
    return parse_records(
        data,
        ("plans",),
        ("plan_id",),
        reader,
        "pricing plan",
        lambda plan_id, raw: _plan(plan_id, raw, reader),
    )


def _currency(raw: object, reader: Reader, plan_id: str) -> str:
    text = reader.require(reader.text(raw, "currency", plan_id), "currency")
    code = text.strip().upper()
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise RecordSkipped("INVALID_FIELD", f"`currency` is not an ISO 4217 code: {text!r:.20}")
    if code != text:
        reader.warn("COERCED_STRING", "currency: not an upper-case ISO 4217 code", plan_id)
    return code


def _plan(plan_id: str, raw: Mapping[str, Any], reader: Reader) -> PricingPlan:
    currency = _currency(raw.get("currency"), reader, plan_id)
    price = reader.require(reader.money(raw.get("price"), "price", plan_id, currency), "price")
    if price < 0:
        raise RecordSkipped("INVALID_FIELD", "`price` is negative")
    name = reader.localized(raw.get("name"), "name", plan_id)
    return PricingPlan(
        external_id=plan_id,
        name=reader.defaulted(name, plan_id, "name", plan_id),
        currency=currency,
        price_minor=price,
        is_taxable=reader.defaulted(
            reader.boolean(raw.get("is_taxable"), "is_taxable", plan_id),
            False,
            "is_taxable",
            plan_id,
        ),
        description=reader.optional_field(reader.localized, raw, "description", plan_id),
        per_km_pricing=_segments(
            raw.get("per_km_pricing"), "per_km_pricing", reader, plan_id, currency
        ),
        per_min_pricing=_segments(
            raw.get("per_min_pricing"), "per_min_pricing", reader, plan_id, currency
        ),
        surge_pricing=bool(reader.optional_field(reader.boolean, raw, "surge_pricing", plan_id)),
        url=reader.optional_field(reader.link, raw, "url", plan_id),
    )


def _segments(
    raw: object, field: str, reader: Reader, plan_id: str, currency: str
) -> tuple[PricingSegment, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RecordSkipped("INVALID_FIELD", f"`{field}` is not an array")
    segments: list[PricingSegment] = []
    for index, item in enumerate(raw):
        name = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise RecordSkipped("INVALID_FIELD", f"`{name}` is not an object")
        start = reader.require(reader.count(item.get("start"), f"{name}.start", plan_id), "start")
        interval = reader.require(
            reader.count(item.get("interval"), f"{name}.interval", plan_id), f"{name}.interval"
        )
        rate = reader.require(
            reader.money(item.get("rate"), f"{field}.rate", plan_id, currency), f"{name}.rate"
        )
        end = reader.count(item.get("end"), f"{name}.end", plan_id)
        if end is not None and end <= start:
            raise RecordSkipped("INVALID_FIELD", f"`{name}` ends before it starts")
        segments.append(PricingSegment(start=start, rate_minor=rate, interval=interval, end=end))
    return tuple(segments)


# --- vehicle types ---------------------------------------------------------------------------


def parse_vehicle_types(
    data: Mapping[str, Any],
    reader: Reader,
    plan_ids: Container[str],
    plan_map: Mapping[str, str] | None = None,
) -> list[VehicleType]:
    """``plan_map`` redirects an operator's plan ids to others (the provider's overrides)."""
    return parse_records(
        data,
        ("vehicle_types",),
        ("vehicle_type_id",),
        reader,
        "vehicle type",
        lambda type_id, raw: _vehicle_type(type_id, raw, reader, plan_ids, plan_map or {}),
    )


def _enum_text(raw: object, field: str, reader: Reader, type_id: str) -> str:
    text = reader.require(reader.text(raw, field, type_id), field)
    value = text.strip().lower()
    if value != text:
        reader.warn("COERCED_STRING", f"{field}: enum value not in lower case", type_id)
    return value


def _form_factor(raw: object, reader: Reader, type_id: str) -> tuple[FormFactor, str | None]:
    """The canonical form factor and, when it is not the feed's own value, the raw value."""
    value = _enum_text(raw, "form_factor", reader, type_id)
    if value in _FORM_FACTORS:
        return _FORM_FACTORS[value], None
    if value in _DEPRECATED_FORM_FACTORS:
        reader.warn(
            "DEPRECATED_FORM_FACTOR", f"form_factor {value!r} mapped to scooter_standing", type_id
        )
        return _DEPRECATED_FORM_FACTORS[value], value
    reader.warn("UNKNOWN_FORM_FACTOR", "unknown form_factor mapped to other", type_id)
    return FormFactor.OTHER, value


def _vehicle_type(
    type_id: str,
    raw: Mapping[str, Any],
    reader: Reader,
    plan_ids: Container[str],
    plan_map: Mapping[str, str],
) -> VehicleType:
    form_factor, raw_form_factor = _form_factor(raw.get("form_factor"), reader, type_id)
    propulsion_text = _enum_text(raw.get("propulsion_type"), "propulsion_type", reader, type_id)
    propulsion = _PROPULSION.get(propulsion_text)
    if propulsion is None:
        # No canonical "other" propulsion exists; guessing would mislabel range and emissions.
        raise RecordSkipped("INVALID_FIELD", f"unknown propulsion_type {propulsion_text!r:.30}")
    max_range = reader.optional_field(reader.non_negative, raw, "max_range_meters", type_id)
    if max_range == 0 and propulsion is not PropulsionType.HUMAN:
        # A motor with no range at all is a placeholder, not a fact (myBuxi's minibus sends
        # it): stored as 0, it would hide the type from every range filter.
        reader.warn("MAX_RANGE_ZERO", "motorised type with max_range_meters 0: unknown", type_id)
        max_range = None
    elif max_range is None and propulsion is not PropulsionType.HUMAN:
        reader.warn("MISSING_MAX_RANGE", "motorised type without max_range_meters", type_id)
    default_plan = reader.optional_field(reader.ident, raw, "default_pricing_plan_id", type_id)
    if default_plan is not None:
        default_plan = plan_map.get(default_plan, default_plan)
    if default_plan is not None and default_plan not in plan_ids:
        reader.warn(
            "UNKNOWN_PRICING_PLAN", "default_pricing_plan_id not in plans, dropped", type_id
        )
        default_plan = None
    plan_list = reader.optional_field(reader.id_list, raw, "pricing_plan_ids", type_id)
    mapped_plans = tuple(dict.fromkeys(plan_map.get(plan, plan) for plan in plan_list or ()))
    known_plans = tuple(plan for plan in mapped_plans if plan in plan_ids)
    if len(known_plans) != len(mapped_plans):
        reader.warn("UNKNOWN_PRICING_PLAN", "pricing_plan_ids not in plans, dropped", type_id)
    return_constraint = reader.optional_field(reader.text, raw, "return_constraint", type_id)
    if return_constraint is not None and return_constraint not in RETURN_CONSTRAINTS:
        reader.warn("UNKNOWN_ENUM", "unknown return_constraint kept as sent", type_id)
    return VehicleType(
        external_id=type_id,
        form_factor=form_factor,
        propulsion_type=propulsion,
        name=reader.optional_field(reader.localized, raw, "name", type_id),
        max_range_meters=max_range,
        rider_capacity=reader.optional_field(reader.count, raw, "rider_capacity", type_id),
        default_pricing_plan_id=default_plan,
        pricing_plan_ids=known_plans,
        return_constraint=return_constraint,
        co2_grams_per_km=reader.optional_field(reader.non_negative, raw, "g_CO2_km", type_id),
        default_reserve_time_minutes=reader.optional_field(
            reader.count, raw, "default_reserve_time", type_id
        ),
        raw_form_factor=raw_form_factor,
    )


# --- regions ---------------------------------------------------------------------------------


def parse_regions(data: Mapping[str, Any], reader: Reader) -> list[Region]:
    def region(region_id: str, raw: Mapping[str, Any]) -> Region:
        name = reader.localized(raw.get("name"), "name", region_id)
        return Region(region_id, reader.defaulted(name, region_id, "name", region_id))

    return parse_records(data, ("regions",), ("region_id",), reader, "region", region)
