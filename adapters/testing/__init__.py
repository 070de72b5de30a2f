"""The contract test kit: checks every availability adapter must pass, bundled or third-party.

Use it from your adapter package's pytest suite (``docs/adapters.md`` walks through it)::

    from adapters.testing import AvailabilityAdapterContract

    class TestMyAdapter(AvailabilityAdapterContract):
        adapter_name = "my-operator"
        invalid_configs = [{"url": 3}, {}]

        @contextlib.asynccontextmanager
        async def operator(self):
            async with serve_my_fixture_data() as base_url:
                yield {"url": base_url}

The same checks are plain functions (``check_*``, :func:`run_contract`), and
:func:`snapshot_problems` validates any snapshot on its own.
"""

from adapters.testing.contract import (
    NOT_A_CONFIG,
    AvailabilityAdapterContract,
    ContractFailure,
    OperatorFactory,
    check_deterministic,
    check_failing_operator,
    check_honours_size_cap,
    check_loads_by_name,
    check_registered,
    check_rejects_bad_configs,
    check_retry_after,
    check_snapshot_well_formed,
    run_contract,
)
from adapters.testing.snapshot import ContractViolation, assert_well_formed, snapshot_problems
from adapters.testing.transports import FAULTS, CountingTransport, fault_transport

__all__ = [
    "FAULTS",
    "NOT_A_CONFIG",
    "AvailabilityAdapterContract",
    "ContractFailure",
    "ContractViolation",
    "CountingTransport",
    "OperatorFactory",
    "assert_well_formed",
    "check_deterministic",
    "check_failing_operator",
    "check_honours_size_cap",
    "check_loads_by_name",
    "check_registered",
    "check_rejects_bad_configs",
    "check_retry_after",
    "check_snapshot_well_formed",
    "fault_transport",
    "run_contract",
    "snapshot_problems",
]
