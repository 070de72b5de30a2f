"""GBFS 3.0 re-publishing: the aggregated providers as standard feeds for journey planners.

``api`` (routes, HTTP caching, refusals), ``repository`` (SQL), ``documents`` (the format's
rules, pure), ``settings`` (what the feeds say about us). docs/gbfs-publishing.md describes the
endpoints, the id scheme, caching and the stale/disabled rules for consumers.
"""

from app.gbfs_publish.api import router

__all__ = ["router"]
