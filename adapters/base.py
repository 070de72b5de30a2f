"""Adapter contracts (``typing.Protocol``) and the entry-point registry.

An adapter package registers a class under the ``mobility.adapters`` entry-point group; the class
implements :class:`AvailabilityAdapter`. Core code never names a concrete adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import httpx

from adapters.dto import Snapshot
from adapters.http import DEFAULT_MAX_FEED_BYTES, FeedCache

if TYPE_CHECKING:
    from adapters.credentials import OperatorAuth

ENTRY_POINT_GROUP = "mobility.adapters"


class AdapterError(Exception):
    """A provider's feed could not be read: the sync fails and the last good data stays.

    ``retry_after_seconds``: how long the operator asked us to wait before asking again (HTTP
    429 / 503 with ``Retry-After``), when it said so; the scheduler honours it.
    """

    def __init__(
        self,
        message: str,
        *,
        feed: str | None = None,
        url: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.feed = feed
        self.url = url
        self.retry_after_seconds = retry_after_seconds


class AdapterConfigError(ValueError):
    """A provider's configuration is unusable (bad URL, missing feed, unknown option)."""


def check_options(adapter: str, config: Mapping[str, Any], known: AbstractSet[str]) -> None:
    """Refuse a stored config that is not an object, or that names an option ``adapter`` does
    not know: a misspelt option would otherwise be ignored without a word."""
    if not isinstance(config, Mapping):
        raise AdapterConfigError(f"{adapter}: config must be an object")
    unknown = sorted(set(config) - known)
    if unknown:
        raise AdapterConfigError(
            f"{adapter}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


@dataclass(slots=True)
class FetchContext:
    """What an adapter is given for one fetch. All HTTP goes through ``http`` (its timeouts,
    headers and transport are the deployment's); no response body may exceed ``max_feed_bytes``
    (:func:`adapters.http.fetch_json` enforces it)."""

    http: httpx.AsyncClient
    cache: FeedCache
    preferred_language: str = "en"
    max_feed_bytes: int = DEFAULT_MAX_FEED_BYTES
    # The provider's operator credentials, set by staff (adapters/credentials.py): an adapter
    # puts ``await auth.headers(http)`` on its requests to the operator. None: no credentials.
    auth: OperatorAuth | None = None


@runtime_checkable
class AvailabilityAdapter(Protocol):
    """Reads an operator's availability and returns the canonical :class:`Snapshot`."""

    name: ClassVar[str]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AvailabilityAdapter:
        """Validate the stored provider config; raise :class:`AdapterConfigError` if unusable."""
        ...

    async def fetch_snapshot(self, ctx: FetchContext) -> Snapshot:
        """The provider's full current state. Raise :class:`AdapterError` if a feed fails."""
        ...


def installed(group: str) -> dict[str, Any]:
    """The classes installed in this environment under an entry-point group, by name: the
    one registry of availability adapters and booking operators alike."""
    return {ep.name: ep.load() for ep in entry_points(group=group)}


def load_installed(group: str, kind: str, name: str, config: Mapping[str, Any]) -> Any:
    """``name``'s class of ``group`` made from ``config`` (its ``from_config``);
    :class:`AdapterConfigError` naming what is installed when there is no such ``kind``."""
    found = installed(group)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise AdapterConfigError(f"unknown {kind} {name!r} (installed: {known})")
    return found[name].from_config(config)


def available_adapters() -> dict[str, type[AvailabilityAdapter]]:
    """Every adapter installed in this environment, by its entry-point name."""
    return installed(ENTRY_POINT_GROUP)


def load_adapter(name: str, config: Mapping[str, Any]) -> AvailabilityAdapter:
    adapter: AvailabilityAdapter = load_installed(ENTRY_POINT_GROUP, "adapter", name, config)
    return adapter
