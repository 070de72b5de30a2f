"""The demo operators for ``make run``: three Berlin operators whose GBFS feeds we write ourselves.

``demo-cars`` (GBFS 3.0 free-floating car sharing), ``demo-scooters`` (GBFS 2.3 free-floating
e-scooters) and ``demo-bikes`` (GBFS 3.0 station-based bikes), all around Alexanderplatz, and
the :class:`~providers.simulators.feed_server.FeedServer` routes that publish them.

Every document is a pure function of ``(seed, epoch)`` with ``epoch = int(now // 30)``: the map
is alive (vehicles are relocated, rented and returned, ids rotate after trips as GBFS requires,
station counts drift) yet any moment can be reproduced exactly, which the tests rely on.
Nothing here reads a clock; callers pass ``now``.

Where things live: ``operators`` (the three operators, their feeds, the epoch), ``geometry``
(flat-earth helpers and the hand-drawn places of central Berlin), ``documents`` (the shape every
operator's documents share), ``fleet`` (where the free-floating vehicles are), ``free_floating``
(the car and scooter operators' documents), ``bikes`` (the bike operator's stations and
documents) and ``feeds`` (a document by operator and feed name, and the feed server).
"""

from providers.demo.feeds import build_demo_feed_server, demo_document, demo_documents
from providers.demo.operators import (
    BERLIN_BOX,
    CENTRE,
    DEMO_PROVIDERS,
    EPOCH_SECONDS,
    DemoProvider,
    epoch_of,
)

__all__ = [
    "BERLIN_BOX",
    "CENTRE",
    "DEMO_PROVIDERS",
    "EPOCH_SECONDS",
    "DemoProvider",
    "build_demo_feed_server",
    "demo_document",
    "demo_documents",
    "epoch_of",
]
