"""app/platform/settings/: Settings is every concern's class at once, each field in exactly one of
them,
and a concern's class built alone reads the same variables, the same way."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from pydantic import ValidationError

import app.platform.settings
from app.platform.settings import (
    HttpSettings,
    MobilityBaseSettings,
    SearchSettings,
    Settings,
    StoreSettings,
)


def _concern_classes() -> set[type[MobilityBaseSettings]]:
    """Every MobilityBaseSettings subclass defined in a module of the package."""
    found: set[type[MobilityBaseSettings]] = set()
    for module_info in pkgutil.iter_modules(app.platform.settings.__path__):
        module = importlib.import_module(f"app.platform.settings.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, MobilityBaseSettings)
                and cls.__module__ == module.__name__
                and cls is not MobilityBaseSettings
            ):
                found.add(cls)
    return found


def test_settings_composes_every_concern_and_adds_no_field() -> None:
    # A concern module whose class is not a base of Settings would be settings nobody reads;
    # a field declared on Settings itself would be missing from every narrow class.
    concerns = _concern_classes()
    assert set(Settings.__bases__) == concerns
    owner: dict[str, str] = {}
    for concern in concerns:
        for name in set(concern.model_fields) - set(MobilityBaseSettings.model_fields):
            assert name not in owner, f"{name}: in {owner[name]} and {concern.__name__}"
            owner[name] = concern.__name__
    assert set(owner) | set(MobilityBaseSettings.model_fields) == set(Settings.model_fields)


def test_a_concern_alone_reads_the_same_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOBILITY_MAX_FIRST", "7")
    monkeypatch.setenv("MOBILITY_CORS_ORIGINS", "https://a.example,https://b.example")
    assert SearchSettings().max_first == Settings().max_first == 7
    origins = ("https://a.example", "https://b.example")
    assert HttpSettings().cors_origins == Settings().cors_origins == origins


def test_a_concern_alone_hides_input_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOBILITY_DATABASE_URL", "mysql://user:hunter2@db.example/x")
    for cls in (StoreSettings, Settings):
        with pytest.raises(ValidationError) as caught:
            cls()
        assert "hunter2" not in str(caught.value)
