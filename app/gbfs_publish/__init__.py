"""GBFS 3.0 re-publishing: the aggregated providers as standard feeds for journey planners.

``repository`` (SQL), ``documents`` (the format's rules, pure), ``settings`` (what the feeds say
about us); the routes, HTTP caching and refusals are the REST interface app/rest/gbfs.py.
docs/gbfs-publishing.md describes the endpoints, the id scheme, caching and the stale/disabled
rules for consumers.
"""
