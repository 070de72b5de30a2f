"""What each tile layer holds, and the SQL that draws it: PostGIS encodes the Mapbox Vector Tile
itself (``ST_AsMVT``), so a tile is one statement and no feature passes through Python.

Three layers, each with the attributes a map styles on (docs/tiles.md lists them):

- ``vehicles``: one point per available vehicle from ``tiles_vehicle_points_from_zoom`` up, and
  below it ``vehicle_clusters``: one point per cell of a 16 by 16 grid over the tile, at the mean
  position of the vehicles in it, with their ``count`` and one count per form factor present.
- ``stations``: likewise, ``stations`` points or ``station_clusters``.
- ``zones``: geofencing zones as polygons clipped to the tile (with a buffer, so outlines join
  across tiles), at every zoom, with the rule that applies to every vehicle type.

Every point statement selects exactly the rows the tile owns (app/tiles/grid.py), so clusters of
neighbouring tiles add up to the area's count. A point tile holding more than
``tiles_max_points`` features is drawn as clusters instead: a tile never leaves vehicles out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.platform.vocabulary import FormFactor
from app.tiles.grid import EXTENT, TileAddress

__all__ = [
    "CLUSTER_CELLS",
    "LAYERS",
    "Layer",
    "Statement",
    "cluster_statement",
    "point_statement",
    "zone_statement",
]

# Cells per tile side of a cluster layer: 16 by 16, about 32 screen pixels each on a 512-pixel
# tile, the spacing map clusters are usually drawn at.
CLUSTER_CELLS = 16


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer as clients see it (TileJSON's ``vector_layers``): its name inside a tile and its
    attributes with their types (``String``, ``Number``, ``Boolean``)."""

    name: str
    description: str
    fields: dict[str, str]


VEHICLES = Layer(
    "vehicles",
    "Available vehicles (not reserved, not disabled), one point each.",
    {
        "id": "String",
        "provider_id": "String",
        "form_factor": "String",
        "propulsion_type": "String",
        "range_meters": "Number",
        "vehicle_type_id": "String",
    },
)
VEHICLE_CLUSTERS = Layer(
    "vehicle_clusters",
    "Available vehicles counted per cell: `count`, and one count per form factor present.",
    {"count": "Number", **{f.value: "Number" for f in FormFactor}},
)
STATIONS = Layer(
    "stations",
    "Docking stations and virtual stations, one point each.",
    {
        "id": "String",
        "provider_id": "String",
        "name": "String",
        "vehicles_available": "Number",
        "docks_available": "Number",
        "is_renting": "Boolean",
        "is_returning": "Boolean",
    },
)
STATION_CLUSTERS = Layer(
    "station_clusters",
    "Stations counted per cell, with the vehicles and docks available at them together.",
    {"count": "Number", "vehicles_available": "Number", "docks_available": "Number"},
)
ZONES = Layer(
    "zones",
    "Geofencing zones (GBFS): the rule for every vehicle type as attributes; `rules` holds "
    "them all (JSON). Where zones overlap, the lower `order` applies.",
    {
        "id": "String",
        "provider_id": "String",
        "name": "String",
        "order": "Number",
        "ride_start_allowed": "Boolean",
        "ride_end_allowed": "Boolean",
        "ride_through_allowed": "Boolean",
        "maximum_speed_kph": "Number",
        "station_parking": "Boolean",
        "rules": "String",
        "starts_at": "String",
        "ends_at": "String",
    },
)

# The tile endpoints' layer names, and which MVT layers each may hold.
LAYERS: dict[str, tuple[Layer, ...]] = {
    "vehicles": (VEHICLES, VEHICLE_CLUSTERS),
    "stations": (STATIONS, STATION_CLUSTERS),
    "zones": (ZONES,),
}


@dataclass(slots=True)
class Statement:
    """An asyncpg statement being built: ``bind`` adds a parameter and returns its placeholder."""

    params: list[Any] = field(default_factory=list)

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"


Binder = Callable[[Any], str]


def _owned(alias: str, tile: TileAddress, bind: Binder) -> str:
    """The rows the tile owns (grid.py): the index narrows, the exact edges decide."""
    west, south, east, north = tile.bounds()
    w, s, e, n = bind(west), bind(south), bind(east), bind(north)
    geom = f"{alias}.geom"
    return (
        f"{geom} && ST_MakeEnvelope({w}, {s}, {e}, {n}, 4326) "
        f"AND ST_X({geom}) >= {w} AND ST_X({geom}) < {e} "
        f"AND ST_Y({geom}) > {s} AND ST_Y({geom}) <= {n}"
    )


def _envelope(tile: TileAddress, bind: Binder) -> str:
    return f"ST_TileEnvelope({bind(tile.z)}, {bind(tile.x)}, {bind(tile.y)})"


# Columns of a point layer, per table: (MVT attribute, SQL).
_POINT_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "vehicles": (
        ("id", "v.id"),
        ("provider_id", "v.provider_id"),
        ("form_factor", "v.form_factor"),
        ("propulsion_type", "v.propulsion_type"),
        # bigint: an operator's absurd range must not make the tile fail (int overflows at 2^31).
        ("range_meters", "round(v.current_range_meters)::bigint"),
        ("vehicle_type_id", "v.vehicle_type_id"),
    ),
    "stations": (
        ("id", "v.id"),
        ("provider_id", "v.provider_id"),
        ("name", "v.name"),
        ("vehicles_available", "v.num_vehicles_available"),
        ("docks_available", "v.num_docks_available"),
        ("is_renting", "v.is_renting"),
        ("is_returning", "v.is_returning"),
    ),
}


def point_statement(
    table: str, layer: Layer, tile: TileAddress, where: Sequence[str], st: Statement, cap: int
) -> str:
    """(features, tile): the tile's rows as points, at most ``cap + 1`` of them, so that the
    caller knows when there are more than ``cap`` (and draws clusters instead; the points are
    then not encoded). ``where`` clauses are over ``v`` and bind into ``st``."""
    columns = _POINT_COLUMNS[table]
    owned = _owned("v", tile, st.bind)
    envelope = _envelope(tile, st.bind)
    selected = ", ".join(f'{sql} AS "{name}"' for name, sql in columns)
    names = ", ".join(f'"{name}"' for name, _ in columns)
    return f"""
WITH owned AS (
    SELECT {selected}, v.geom
    FROM {table} v
    WHERE {" AND ".join([owned, *where])}
    LIMIT {st.bind(cap + 1)}
)
SELECT owned_count.features,
       CASE WHEN owned_count.features <= {st.bind(cap)} THEN (
           SELECT ST_AsMVT(t, '{layer.name}', {EXTENT}, 'geom') FROM (
               SELECT {names},
                      ST_AsMVTGeom(ST_Transform(geom, 3857), {envelope}, {EXTENT}, 0, false)
                          AS geom
               FROM owned
           ) t
       ) END AS tile
FROM (SELECT count(*) AS features FROM owned) owned_count
"""


# Aggregates of a cluster layer, per table: (MVT attribute, SQL); a NULL attribute is left out
# of the feature (a cell without cars has no `car`).
_CLUSTER_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "vehicles": (
        ("count", "count(*)::int"),
        *(
            (f.value, f"NULLIF(count(*) FILTER (WHERE v.form_factor = '{f.value}'), 0)::int")
            for f in FormFactor
        ),
    ),
    "stations": (
        ("count", "count(*)::int"),
        ("vehicles_available", "sum(v.num_vehicles_available)::bigint"),
        ("docks_available", "sum(v.num_docks_available)::bigint"),
    ),
}


def _mercator_y(lat: float) -> float:
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def cluster_statement(
    table: str, layer: Layer, tile: TileAddress, where: Sequence[str], st: Statement
) -> str:
    """The tile's rows counted per cell of a CLUSTER_CELLS-square grid (square on the map:
    rows are cut in Mercator y), each cell a point at the mean position of its rows."""
    west, south, east, north = tile.bounds()
    owned = _owned("v", tile, st.bind)
    envelope = _envelope(tile, st.bind)
    # Cell of a row: its share of the tile's width (longitude is linear in Mercator x) and of
    # its height in Mercator y, times the cells per side; LEAST keeps a rounding at the far
    # edge inside the last cell.
    cells = st.bind(CLUSTER_CELLS)
    col = (
        f"LEAST(floor((ST_X(v.geom) - {st.bind(west)}) "
        f"* {st.bind(CLUSTER_CELLS / (east - west))}), {cells} - 1)"
    )
    top, bottom = _mercator_y(north), _mercator_y(south)
    row = (
        f"LEAST(floor(({st.bind(top)} - ln(tan(pi() / 4 + radians(ST_Y(v.geom)) / 2))) "
        f"* {st.bind(CLUSTER_CELLS / (top - bottom))}), {cells} - 1)"
    )
    aggregates = ", ".join(f'{sql} AS "{name}"' for name, sql in _CLUSTER_COLUMNS[table])
    return f"""
SELECT ST_AsMVT(t, '{layer.name}', {EXTENT}, 'geom') AS tile FROM (
    SELECT {aggregates},
           ST_AsMVTGeom(
               ST_Transform(
                   ST_SetSRID(ST_MakePoint(avg(ST_X(v.geom)), avg(ST_Y(v.geom))), 4326), 3857
               ),
               {envelope}, {EXTENT}, 0, false
           ) AS geom
    FROM {table} v
    WHERE {" AND ".join([owned, *where])}
    GROUP BY {col}, {row}
) t
"""


# A zone's general rule: the first without vehicle_type_ids (GBFS applies, per vehicle type, the
# first rule that names the type or names none). It is the rule of every type no earlier rule
# names; the `rules` attribute holds them all, for a client that knows the vehicle's type.
_GENERAL_RULE = (
    "(SELECT r FROM jsonb_array_elements(z.rules) r "
    "WHERE CASE WHEN jsonb_typeof(r->'vehicle_type_ids') = 'array' "
    "THEN jsonb_array_length(r->'vehicle_type_ids') = 0 ELSE true END LIMIT 1)"
)
# Outlines are drawn this far past the tile's edge (in tile units), so they join seamlessly.
_ZONE_BUFFER = 64


def _rule_value(name: str, json_type: str, sql_type: str) -> str:
    """One value of the general rule, or NULL when the operator sent something else there (a
    zone tile must not fail over one operator's "yes")."""
    return (
        f"CASE WHEN jsonb_typeof(g.rule->'{name}') = '{json_type}' "
        f"THEN (g.rule->>'{name}')::{sql_type} END AS {name}"
    )


def zone_statement(tile: TileAddress, where: Sequence[str], st: Statement) -> str:
    margin = st.bind(_ZONE_BUFFER / EXTENT)
    z, x, y = st.bind(tile.z), st.bind(tile.x), st.bind(tile.y)
    envelope = f"ST_TileEnvelope({z}, {x}, {y})"
    buffered = f"ST_Transform(ST_TileEnvelope({z}, {x}, {y}, margin => {margin}), 4326)"
    return f"""
SELECT ST_AsMVT(t, '{ZONES.name}', {EXTENT}, 'geom') AS tile FROM (
    SELECT z.id, z.provider_id, z.name, z.ordinal AS "order",
           {_rule_value("ride_start_allowed", "boolean", "boolean")},
           {_rule_value("ride_end_allowed", "boolean", "boolean")},
           {_rule_value("ride_through_allowed", "boolean", "boolean")},
           {_rule_value("maximum_speed_kph", "number", "float8")},
           {_rule_value("station_parking", "boolean", "boolean")},
           z.rules::text AS rules,
           to_char(z.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS starts_at,
           to_char(z.ends_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS ends_at,
           ST_AsMVTGeom(ST_Transform(z.geom, 3857), {envelope}, {EXTENT}, {_ZONE_BUFFER}, true)
               AS geom
    FROM geofencing_zones z
    CROSS JOIN LATERAL (SELECT {_GENERAL_RULE} AS rule) g
    WHERE {" AND ".join([f"z.geom && {buffered}", *where])}
) t
WHERE t.geom IS NOT NULL
"""
