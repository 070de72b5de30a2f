"""Local operator simulators: real HTTP servers that play an operator for tests, demo and bench."""

from providers.simulators.feed_server import FeedServer, serve_in_background

__all__ = ["FeedServer", "serve_in_background"]
