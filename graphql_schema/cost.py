"""A cost budget per request: aliases of an expensive field count as often as they appear.

The alias limit bounds how many fields a document may name, not what they cost: twenty aliased
``tripOptions`` (each a search of up to ``MOBILITY_MAX_FIRST`` vehicles and as many price
estimates) passed it and held the database for everyone. Each root field has a cost (1 unless
listed below); an operation whose root fields cost more than ``MOBILITY_MAX_QUERY_COST`` is
refused at validation with ``QUERY_TOO_COSTLY`` (cached with the document, so an accepted
document pays nothing per request).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

__all__ = ["DEFAULT_COST", "ROOT_FIELD_COSTS", "cost_limit"]

DEFAULT_COST = 1
ROOT_FIELD_COSTS: Mapping[str, int] = {
    "tripOptions": 10,  # a search of up to max_first vehicles, an estimate and offer each
    # Two vehicle searches, two stop searches and a RAPTOR run per first and last mile.
    "journeys": 10,
    # A PostGIS search; each stop's departures are counted apart (at most 20 per operation).
    "stops": 2,
    "usageReport": 10,  # a month of an organisation's bookings, aggregated
    "quote": 3,
    "rideEndCheck": 3,
}

# What the refusal tells the caller, from the table itself (dearest first).
_COSTS_TOLD = ", ".join(
    f"{name} {cost}" for name, cost in sorted(ROOT_FIELD_COSTS.items(), key=lambda i: (-i[1], i[0]))
)


def _root_cost(selection_set: SelectionSetNode, context: Any, seen: set[str]) -> int:
    cost = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if not selection.name.value.startswith("__"):
                cost += ROOT_FIELD_COSTS.get(selection.name.value, DEFAULT_COST)
        elif isinstance(selection, InlineFragmentNode):
            cost += _root_cost(selection.selection_set, context, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = context.get_fragment(name)
            if fragment is not None and name not in seen:  # cycles are another rule's error
                cost += _root_cost(fragment.selection_set, context, seen | {name})
    return cost


def cost_limit(max_cost: int) -> type[ValidationRule]:
    class QueryCostLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
            cost = _root_cost(node.selection_set, self.context, set())
            if cost > max_cost:
                self.report_error(
                    GraphQLError(
                        f"this operation costs {cost}, more than the {max_cost} one request may "
                        f"spend ({_COSTS_TOLD}, other fields {DEFAULT_COST}): split it into "
                        "several requests",
                        node,
                        extensions={"code": "QUERY_TOO_COSTLY"},
                    )
                )

    return QueryCostLimit
