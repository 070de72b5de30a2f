"""Push ingest: operators and connected vehicles send us vehicle status, signed.

The wire format is ours, close to a GBFS ``vehicle_status`` entry, and documented in
``docs/push-ingest.md``:

    POST /ingest/{provider}/vehicles
    Content-Type: application/json
    X-Mobility-Timestamp: 1764240000                (POSIX seconds, when the request was signed)
    X-Mobility-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>

    {"vehicles": [{"vehicle_id": "car-17", "lat": 52.52, "lon": 13.40,
                   "vehicle_type_id": "id3", "is_reserved": false, "is_disabled": false,
                   "current_range_meters": 182000, "current_fuel_percent": 0.71,
                   "last_reported": 1764239990}],
     "removed": ["car-3"]}

A batch is incremental: vehicles not named are left as they are. Each vehicle's status applies
only if it is not older than the one stored (``last_reported``), so retries and out-of-order
deliveries are harmless. Invalid records are reported and skipped; the others apply. A vehicle
naming a type or plan the provider does not describe is no invalid record: it is stored as every
ingest path stores one (:func:`adapters.dto.placeholder_vehicle_type`; the type's default plan)
and the answer lists a warning for it. Signature, timestamp and envelope problems reject the
whole request before anything is written.

Where things live: ``signing`` (the signing secret, the signature and timestamp headers and
their check; :class:`PushRejected`, the refusal of a whole request), ``records`` (the body: its
envelope and each vehicle's record, validated into a batch) and ``apply`` (:class:`PushIngest`:
the batch written to PostgreSQL, the Redis index and the delta channel). The advisory-lock keys
it shares with ``providers/sync.py`` and booking are in ``app/platform/advisory_locks.py``.
"""

from providers.push.apply import PushIngest, provider_catalog
from providers.push.records import MAX_BODY_BYTES, parse_batch
from providers.push.signing import (
    MAX_SKEW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PushRejected,
    new_secret,
    sign,
    verify,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_SKEW_SECONDS",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "PushIngest",
    "PushRejected",
    "new_secret",
    "parse_batch",
    "provider_catalog",
    "sign",
    "verify",
]
