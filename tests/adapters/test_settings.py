"""The settings come in documented groups; access stays flat, the variable names stay PUHUI_*."""

from __future__ import annotations

import pytest

from infra import settings as module
from infra.settings import Settings

pytestmark = pytest.mark.unit

GROUPS = [base for base in Settings.__bases__ if base.__name__.endswith("Settings")]


def test_every_setting_is_in_exactly_one_group() -> None:
    owners: dict[str, list[str]] = {}
    for group in GROUPS:
        own = set(group.model_fields) - {
            n for b in group.__bases__ for n in getattr(b, "model_fields", {})
        }
        for name in own:
            owners.setdefault(name, []).append(group.__name__)
    assert set(owners) == set(Settings.model_fields)
    assert {name: groups for name, groups in owners.items() if len(groups) != 1} == {}


def test_each_group_says_what_it_holds() -> None:
    assert {g.__name__ for g in GROUPS} >= {
        "KafkaSettings",
        "HttpSettings",
        "WebhookSettings",
        "CapSettings",
    }
    for group in GROUPS:
        assert group.__doc__ and len(group.__doc__) > 10, group.__name__
        assert getattr(module, group.__name__) is group


def test_access_is_flat_and_the_variables_keep_their_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUHUI_HTTP_PORT", "18080")
    monkeypatch.setenv("PUHUI_CAP_SENDER", "x.example")
    monkeypatch.setenv("PUHUI_WEBHOOK_MAX_ATTEMPTS", "3")
    settings = Settings()
    assert (settings.http_port, settings.cap_sender, settings.webhook_max_attempts) == (
        18080,
        "x.example",
        3,
    )
    assert settings.kafka_bootstrap == "127.0.0.1:9092"  # the default
