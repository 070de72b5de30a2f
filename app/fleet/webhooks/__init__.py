"""Webhooks: an organisation's endpoints, the fan-out of its outbox events into deliveries, and
the signed, retried delivery of each one (docs/webhooks.md is the receiver's side).

The pipeline, every step idempotent so any number of processes may run it at once:

1. ``app/fleet/outbox.py``: a booking change writes its event in its own transaction.
2. :func:`dispatch_outbox`: undispatched events become one PENDING delivery per subscribed,
   enabled endpoint of the organisation, and are marked dispatched, in one transaction.
3. :func:`deliver_due`: due deliveries are claimed (a lease pushes ``next_attempt_at`` forward
   before the HTTP call), POSTed signed, and recorded: DELIVERED on a 2xx, otherwise retried
   with exponential backoff until 24 h after the delivery's window opened, then FAILED.

Management functions take an :class:`OrgActor` resolved for one organisation (an admin member
or a key with ``webhooks:manage``) and never touch another organisation's rows: an id of
another organisation's endpoint or delivery is :class:`OrgNotFound`.

Time is always a parameter (``now``): the periodic runner passes the wall clock, tests a clock
of their own.

Where each part lives (this package's public names are importable from here):

- ``states.py``: a delivery's states;
- ``signing.py``: the signing secret's form and the signature header;
- ``destinations.py``: where a delivery may connect (URL check, destination policy);
- ``endpoints.py``: managing endpoints, the delivery log, replays;
- ``fanout.py``: step 2, and forgetting old outbox events;
- ``delivery.py``: step 3, with its retry schedule;
- ``runner.py``: the HTTP client, one round of steps 2 and 3, the in-process dispatcher.
"""

from __future__ import annotations

from app.fleet.webhooks.delivery import (
    ATTEMPT_TIMEOUT_SECONDS,
    DELIVERY_WINDOW,
    DeliveryOutcome,
    backoff_delay,
    deliver_due,
)
from app.fleet.webhooks.destinations import (
    DESTINATION_REFUSED,
    UNUSABLE_URL,
    destination_policy,
)
from app.fleet.webhooks.endpoints import (
    DeliveryRecord,
    WebhookDisabled,
    delete_endpoint,
    deliveries_of,
    delivery_organisation,
    endpoint_organisation,
    event_types,
    list_endpoints,
    register_endpoint,
    replay_delivery,
    set_endpoint_enabled,
)
from app.fleet.webhooks.fanout import OUTBOX_RETENTION, dispatch_outbox, forget_old_events
from app.fleet.webhooks.runner import (
    TICK_SECONDS,
    USER_AGENT,
    RoundReport,
    run_webhook_round,
    start_webhook_dispatcher,
    utc_now,
    webhook_http_client,
)
from app.fleet.webhooks.signing import SIGNATURE_HEADER, sign
from app.fleet.webhooks.states import DeliveryStatus

__all__ = [
    "ATTEMPT_TIMEOUT_SECONDS",
    "DELIVERY_WINDOW",
    "DESTINATION_REFUSED",
    "OUTBOX_RETENTION",
    "SIGNATURE_HEADER",
    "TICK_SECONDS",
    "UNUSABLE_URL",
    "USER_AGENT",
    "DeliveryOutcome",
    "DeliveryRecord",
    "DeliveryStatus",
    "RoundReport",
    "WebhookDisabled",
    "backoff_delay",
    "delete_endpoint",
    "deliver_due",
    "deliveries_of",
    "delivery_organisation",
    "destination_policy",
    "dispatch_outbox",
    "endpoint_organisation",
    "event_types",
    "forget_old_events",
    "list_endpoints",
    "register_endpoint",
    "replay_delivery",
    "run_webhook_round",
    "set_endpoint_enabled",
    "sign",
    "start_webhook_dispatcher",
    "utc_now",
    "webhook_http_client",
]
