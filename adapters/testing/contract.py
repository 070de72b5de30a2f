"""The availability-adapter contract as checks: functions, and a pytest base class using them.

Each ``check_*`` raises :class:`ContractViolation` (an ``AssertionError``) saying what is wrong.
:func:`run_contract` runs them all and returns the failures instead of raising;
:class:`AvailabilityAdapterContract` turns each into a test method of a subclass.

An *operator factory* is what a check needs to reach working operator data: a callable
returning an async context manager that serves the data, unchanged, for as long as it is open
and yields a config for the adapter that reads it (from a local HTTP server, or the config
alone for an adapter that needs no network).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import Any, ClassVar, TypeVar

import httpx

from adapters.base import (
    ENTRY_POINT_GROUP,
    AdapterConfigError,
    AdapterError,
    AvailabilityAdapter,
    FetchContext,
    available_adapters,
    load_adapter,
)
from adapters.dto import Snapshot
from adapters.http import FeedCache
from adapters.testing.snapshot import ContractViolation, assert_well_formed
from adapters.testing.transports import (
    FAULTS,
    RETRY_AFTER_SECONDS,
    CountingTransport,
    fault_transport,
)

# The public names are listed once, in the package's __all__ (adapters/testing/__init__.py).

OperatorFactory = Callable[[], AbstractAsyncContextManager[Mapping[str, Any]]]

#: Configs every adapter must refuse: a provider's config is a JSON object.
NOT_A_CONFIG: tuple[object, ...] = (None, [], "discovery_url", 42)
#: No fetch in the kit may take longer: a hanging adapter fails instead of hanging the suite.
FETCH_TIMEOUT_SECONDS = 60.0
#: ``max_feed_bytes`` given for :func:`check_honours_size_cap`: smaller than any real response.
TINY_FEED_BYTES = 16

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ContractFailure:
    check: str  # the check function's name, e.g. "check_snapshot_well_formed"
    message: str


# -- registration and configuration -------------------------------------------------------------


def check_registered(adapter_name: str) -> type[AvailabilityAdapter]:
    """Registered under ``mobility.adapters`` as ``adapter_name``, loading to an adapter class."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == adapter_name]
    if not found:
        known = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
        raise ContractViolation(
            f"no entry point {adapter_name!r} in group {ENTRY_POINT_GROUP!r} (found: {known}); "
            'declare it under [project.entry-points."mobility.adapters"] and install the package'
        )
    if len({ep.value for ep in found}) > 1:
        targets = sorted(ep.value for ep in found)
        raise ContractViolation(f"entry point {adapter_name!r} is registered twice: {targets}")
    try:
        cls = found[0].load()
    except Exception as exc:
        raise ContractViolation(f"entry point {found[0].value!r} does not load: {exc!r}") from exc
    if not isinstance(cls, type):
        raise ContractViolation(f"entry point {found[0].value!r} is not a class")
    if getattr(cls, "name", None) != adapter_name:
        raise ContractViolation(
            f"{cls.__name__}.name is {getattr(cls, 'name', None)!r}, "
            f"the entry point is {adapter_name!r}"
        )
    if not callable(getattr(cls, "from_config", None)):
        raise ContractViolation(f"{cls.__name__} has no from_config classmethod")
    if not inspect.iscoroutinefunction(getattr(cls, "fetch_snapshot", None)):
        raise ContractViolation(f"{cls.__name__}.fetch_snapshot is not an async method")
    return cls


def check_loads_by_name(adapter_name: str, config: Mapping[str, Any]) -> AvailabilityAdapter:
    """``load_adapter(name, config)`` builds an instance of the registered class."""
    try:
        adapter = load_adapter(adapter_name, config)
    except Exception as exc:
        raise ContractViolation(
            f"load_adapter({adapter_name!r}, <working config>) raised {exc!r}"
        ) from exc
    registered = available_adapters().get(adapter_name)
    if registered is None or not isinstance(adapter, registered):
        raise ContractViolation(
            f"load_adapter returned {type(adapter).__name__}, not the registered class"
        )
    if not isinstance(adapter, AvailabilityAdapter):
        raise ContractViolation(f"{type(adapter).__name__} does not satisfy AvailabilityAdapter")
    return adapter


def check_rejects_bad_configs(adapter_name: str, invalid_configs: Sequence[object] = ()) -> None:
    """Every bad config, and anything that is not a JSON object, is refused with
    :class:`AdapterConfigError` (never another exception, never accepted)."""
    if adapter_name not in available_adapters():
        # load_adapter refuses any config of an unknown adapter: that proves nothing.
        raise ContractViolation(f"adapter {adapter_name!r} is not installed")
    problems = []
    for config in (*NOT_A_CONFIG, *invalid_configs):
        try:
            load_adapter(adapter_name, config)  # type: ignore[arg-type]  # deliberately not one
        except AdapterConfigError:
            continue
        except Exception as exc:
            problems.append(f"config {config!r} raised {exc!r}, not AdapterConfigError")
        else:
            problems.append(f"config {config!r} was accepted")
    if problems:
        raise ContractViolation("bad configs not refused properly:\n  - " + "\n  - ".join(problems))


# -- fetching -----------------------------------------------------------------------------------


async def _fetch(
    adapter: AvailabilityAdapter,
    transport: CountingTransport,
    *,
    cache: FeedCache | None = None,
    max_feed_bytes: int | None = None,
) -> Snapshot:
    async with httpx.AsyncClient(transport=transport, timeout=10.0) as client:
        ctx = FetchContext(http=client, cache=cache if cache is not None else FeedCache())
        if max_feed_bytes is not None:
            ctx.max_feed_bytes = max_feed_bytes
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_SECONDS):
                return await adapter.fetch_snapshot(ctx)
        except TimeoutError as exc:
            raise ContractViolation(
                f"fetch_snapshot took longer than {FETCH_TIMEOUT_SECONDS:g}s"
            ) from exc


async def check_snapshot_well_formed(
    adapter_name: str, operator: OperatorFactory, *, fetches_over_http: bool = True
) -> Snapshot:
    """The snapshot of working operator data is well-formed (see
    :func:`adapters.testing.snapshot.snapshot_problems`), fetched through ``ctx.http``."""
    async with operator() as config:
        adapter = load_adapter(adapter_name, config)
        transport = CountingTransport()
        try:
            snapshot = await _fetch(adapter, transport)
        except (AdapterError, AdapterConfigError) as exc:
            raise ContractViolation(f"fetch of working operator data failed: {exc}") from exc
    assert_well_formed(snapshot)
    if fetches_over_http and transport.requests == 0:
        raise ContractViolation(
            "fetch_snapshot made no request through ctx.http: all HTTP must use the given client"
        )
    if not fetches_over_http and transport.requests:
        raise ContractViolation(
            f"declared fetches_over_http=False, but made {transport.requests} request(s)"
        )
    return snapshot


def _comparable(snapshot: Snapshot) -> Snapshot:
    """Without what legitimately differs between fetches: whether a feed came from our cache."""
    return replace(snapshot, feeds=[replace(f, not_modified=False) for f in snapshot.feeds])


async def check_deterministic(adapter_name: str, operator: OperatorFactory) -> None:
    """Unchanged operator data gives equal snapshots: from fresh caches, and again through a
    shared cache (conditional GETs, freshness), where only ``FeedMeta.not_modified`` may differ."""
    async with operator() as config:
        adapter = load_adapter(adapter_name, config)
        first = await _fetch(adapter, CountingTransport())
        second = await _fetch(adapter, CountingTransport())
        cache = FeedCache()
        third = await _fetch(adapter, CountingTransport(), cache=cache)
        fourth = await _fetch(adapter, CountingTransport(), cache=cache)
    for label, a, b in (
        ("two fetches", first, second),
        ("a fetch and a cached refetch", third, fourth),
        ("a fresh and a cached fetch", first, fourth),
    ):
        if _comparable(a) != _comparable(b):
            differing = [
                name
                for name in Snapshot.__dataclass_fields__
                if getattr(_comparable(a), name) != getattr(_comparable(b), name)
            ]
            raise ContractViolation(f"{label} of unchanged data differ in: {', '.join(differing)}")


async def _under_fault(
    adapter: AvailabilityAdapter,
    transport: CountingTransport,
    *,
    max_feed_bytes: int | None = None,
) -> tuple[Snapshot | None, BaseException | None]:
    try:
        return await _fetch(adapter, transport, max_feed_bytes=max_feed_bytes), None
    except ContractViolation:
        raise
    except Exception as exc:
        return None, exc


def _expect_adapter_error(
    what: str,
    transport: CountingTransport,
    result: tuple[Snapshot | None, BaseException | None],
    fetches_over_http: bool,
) -> AdapterError | None:
    """The AdapterError raised, or None for an adapter without network that (rightly) neither
    failed nor made a request."""
    snapshot, error = result
    if not fetches_over_http:
        if transport.requests or error is not None:
            raise ContractViolation(
                f"declared fetches_over_http=False, yet when {what} it made "
                f"{transport.requests} request(s) and raised {error!r}"
            )
        assert_well_formed(snapshot)
        return None
    if error is None:
        raise ContractViolation(
            f"when {what}, fetch_snapshot returned a snapshot instead of raising AdapterError "
            f"({transport.requests} request(s) went through ctx.http: does it use its own client?)"
        )
    if not isinstance(error, AdapterError):
        raise ContractViolation(
            f"when {what}, fetch_snapshot raised {type(error).__module__}."
            f"{type(error).__qualname__} ({error}), not AdapterError"
        )
    return error


async def check_failing_operator(
    adapter_name: str,
    operator: OperatorFactory,
    *,
    fetches_over_http: bool = True,
    faults: Sequence[str] = tuple(FAULTS),
) -> None:
    """An unreachable or misbehaving operator (each of :data:`FAULTS`) makes fetch_snapshot
    raise :class:`AdapterError`: never an httpx, JSON or other exception, never a snapshot."""
    problems = []
    async with operator() as config:
        adapter = load_adapter(adapter_name, config)
        for fault in faults:
            transport = fault_transport(fault)
            result = await _under_fault(adapter, transport)
            try:
                _expect_adapter_error(FAULTS[fault], transport, result, fetches_over_http)
            except ContractViolation as exc:
                problems.append(f"{fault}: {exc}")
    if problems:
        raise ContractViolation(
            "failing operator not reported as AdapterError:\n  - " + "\n  - ".join(problems)
        )


async def check_retry_after(
    adapter_name: str, operator: OperatorFactory, *, fetches_over_http: bool = True
) -> None:
    """A 429 with ``Retry-After: 120`` surfaces as ``AdapterError.retry_after_seconds == 120``,
    so the scheduler can honour it."""
    transport = fault_transport("http_429")
    async with operator() as config:
        result = await _under_fault(load_adapter(adapter_name, config), transport)
    error = _expect_adapter_error(FAULTS["http_429"], transport, result, fetches_over_http)
    if error is not None and error.retry_after_seconds != RETRY_AFTER_SECONDS:
        raise ContractViolation(
            f"HTTP 429 with Retry-After: {RETRY_AFTER_SECONDS:.0f} gave AdapterError with "
            f"retry_after_seconds={error.retry_after_seconds!r}"
        )


async def check_honours_size_cap(
    adapter_name: str, operator: OperatorFactory, *, fetches_over_http: bool = True
) -> None:
    """A response larger than ``ctx.max_feed_bytes`` is refused with :class:`AdapterError`."""
    transport = CountingTransport()
    async with operator() as config:
        adapter = load_adapter(adapter_name, config)
        result = await _under_fault(adapter, transport, max_feed_bytes=TINY_FEED_BYTES)
    _expect_adapter_error(
        f"responses exceed ctx.max_feed_bytes={TINY_FEED_BYTES}",
        transport,
        result,
        fetches_over_http,
    )


# -- all at once ----------------------------------------------------------------------------------


async def run_contract(
    adapter_name: str,
    operator: OperatorFactory,
    *,
    invalid_configs: Sequence[object] = (),
    fetches_over_http: bool = True,
) -> list[ContractFailure]:
    """Every check; the failures, in check order (empty: the adapter honours the contract)."""
    failures: list[ContractFailure] = []

    async def record(name: str, check: Callable[[], Awaitable[object] | object]) -> None:
        try:
            outcome = check()
            if inspect.isawaitable(outcome):
                await outcome
        except ContractViolation as exc:
            failures.append(ContractFailure(name, str(exc)))
        except Exception as exc:  # a check's own setup failing is a failure too, with its cause
            failures.append(ContractFailure(name, f"{type(exc).__name__}: {exc}"))

    async def loads() -> None:
        async with operator() as config:
            check_loads_by_name(adapter_name, config)

    await record("check_registered", lambda: check_registered(adapter_name))
    await record("check_loads_by_name", loads)
    await record(
        "check_rejects_bad_configs",
        lambda: check_rejects_bad_configs(adapter_name, invalid_configs),
    )
    http = fetches_over_http
    await record(
        "check_snapshot_well_formed",
        lambda: check_snapshot_well_formed(adapter_name, operator, fetches_over_http=http),
    )
    await record("check_deterministic", lambda: check_deterministic(adapter_name, operator))
    await record(
        "check_failing_operator",
        lambda: check_failing_operator(adapter_name, operator, fetches_over_http=http),
    )
    await record(
        "check_retry_after",
        lambda: check_retry_after(adapter_name, operator, fetches_over_http=http),
    )
    await record(
        "check_honours_size_cap",
        lambda: check_honours_size_cap(adapter_name, operator, fetches_over_http=http),
    )
    return failures


# -- pytest -------------------------------------------------------------------------------------


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    # A loop of its own, not the thread's current one: the test methods are plain functions, so
    # they work under any pytest async plugin (or none) and leave its loop alone.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coroutine)


class AvailabilityAdapterContract:
    """Subclass as ``Test…`` in your suite; pytest then runs every contract check against your
    adapter. Set :attr:`adapter_name`, implement :meth:`operator`, optionally list
    :attr:`invalid_configs`. The methods are plain (not async) functions: no pytest plugin needed.
    """

    #: The name under the ``mobility.adapters`` entry-point group.
    adapter_name: ClassVar[str]
    #: Configs your adapter must refuse (besides :data:`NOT_A_CONFIG`).
    invalid_configs: ClassVar[Sequence[object]] = ()
    #: False for an adapter that reads no network (its data is in its config): the kit then
    #: checks that it makes no request at all, instead of how it fails when the network does.
    fetches_over_http: ClassVar[bool] = True

    def operator(self) -> AbstractAsyncContextManager[Mapping[str, Any]]:
        """Serve working operator data, unchanged while open; yield the adapter's config for it."""
        raise NotImplementedError(f"{type(self).__name__} must implement operator()")

    def test_is_registered_under_the_entry_point_group(self) -> None:
        check_registered(self.adapter_name)

    def test_loads_by_name_from_a_working_config(self) -> None:
        async def loads() -> None:
            async with self.operator() as config:
                check_loads_by_name(self.adapter_name, config)

        _run(loads())

    def test_rejects_bad_config_with_adapter_config_error(self) -> None:
        check_rejects_bad_configs(self.adapter_name, self.invalid_configs)

    def test_snapshot_is_well_formed(self) -> None:
        _run(
            check_snapshot_well_formed(
                self.adapter_name, self.operator, fetches_over_http=self.fetches_over_http
            )
        )

    def test_fetches_of_unchanged_data_are_deterministic(self) -> None:
        _run(check_deterministic(self.adapter_name, self.operator))

    def test_failing_operator_raises_adapter_error(self) -> None:
        _run(
            check_failing_operator(
                self.adapter_name, self.operator, fetches_over_http=self.fetches_over_http
            )
        )

    def test_rate_limit_reports_retry_after(self) -> None:
        _run(
            check_retry_after(
                self.adapter_name, self.operator, fetches_over_http=self.fetches_over_http
            )
        )

    def test_response_over_the_size_cap_is_refused(self) -> None:
        _run(
            check_honours_size_cap(
                self.adapter_name, self.operator, fetches_over_http=self.fetches_over_http
            )
        )
