"""The ``push`` availability adapter: for providers whose vehicles arrive by push ingest.

Such a provider (a connected-car fleet, an operator that cannot be polled) has no vehicle feed
to read; what it does have is reference data its pushed vehicles point at: the system, its
vehicle types, its pricing plans, maybe zones. Those are given once, in the provider's config,
as GBFS documents (any version the GBFS adapter reads), and parsed by the same parser:

    {"documents": {"system_information": {...}, "vehicle_types": {...},
                   "system_pricing_plans": {...}, "geofencing_zones": {...}}}

Every sync re-reads them from the config, with no network. The snapshot carries no vehicle
feed, so the sync leaves the provider's vehicles to push ingest (``providers/push/``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from adapters.base import AdapterConfigError, AdapterError, FetchContext, check_options
from adapters.dto import Snapshot
from adapters.gbfs.documents import document_data
from adapters.gbfs.parse import parse_snapshot

__all__ = ["PushAdapter"]

REFERENCE_DOCUMENTS = frozenset(
    {
        "system_information",
        "vehicle_types",
        "system_pricing_plans",
        "system_regions",
        "geofencing_zones",
    }
)


class PushAdapter:
    name: ClassVar[str] = "push"

    __slots__ = ("documents", "language")

    def __init__(self, documents: Mapping[str, Any], language: str | None = None) -> None:
        self.documents = dict(documents)
        self.language = language

    def __repr__(self) -> str:
        return f"PushAdapter({sorted(self.documents)!r})"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PushAdapter:
        check_options("push", config, {"documents", "language"})
        documents = config.get("documents", {})
        if not isinstance(documents, Mapping):
            raise AdapterConfigError("push: `documents` must map GBFS file names to documents")
        extra = sorted(set(documents) - REFERENCE_DOCUMENTS)
        if extra:
            raise AdapterConfigError(
                f"push: {', '.join(extra)} cannot be given here (vehicles arrive by push); "
                f"known: {', '.join(sorted(REFERENCE_DOCUMENTS))}"
            )
        for name, document in documents.items():
            try:
                document_data(name, document)
            except AdapterError as exc:
                raise AdapterConfigError(f"push: documents.{name}: {exc}") from exc
        language = config.get("language")
        if language is not None and not isinstance(language, str):
            raise AdapterConfigError("push: `language` must be a string")
        return cls(documents, language)

    async def fetch_snapshot(self, ctx: FetchContext) -> Snapshot:
        urls = {name: f"config:documents.{name}" for name in self.documents}
        return await asyncio.to_thread(
            parse_snapshot,
            self.documents,
            feed_urls=urls,
            preferred_language=self.language or ctx.preferred_language,
        )
