"""adapters.money: ISO 4217 exponents and major → minor unit conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.money import MinorUnits, currency_exponent, to_minor_units, to_minor_units_exact


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("EUR", 2),
        ("NOK", 2),
        ("usd", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("ISK", 0),
        ("CLP", 0),
        ("VND", 0),
        ("XAF", 0),
        ("XOF", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("OMR", 3),
        ("JOD", 3),
        ("TND", 3),
        ("LYD", 3),
        ("IQD", 3),
        ("CLF", 4),
    ],
)
def test_currency_exponent_follows_iso_4217(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent


def test_unlisted_but_well_formed_currency_defaults_to_two_decimals() -> None:
    assert currency_exponent("ZZZ") == 2


@pytest.mark.parametrize("code", ["", "EU", "EURO", "E1R", "€"])
def test_malformed_currency_code_is_rejected(code: str) -> None:
    with pytest.raises(ValueError, match="three letters"):
        currency_exponent(code)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (126.0, "NOK", 12600),
        (1, "EUR", 100),
        ("1.00", "EUR", 100),
        (" 2.5 ", "EUR", 250),
        (Decimal("0.25"), "EUR", 25),
        (0.1, "EUR", 10),  # binary float noise must not leak into the result
        (0.29, "EUR", 29),  # 0.29 * 100 == 28.999999999999996 in float arithmetic
        (500, "JPY", 500),
        ("1.234", "KWD", 1234),
        (-0.5, "EUR", -50),  # segment rates may be negative (a discount)
        (0, "EUR", 0),
    ],
)
def test_amounts_convert_exactly_to_minor_units(
    amount: Decimal | float | int | str, currency: str, expected: int
) -> None:
    assert to_minor_units_exact(amount, currency) == MinorUnits(expected, False)
    assert to_minor_units(amount, currency) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1.005", "EUR", 101),  # half-up, where half-even would give 100
        ("1.015", "EUR", 102),
        ("0.125", "EUR", 13),
        ("1.004", "EUR", 100),
        ("-0.125", "EUR", -13),  # ties go away from zero
        ("100.5", "JPY", 101),
        ("0.0005", "BHD", 1),
    ],
)
def test_extra_decimals_round_half_up_and_say_so(amount: str, currency: str, expected: int) -> None:
    assert to_minor_units_exact(amount, currency) == MinorUnits(expected, True)


@pytest.mark.parametrize("amount", ["abc", "", "1,50", "NaN", "Infinity", float("nan"), True])
def test_non_numeric_amount_raises_a_clear_value_error(amount: object) -> None:
    with pytest.raises(ValueError, match="amount"):
        to_minor_units(amount, "EUR")  # type: ignore[arg-type]


def test_absurdly_large_amount_raises_instead_of_losing_digits() -> None:
    with pytest.raises(ValueError, match="too large"):
        to_minor_units("1e40", "EUR")
