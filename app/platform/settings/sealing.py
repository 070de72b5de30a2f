"""Sealing secrets at rest: the keys that seal what must be read back (operator credentials,
webhook and push secrets), and whether an unsealed stored value is refused.

Read by app/platform/secret_box.py (which refuses a missing or development key in production) and
the
benchmarks. Named for what it does rather than ``secrets``, which is a standard-library module.
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class SealingSettings(MobilityBaseSettings):
    # Seal the secrets we must read back (operator credentials, webhook and push secrets) at
    # rest: comma-separated 32-byte base64url keys, the first sealing (app/platform/secret_box.py).
    # Required in production; development and tests use a fixed development key.
    secrets_keys: str | None = Field(default=None, repr=False)
    # Once `mobility secrets reseal` has sealed what was stored before sealing existed: refuse
    # any unsealed value (one written into a column behind our back is never used).
    secrets_require_sealed: bool = False
