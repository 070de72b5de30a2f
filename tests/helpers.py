"""Test helpers: register providers served by the local feed server, read raw feeds."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from redis.asyncio.client import PubSub
from sqlalchemy import text

from app.platform.db import transaction
from app.runtime import Runtime
from providers.service import register_provider
from providers.simulators.feed_server import DocumentFactory, FeedServer
from tests.conftest import require_conformance


def feed_dir(name: str) -> Path:
    return require_conformance() / "gbfs" / "feeds" / name


def raw(folder: str, feed: str) -> Any:
    return json.loads((feed_dir(folder) / f"{feed}.json").read_text())


async def add_provider(runtime: Runtime, slug: str, feeds: dict[str, str]) -> None:
    async with transaction(runtime.sessions) as session:
        await register_provider(
            session, slug=slug, name=slug, adapter="gbfs", config={"feeds": feeds}
        )


async def add_conformance_provider(
    runtime: Runtime, server: FeedServer, base_url: str, folder: str, slug: str | None = None
) -> str:
    """Serve a conformance folder locally and register it with explicit per-feed URLs.

    The folders' gbfs.json files point at the operators' original hosts, so — exactly as a
    deployment overrides a provider's URLs — every feed is given by its local address.
    """
    slug = slug or folder
    paths = server.add_directory(slug, feed_dir(folder))
    feeds = {Path(p).stem: base_url + p for p in paths if Path(p).stem != "gbfs"}
    await add_provider(runtime, slug, feeds)
    return slug


async def synced_conformance_provider(
    runtime: Runtime, feed_server: tuple[FeedServer, str], folder: str
) -> str:
    """A conformance folder registered (add_conformance_provider) and synced once, successfully."""
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, folder)
    assert (await runtime.sync.sync(slug)).ok, folder
    return slug


def v23_envelope(
    data: dict[str, Any], *, last_updated: int = 1_700_000_000, ttl: int = 0
) -> dict[str, Any]:
    return {"last_updated": last_updated, "ttl": ttl, "version": "2.3", "data": data}


def synthetic_scooter_feeds(vehicles: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A minimal, valid GBFS 2.3 free-floating system built by the test itself."""
    return {
        "system_information": v23_envelope(
            {
                "system_id": "synthetic",
                "language": "en",
                "name": "Synthetic Scooters",
                "timezone": "Europe/Berlin",
            }
        ),
        "vehicle_types": v23_envelope(
            {
                "vehicle_types": [
                    {
                        "vehicle_type_id": "es",
                        "form_factor": "scooter_standing",
                        "propulsion_type": "electric",
                        "max_range_meters": 40000,
                        "default_pricing_plan_id": "basic",
                    }
                ]
            }
        ),
        "system_pricing_plans": v23_envelope(
            {
                "plans": [
                    {
                        "plan_id": "basic",
                        "name": "Basic",
                        "currency": "EUR",
                        "price": 1.0,
                        "is_taxable": True,
                        "description": "1 EUR to unlock, 0.25 EUR per minute",
                        "per_min_pricing": [{"start": 0, "rate": 0.25, "interval": 1}],
                    }
                ]
            }
        ),
        "free_bike_status": v23_envelope({"bikes": vehicles}),
    }


def scooter(vid: str, lat: float, lon: float, **extra: Any) -> dict[str, Any]:
    return {
        "bike_id": vid,
        "lat": lat,
        "lon": lon,
        "is_reserved": False,
        "is_disabled": False,
        "vehicle_type_id": "es",
        "current_range_meters": 20000,
        **extra,
    }


def serve_documents(
    server: FeedServer, base_url: str, slug: str, documents: dict[str, Any]
) -> dict[str, str]:
    """Serve mutable documents: later changes to ``documents`` are served on the next GET."""

    def current(name: str) -> DocumentFactory:
        return lambda: documents[name]

    feeds = {}
    for name in documents:
        path = f"/{slug}/{name}.json"
        server.add_dynamic(path, current(name))
        feeds[name] = base_url + path
    return feeds


async def age_last_success(runtime: Runtime, provider_id: str, seconds: float) -> None:
    """Make the provider's last good sync ``seconds`` old, as if no sync had succeeded since."""
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE providers SET last_success_at = now() - make_interval(secs => :s) "
                "WHERE id = :p"
            ),
            {"s": seconds, "p": provider_id},
        )


def member_names(members: Iterable[object]) -> set[str]:
    """Redis members as text.

    The runtime's client answers bytes (no ``decode_responses``), which redis-py's return types,
    written for either setting, cannot know: each member is checked to be bytes, then decoded.
    """
    names = set()
    for member in members:
        assert isinstance(member, bytes), member
        names.add(member.decode())
    return names


async def close_pubsub(pubsub: PubSub) -> None:
    # redis-py leaves PubSub.aclose unannotated, so a typed caller may not call it directly.
    await pubsub.aclose()  # type: ignore[no-untyped-call]
