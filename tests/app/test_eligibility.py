"""Eligibility: every refusal reason at once, ages counted in completed years."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.booking.eligibility import (
    DEFAULT_RULES,
    EligibilityRules,
    FormFactorRule,
    LicenceStatus,
    age_on,
    refusals,
)
from app.platform.vocabulary import FormFactor

TODAY = date(2026, 11, 28)


def _codes(form_factor: FormFactor, licence: LicenceStatus, birth: date | None) -> list[str]:
    found = refusals(DEFAULT_RULES, form_factor, licence=licence, birth_date=birth, today=TODAY)
    return [r.code for r in found]


def test_bikes_and_scooters_need_nothing_by_default() -> None:
    for form_factor in (FormFactor.BICYCLE, FormFactor.SCOOTER_STANDING, FormFactor.CARGO_BICYCLE):
        assert _codes(form_factor, LicenceStatus.UNVERIFIED, None) == []


@pytest.mark.parametrize(
    ("licence", "code"),
    [
        (LicenceStatus.UNVERIFIED, "LICENCE_REQUIRED"),
        (LicenceStatus.PENDING, "LICENCE_PENDING"),
        (LicenceStatus.REJECTED, "LICENCE_REJECTED"),
    ],
)
def test_a_car_needs_a_verified_licence(licence: LicenceStatus, code: str) -> None:
    adult = date(1990, 5, 1)
    assert _codes(FormFactor.CAR, licence, adult) == [code]
    assert _codes(FormFactor.CAR, LicenceStatus.VERIFIED, adult) == []


def test_every_reason_comes_back_at_once() -> None:
    too_young = TODAY.replace(year=TODAY.year - 17)
    assert _codes(FormFactor.CAR, LicenceStatus.UNVERIFIED, too_young) == [
        "LICENCE_REQUIRED",
        "TOO_YOUNG",
    ]
    assert _codes(FormFactor.MOPED, LicenceStatus.VERIFIED, None) == ["BIRTH_DATE_REQUIRED"]


def test_the_minimum_age_is_reached_on_the_birthday() -> None:
    eighteenth = TODAY.replace(year=TODAY.year - 18)
    assert _codes(FormFactor.CAR, LicenceStatus.VERIFIED, eighteenth) == []
    day_later = eighteenth + timedelta(days=1)
    assert _codes(FormFactor.CAR, LicenceStatus.VERIFIED, day_later) == ["TOO_YOUNG"]


def test_age_in_completed_years_against_a_day_by_day_count() -> None:
    birth = date(2008, 2, 29)
    day, birthdays = birth, 0
    while day < date(2026, 12, 31):
        day += timedelta(days=1)
        # Independent count: a birthday is the anniversary date, or 1 March when there is no
        # 29 February that year.
        anniversary = (day.month, day.day) == (2, 29) or (
            (day.month, day.day) == (3, 1)
            and not (day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0))
        )
        birthdays += anniversary
        assert age_on(birth, day) == birthdays, day


def test_rules_are_configurable() -> None:
    strict = EligibilityRules({FormFactor.SCOOTER_STANDING: FormFactorRule(minimum_age=21)})
    young = TODAY.replace(year=TODAY.year - 20)
    found = refusals(
        strict,
        FormFactor.SCOOTER_STANDING,
        licence=LicenceStatus.UNVERIFIED,
        birth_date=young,
        today=TODAY,
    )
    assert [r.code for r in found] == ["TOO_YOUNG"]
    assert "21 or older" in found[0].message
