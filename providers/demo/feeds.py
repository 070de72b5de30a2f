"""Every demo document by operator and feed name at a given time, and the feed server that
publishes them all."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from providers.demo.bikes import BIKE_FEEDS
from providers.demo.documents import Context, Document, FeedGenerator
from providers.demo.free_floating import CAR_FEEDS, SCOOTER_FEEDS
from providers.demo.operators import BIKES, CARS, DEMO_PROVIDERS, SCOOTERS, epoch_of
from providers.simulators.feed_server import FeedServer

_PROVIDERS_BY_SLUG: Final = {provider.slug: provider for provider in DEMO_PROVIDERS}
_DEFAULT_SEEDS: Final = {CARS: 5221, SCOOTERS: 5222, BIKES: 5223}

_GENERATORS: Final[dict[str, dict[str, FeedGenerator]]] = {
    CARS: CAR_FEEDS,
    SCOOTERS: SCOOTER_FEEDS,
    BIKES: BIKE_FEEDS,
}


def _context(slug: str, now: float, base_url: str, seed: int | None) -> Context:
    provider = _PROVIDERS_BY_SLUG.get(slug)
    if provider is None:
        raise KeyError(f"unknown demo operator {slug!r}; known: {sorted(_PROVIDERS_BY_SLUG)}")
    return Context(
        provider=provider,
        seed=_DEFAULT_SEEDS[slug] if seed is None else seed,
        epoch=epoch_of(now),
        now=now,
        base_url=base_url,
    )


def demo_document(
    slug: str, feed: str, now: float, base_url: str, *, seed: int | None = None
) -> Document:
    """One feed document of one demo operator at time ``now``."""
    ctx = _context(slug, now, base_url, seed)
    generator = _GENERATORS[slug].get(feed)
    if generator is None:
        raise KeyError(f"{slug} publishes no {feed!r} feed")
    return ctx.envelope(feed, generator(ctx))


def demo_documents(
    slug: str, now: float, base_url: str, *, seed: int | None = None
) -> dict[str, Document]:
    """Every feed of one demo operator at ``now``: feed name -> document (``gbfs`` included).

    ``base_url`` is where the feed server is reachable; the discovery document's URLs are
    built from it.
    """
    ctx = _context(slug, now, base_url, seed)
    return {feed: ctx.envelope(feed, generate(ctx)) for feed, generate in _GENERATORS[slug].items()}


def build_demo_feed_server(
    base_url_getter: Callable[[], str], clock: Callable[[], float] = time.time
) -> FeedServer:
    """A :class:`FeedServer` publishing all demo operators, generated at request time.

    ``base_url_getter`` is called per request because the port is often only known once the
    server has bound it (port 0).
    """
    server = FeedServer()
    for provider in DEMO_PROVIDERS:
        for feed, path in provider.feed_paths.items():
            server.add_dynamic(path, _route(provider.slug, feed, base_url_getter, clock))
    return server


def _route(
    slug: str, feed: str, base_url_getter: Callable[[], str], clock: Callable[[], float]
) -> Callable[[], Document]:
    def produce() -> Document:
        return demo_document(slug, feed, clock(), base_url_getter())

    return produce
