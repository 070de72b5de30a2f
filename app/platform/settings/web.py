"""The reference web app at ``/app/`` (web/src/app, built into ``web_dist_dir``): whether it is
served, and an optional basemap under its own layers.

Read by app/main.py and app/rest/web_assets.py; docs/web-app.md describes both.
"""

from __future__ import annotations

from pydantic import HttpUrl

from app.platform.settings.base import MobilityBaseSettings


class WebSettings(MobilityBaseSettings):
    # Served in every environment: the app is a client of the public API and holds no secret.
    web_app: bool = True
    # A MapLibre style (https://…/style.json) drawn under the app's zones, stations and vehicles;
    # None: a plain background, with nothing loaded from anywhere but this server. The style and
    # everything it loads (tiles, sprites, glyphs) must come from the style URL's origin, which
    # the page's Content-Security-Policy then allows.
    web_basemap_style_url: HttpUrl | None = None
