"""An organisation's travel policy: storing it, merging the cost centre's override into it, and
checking a trip against it before any operator is called.

Rules (each one optional; a missing rule restricts nothing):

- ``FORM_FACTOR`` / ``PROVIDER``: the allowed form factors / provider ids.
- ``MAX_PRICE``: the highest *estimated* price of one trip, in one currency.
- ``HOURS``: ``allowed_from`` (inclusive) to ``allowed_until`` (exclusive), local time of the
  organisation's time zone. ``from > until`` is a window across midnight (22:00-06:00).
- ``WEEKDAYS``: ISO weekdays (1 = Monday ... 7 = Sunday) of the local calendar day of the moment
  checked. It is judged independently of ``HOURS``: with Mon-Fri and 22:00-06:00, Saturday 02:00
  breaks the weekday rule (it is Saturday there) although it is inside the night window.
- ``BUSINESS_AREA``: a (multi)polygon in WGS 84 the position must lie in; a point exactly on its
  boundary counts as inside (shapely ``covers``, PostGIS ``ST_Covers``).
- ``MONTHLY_BUDGET``: per member, in one currency (the same column as the maximum price's).

A cost centre's policy overrides the organisation's *rule by rule*: each rule the cost centre
sets replaces the organisation's rule, each rule it leaves unset (NULL) is inherited. ``HOURS``
is one rule (from and until travel together), and each money rule carries the currency of the
policy it comes from. A cost centre therefore cannot *remove* an organisation rule, only replace
it (with a wider one if it likes: all weekdays, every form factor).

Money is never converted: an estimate in another currency than the rule's is a violation that
says the two cannot be compared, because accepting it would let any trip past the limit.

Where each part lives (this package's public names are importable from here):

- ``rules.py``: the rules as values, and the rule-by-rule merge;
- ``storage.py``: validating, storing and reading policies, and the effective policy;
- ``evaluation.py``: judging a trip against it (``violations``, ``check_trip``).
"""

from __future__ import annotations

from app.fleet.policies.evaluation import check_trip, month_bounds, month_spent, violations
from app.fleet.policies.rules import (
    EffectivePolicy,
    HoursWindow,
    MoneyLimit,
    PolicyRule,
    TripCheck,
    Violation,
    merge,
)
from app.fleet.policies.storage import (
    INVALID,
    area_geojson,
    effective_policy,
    get_policy,
    parse_area,
    rules_of,
    set_policy,
)

__all__ = [
    "INVALID",
    "EffectivePolicy",
    "HoursWindow",
    "MoneyLimit",
    "PolicyRule",
    "TripCheck",
    "Violation",
    "area_geojson",
    "check_trip",
    "effective_policy",
    "get_policy",
    "merge",
    "month_bounds",
    "month_spent",
    "parse_area",
    "rules_of",
    "set_policy",
    "violations",
]
