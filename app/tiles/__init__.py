"""Vector tiles of the map: vehicles, stations and geofencing zones as Mapbox Vector Tiles.

``grid`` is the tile scheme (XYZ over Web Mercator), ``layers`` what each layer holds and the
SQL that draws it in PostGIS, ``service`` the visibility rule and the filters applied to every
tile. The HTTP interface is app/rest/tiles.py; docs/tiles.md is the client's guide.
"""
