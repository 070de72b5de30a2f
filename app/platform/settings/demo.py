"""The demo operators this project runs itself: GBFS feeds it writes and TOMP booking
simulators, each on its own local port.

Read by app/main.py (``demo_feeds``: start them with the API) and providers/demo_runtime.py
(hosts, ports, ``demo_feeds_base_url``).
"""

from __future__ import annotations

from app.platform.settings.base import MobilityBaseSettings


class DemoSettings(MobilityBaseSettings):
    # Demo operators: feeds this project writes, served on their own local port.
    demo_feeds: bool = True
    demo_feeds_host: str = "127.0.0.1"
    demo_feeds_port: int = 8001
    # TOMP operator simulators for the demo, on their own local ports (providers/simulators).
    demo_tomp_port: int = 8002

    @property
    def demo_feeds_base_url(self) -> str:
        return f"http://{self.demo_feeds_host}:{self.demo_feeds_port}"
