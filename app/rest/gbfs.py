"""``GET /gbfs/v3/...``: our aggregated data as standard GBFS 3.0 for journey planners.

``/gbfs/v3/manifest.json`` lists one dataset per published provider; each provider has its
``/gbfs/v3/{provider}/gbfs.json`` and the files it lists. Every answer carries a strong ETag
over its body (``If-None-Match`` → 304) and ``Cache-Control: public, max-age`` counting down
to ``last_updated + ttl``. Refusals are JSON ``{"error": {"code", "message"}}`` with stable
codes, as in the ingest API. docs/gbfs-publishing.md is the consumer-facing description.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.gbfs_publish import documents, repository
from app.gbfs_publish.documents import Publication
from app.gbfs_publish.settings import GbfsPublishSettings, get_publish_settings
from app.rest.responses import DATABASE_DOWN, entity_tag, not_modified, refusal
from app.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(prefix="/gbfs/v3", tags=["gbfs"])

PublishSettings = Annotated[GbfsPublishSettings, Depends(get_publish_settings)]
FileBuilder = Callable[[AsyncSession, Publication, GbfsPublishSettings], Awaitable[bytes]]


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _refusal(exc: Refusal) -> Response:
    # A provider enabled or synced a moment later must be seen at once.
    return refusal(exc.status, exc.code, exc.message, {"Cache-Control": "no-store"})


def _cached(
    request: Request, body: bytes, *, last_updated: datetime, ttl: int, now: datetime
) -> Response:
    etag = entity_tag(body)
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={documents.max_age(last_updated, ttl, now)}",
    }
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# The database cannot be reached (down, restarting, pool exhausted): the consumer may retry.
# Anything else is a bug and is left to surface as a 500.
_UNAVAILABLE = Refusal(
    503, "DATABASE_UNAVAILABLE", "the feed could not be read from the database; try again"
)


@router.get("/manifest.json")
async def manifest(request: Request, settings: PublishSettings) -> Response:
    try:
        async with _runtime(request).sessions() as session:
            rows = await repository.manifest_datasets(session)
    except DATABASE_DOWN as exc:
        log.warning("GBFS manifest not served: %s", exc.__class__.__name__)
        return _refusal(_UNAVAILABLE)
    now = datetime.now(UTC)
    datasets = [(row.id, row.last_success_at) for row in rows]
    ttl = settings.default_ttl_seconds
    body = documents.manifest(str(request.base_url), datasets, ttl, now)
    last_updated = max((at for _, at in datasets), default=now)
    return _cached(request, body, last_updated=last_updated, ttl=ttl, now=now)


@router.get("/{provider_id}/{file_name}.json")
async def provider_file(
    provider_id: str, file_name: str, request: Request, settings: PublishSettings
) -> Response:
    runtime = _runtime(request)
    try:
        async with runtime.sessions() as session:
            pub = await _publication(session, provider_id, request, settings, runtime)
            files = documents.published_files(pub.provider)
            if file_name == "gbfs":
                body = documents.gbfs_discovery(pub, files)
            elif file_name in files:
                body = await _BUILDERS[file_name](session, pub, settings)
            else:
                raise Refusal(
                    404,
                    "FEED_NOT_FOUND",
                    f"provider {provider_id!r} publishes no {file_name!r} file; "
                    "its gbfs.json lists the files it has",
                )
    except Refusal as exc:
        return _refusal(exc)
    except DATABASE_DOWN as exc:
        log.warning("GBFS %s/%s not served: %s", provider_id, file_name, exc.__class__.__name__)
        return _refusal(_UNAVAILABLE)
    return _cached(request, body, last_updated=pub.last_updated, ttl=pub.ttl, now=datetime.now(UTC))


async def _publication(
    session: AsyncSession,
    provider_id: str,
    request: Request,
    settings: GbfsPublishSettings,
    runtime: Runtime,
) -> Publication:
    provider = await repository.published_provider(session, provider_id)
    if provider is None:
        raise Refusal(404, "PROVIDER_NOT_FOUND", f"no provider {provider_id!r}")
    if not provider.enabled:
        # Staff switched it off: nothing of it is served, here as in search.
        raise Refusal(404, "PROVIDER_DISABLED", f"provider {provider_id!r} is disabled")
    if provider.last_success_at is None:
        raise Refusal(
            404,
            "PROVIDER_NOT_SYNCED",
            f"provider {provider_id!r} has no data yet: no sync of it has succeeded",
        )
    return documents.publication(
        provider, settings, str(request.base_url), runtime.settings.preferred_language
    )


# --- one builder per file --------------------------------------------------------------------


async def _system_information(
    session: AsyncSession, pub: Publication, settings: GbfsPublishSettings
) -> bytes:
    return documents.system_information(pub, settings)


def _small(query: str, document: Callable[[Publication, Iterable[Any]], bytes]) -> FileBuilder:
    """A small file: its rows read whole (``query``: one of the repository's), then rendered."""

    async def build(
        session: AsyncSession, pub: Publication, settings: GbfsPublishSettings
    ) -> bytes:
        return document(pub, await repository.provider_rows(session, query, pub.provider.id))

    return build


def _streamed(key: str, query: str) -> FileBuilder:
    """A big file (its records under ``data.<key>``), joined batch by batch as they arrive, so
    only the batch being read and the finished bytes are held, never a Python object per
    record."""

    async def build(
        session: AsyncSession, pub: Publication, settings: GbfsPublishSettings
    ) -> bytes:
        params = {
            "p": pub.provider.id,
            "uri": documents.URI_PATTERN,
            "language": pub.language,
            "last_updated": pub.last_updated_text,
        }
        chunks: list[bytes] = []
        async for batch in repository.stream_json_records(session, query, params):
            chunks.append(",".join(batch).encode())
        return documents.records_document(pub, key, chunks)

    return build


_BUILDERS: dict[str, FileBuilder] = {
    documents.SYSTEM_INFORMATION: _system_information,
    documents.VEHICLE_TYPES: _small(repository.VEHICLE_TYPES, documents.vehicle_types),
    documents.STATION_INFORMATION: _streamed("stations", repository.STATION_INFORMATION),
    documents.STATION_STATUS: _streamed("stations", repository.STATION_STATUS),
    documents.VEHICLE_STATUS: _streamed("vehicles", repository.VEHICLE_STATUS),
    documents.SYSTEM_REGIONS: _small(repository.REGIONS, documents.system_regions),
    documents.SYSTEM_PRICING_PLANS: _small(repository.PRICING_PLANS, documents.pricing_plans),
    documents.GEOFENCING_ZONES: _small(repository.ZONES, documents.geofencing_zones),
}
