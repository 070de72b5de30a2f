"""Who may rent what: checked before any operator is called (issue 5).

Cars and mopeds need a verified driving licence and a minimum age; anything else needs an
adult-enough rider only where the deployment says so. The rules are data (``EligibilityRules``,
built from settings), the check is a pure function: every reason a rider is refused comes back
at once, with a stable code, so a client can tell the rider everything to fix in one go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from types import MappingProxyType

from app.platform.vocabulary import FormFactor

__all__ = [
    "DEFAULT_RULES",
    "EligibilityRules",
    "FormFactorRule",
    "LicenceStatus",
    "Refusal",
    "age_on",
    "refusals",
    "rules_from_settings",
]


class LicenceStatus(StrEnum):
    UNVERIFIED = "UNVERIFIED"
    PENDING = "PENDING"
    VERIFIED = "VERIFIED"
    REJECTED = "REJECTED"


@dataclass(frozen=True, slots=True)
class FormFactorRule:
    licence_required: bool = False
    minimum_age: int | None = None


@dataclass(frozen=True, slots=True)
class EligibilityRules:
    by_form_factor: Mapping[FormFactor, FormFactorRule] = field(default_factory=dict)

    def rule(self, form_factor: FormFactor) -> FormFactorRule:
        return self.by_form_factor.get(form_factor, FormFactorRule())


DEFAULT_RULES = EligibilityRules(
    MappingProxyType(
        {
            FormFactor.CAR: FormFactorRule(licence_required=True, minimum_age=18),
            FormFactor.MOPED: FormFactorRule(licence_required=True, minimum_age=16),
        }
    )
)


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # LICENCE_REQUIRED, LICENCE_PENDING, LICENCE_REJECTED, TOO_YOUNG, BIRTH_DATE_REQUIRED
    message: str


def age_on(birth_date: date, day: date) -> int:
    """Whole years completed on ``day`` (someone born on 29 February turns a year older on
    1 March in non-leap years)."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def refusals(
    rules: EligibilityRules,
    form_factor: FormFactor,
    *,
    licence: LicenceStatus,
    birth_date: date | None,
    today: date,
) -> list[Refusal]:
    """Every reason this rider may not rent this kind of vehicle today; empty: eligible."""
    rule = rules.rule(form_factor)
    found: list[Refusal] = []
    kind = form_factor.value.replace("_", " ")
    if rule.licence_required and licence is not LicenceStatus.VERIFIED:
        code, message = {
            LicenceStatus.PENDING: (
                "LICENCE_PENDING",
                "your driving licence is still being checked",
            ),
            LicenceStatus.REJECTED: ("LICENCE_REJECTED", "your driving licence was not accepted"),
        }.get(licence, ("LICENCE_REQUIRED", f"renting a {kind} needs a verified driving licence"))
        found.append(Refusal(code, message))
    if rule.minimum_age is not None:
        if birth_date is None:
            found.append(
                Refusal("BIRTH_DATE_REQUIRED", f"renting a {kind} needs your date of birth")
            )
        elif age_on(birth_date, today) < rule.minimum_age:
            found.append(
                Refusal(
                    "TOO_YOUNG", f"renting a {kind} needs you to be {rule.minimum_age} or older"
                )
            )
    return found


def rules_from_settings(raw: Mapping[str, Mapping[str, int | bool]]) -> EligibilityRules:
    """``Settings.eligibility_rules`` ({form factor: {"min_age": n, "licence_required": b}})
    as rules; an unknown form factor or key is a configuration error, said at start-up."""
    by_form_factor: dict[FormFactor, FormFactorRule] = {}
    for name, rule in raw.items():
        try:
            form_factor = FormFactor(name)
        except ValueError:
            known = ", ".join(f.value for f in FormFactor)
            raise ValueError(
                f"eligibility rule for unknown form factor {name!r} ({known})"
            ) from None
        unknown = set(rule) - {"min_age", "licence_required"}
        if unknown:
            raise ValueError(f"eligibility rule for {name}: unknown keys {sorted(unknown)}")
        min_age = rule.get("min_age")
        by_form_factor[form_factor] = FormFactorRule(
            licence_required=bool(rule.get("licence_required", False)),
            minimum_age=int(min_age) if min_age is not None else None,
        )
    return EligibilityRules(MappingProxyType(by_form_factor))
