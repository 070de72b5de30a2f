"""Where the process finds files that are not Python: GraphiQL's built assets, and the
conformance material (reference feeds and schemas).

``web_dist_dir`` is read by app/main.py (it hands it to app/rest/web_assets.py). ``conformance_dir``
is read by no code: it names ``MOBILITY_CONFORMANCE_DIR``, which the tests and the README use
(tests/conftest.py reads the variable itself). ``PROJECT_ROOT``, the checkout's top folder, is
what both default from, and tests and scripts import it from :mod:`app.platform.settings`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings

# app/platform/settings/paths.py -> the checkout (the folder that holds app/).
# app/platform/settings/paths.py: four levels below the project's root.
PROJECT_ROOT = Path(__file__).resolve().parents[3]


class PathSettings(MobilityBaseSettings):
    # What the API serves to browsers (GraphiQL's assets), built from npm packages by
    # `make install` (web/, `npm ci && npm run build`).
    web_dist_dir: Path = PROJECT_ROOT / "web" / "dist"

    conformance_dir: Path = Field(default=PROJECT_ROOT.parent / "shared" / "conformance")
