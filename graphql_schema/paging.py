"""Relay connection types for paging through a search (app/search/paging.py, docs/search.md).

Every field is a plain attribute or a pure relation registered for compiled execution, so a
learned `vehiclesConnection` operation is planned like `vehicles` (graphql_schema/operation.py).
"""

from __future__ import annotations

import strawberry

from app.reference import ReferenceCache
from app.search.paging import VehiclePage, encode_cursor
from graphql_schema.types import FAST_RELATIONS, Vehicle, vehicles_from_hits


@strawberry.type(
    description="Where a page stands (Relay). Pages go forward only, with `first` and `after`."
)
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="True when at least one more vehicle follows this page (exact while the "
        "data stands still)."
    )
    has_previous_page: bool = strawberry.field(
        description="Always false: paging is forward only (Relay allows false for `first`/"
        "`after` paging)."
    )
    start_cursor: str | None = strawberry.field(
        description="The first edge's cursor; null for an empty page."
    )
    end_cursor: str | None = strawberry.field(
        description="The last edge's cursor: pass it as `after` for the next page; null for "
        "an empty page."
    )


@strawberry.type(description="A vehicle and its place in the search order.")
class VehicleEdge:
    node: Vehicle
    fingerprint: strawberry.Private[str]

    @strawberry.field(
        description="Opaque. Pass it as `after`, with the same area and filter, to continue "
        "after this vehicle."
    )
    def cursor(self) -> str:
        return edge_cursor(self)


def edge_cursor(edge: VehicleEdge) -> str:
    # Built only when selected: most clients read the page's endCursor, not every edge's.
    return encode_cursor(edge.fingerprint, edge.node.distance_meters, edge.node.id)


FAST_RELATIONS[("VehicleEdge", "cursor")] = lambda edge, _context: edge_cursor(edge)


@strawberry.type(
    description="One page of a vehicle search, in search order: nearest to the `near` point "
    "or the `within` box's centre first, ties by id."
)
class VehicleConnection:
    edges: list[VehicleEdge]
    page_info: PageInfo

    @classmethod
    async def from_page(cls, reference: ReferenceCache, page: VehiclePage) -> VehicleConnection:
        vehicles = await vehicles_from_hits(reference, page.hits)
        edges = [VehicleEdge(node=v, fingerprint=page.fingerprint) for v in vehicles]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=False,
                start_cursor=edge_cursor(edges[0]) if edges else None,
                end_cursor=edge_cursor(edges[-1]) if edges else None,
            ),
        )
