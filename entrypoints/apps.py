"""The applications, built from packages that do not know each other."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.app import CompanionDeps, create_api
from infra.settings import Settings
from notifier.service import Notifier


def notifier_companion(deps: CompanionDeps) -> Notifier | None:
    """The notifier run inside the API process (``None`` without ``PUHUI_WEBHOOK_SECRET``)."""
    return Notifier.from_settings(
        deps.settings, deps.engine, registry=deps.registry, zones=deps.zones
    )


def build_api(settings: Settings, **options: Any) -> FastAPI:
    """The API as ``puhui api`` runs it: with the notifier inside, unless
    ``PUHUI_NOTIFIER_IN_API`` is false (a separate ``puhui notifier`` runs). ``app.state.notifier``
    is that notifier, or ``None``. ``options`` go to :func:`api.app.create_api`."""
    companions = [notifier_companion] if settings.notifier_in_api else []
    app = create_api(settings, companions=companions, **options)
    app.state.notifier = next((c for c in app.state.companions if isinstance(c, Notifier)), None)
    return app
