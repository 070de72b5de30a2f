"""Money at the adapter boundary: operator amounts (major units) to integer minor units.

The project stores money as an integer count of the currency's minor unit plus its ISO 4217 code
(DESIGN.md). Operators publish decimal amounts in major units, sometimes as floats, sometimes as
strings; this module owns that conversion and nothing else.

Rounding is ROUND_HALF_UP (ties away from zero), not banker's rounding: an operator's "0.125 BHD"
is what a customer would be told at the counter, and half-even would silently charge some ties
down and others up. Callers that must report a rounded amount use :func:`to_minor_units_exact`.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import NamedTuple

__all__ = [
    "MinorUnits",
    "currency_exponent",
    "to_minor_units",
    "to_minor_units_exact",
]

# ISO 4217 minor-unit exponents that differ from the common 2. Unknown but well-formed codes
# fall back to 2, which is right for the vast majority of currencies.
_EXPONENT_0 = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
        "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
_EXPONENT_3 = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
_EXPONENT_4 = frozenset({"CLF", "UYW"})
_DEFAULT_EXPONENT = 2

_CODE = re.compile(r"^[A-Za-z]{3}$")

Amount = Decimal | float | int | str


class MinorUnits(NamedTuple):
    """An amount in minor units, and whether the conversion had to round."""

    value: int
    rounded: bool


def currency_exponent(code: str) -> int:
    """The ISO 4217 minor-unit exponent of ``code`` (case-insensitive); 2 when not listed.

    Raises ValueError when ``code`` is not three letters.
    """
    if not isinstance(code, str) or not _CODE.match(code.strip()):
        raise ValueError(f"currency code must be three letters (ISO 4217), got {code!r}")
    upper = code.strip().upper()
    if upper in _EXPONENT_0:
        return 0
    if upper in _EXPONENT_3:
        return 3
    if upper in _EXPONENT_4:
        return 4
    return _DEFAULT_EXPONENT


def _to_decimal(amount: Amount) -> Decimal:
    # bool is an int subclass; True as "1 NOK" is a bug upstream, never an amount.
    if isinstance(amount, bool):
        raise ValueError(f"amount must be a number, got boolean {amount!r}")
    if isinstance(amount, Decimal):
        value = amount
    elif isinstance(amount, int):
        value = Decimal(amount)
    elif isinstance(amount, float):
        if not math.isfinite(amount):
            raise ValueError(f"amount must be a finite number, got {amount!r}")
        # repr() gives the shortest string that round-trips, so 0.1 becomes Decimal("0.1"),
        # not the binary expansion 0.1000000000000000055511151231257827...
        value = Decimal(repr(amount))
    elif isinstance(amount, str):
        text = amount.strip()
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"amount must be numeric, got {amount!r}") from None
    else:
        raise ValueError(f"amount must be a number or numeric string, got {type(amount).__name__}")
    if not value.is_finite():
        raise ValueError(f"amount must be a finite number, got {amount!r}")
    return value


def to_minor_units_exact(amount: Amount, currency: str) -> MinorUnits:
    """Convert a major-unit ``amount`` to minor units of ``currency``, saying if it rounded.

    ``MinorUnits(value, rounded)``: ``rounded`` is True when ``amount`` had more decimals than the
    currency has minor units (e.g. ``1.005 EUR``), in which case ``value`` is ROUND_HALF_UP.
    Negative amounts (discount rates) are allowed; ties round away from zero.
    Raises ValueError for a non-numeric amount or a malformed currency code.
    """
    exponent = currency_exponent(currency)
    value = _to_decimal(amount)
    scaled = value.scaleb(exponent)
    try:
        whole = scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        # More digits than the decimal context holds (28): no operator price is that large.
        raise ValueError(f"amount {amount!r} is too large to convert") from None
    return MinorUnits(int(whole), whole != scaled)


def to_minor_units(amount: Amount, currency: str) -> int:
    """Convert a major-unit ``amount`` to integer minor units of ``currency`` (ROUND_HALF_UP)."""
    return to_minor_units_exact(amount, currency).value
