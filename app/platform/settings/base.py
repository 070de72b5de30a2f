"""What every concern's settings share: how they are read from the environment (prefix
``MOBILITY_``, ``__`` into nested values, no input echoed by an error), and the deployment's
``environment``.

Every concern class derives from :class:`MobilityBaseSettings`, so one built alone reads exactly
the variables the composed :class:`app.platform.settings.Settings` reads. ``environment`` is here
rather
than in one concern because several decide by it: the GraphQL switches (graphql.py),
app/platform/secret_box.py, app/accounts/tokens.py, app/fleet/webhooks/destinations.py and
graphql_schema/api_keys.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class MobilityBaseSettings(BaseSettings):
    # hide_input_in_errors: several settings are secrets (URLs with passwords, keys); a bad one
    # must not be printed whole by a start-up error.
    model_config = SettingsConfigDict(
        env_prefix="MOBILITY_", env_nested_delimiter="__", hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = "development"
