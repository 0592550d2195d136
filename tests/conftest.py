"""The suite's layers are its directories; a test's marker comes from where it lives.

==================  ========  ==========================================================
directory           marker    what runs
==================  ========  ==========================================================
tests/core          unit      the pure core (models/, alerts/), no I/O
tests/adapters      unit      streams/, infra/, notifier/ and the repo's config files,
                              without a broker or a database server (SQLite in tmp_path)
tests/http          unit      the API through FastAPI's TestClient, no broker
tests/integration   integration  real Kafka, PostgreSQL, Prometheus, …
tests/fault         fault     kills, stops or floods real parts; slow
tests/e2e           e2e       the whole stack, a real Chromium
==================  ========  ==========================================================

``make unit`` (``pytest -m unit``) runs every fast test. A file may still carry its own
``pytestmark``; the directory's marker is added to it. The fixtures and helpers are in
:mod:`tests.support`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ("tests.support.parts",)

# Property tests check behaviour, not speed: on a shared 2-core machine Hypothesis's per-example
# deadline and its "too slow" data-generation check failed tests now and then (seen in
# test_contracts). Speed is measured in `puhui bench`; every other health check stays on.
settings.register_profile("puhui", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("puhui")

_HERE = Path(__file__).resolve().parent

#: directory under tests/ -> the marker every test in it carries
LAYER_MARKERS = {
    "core": "unit",
    "adapters": "unit",
    "http": "unit",
    "integration": "integration",
    "fault": "fault",
    "e2e": "e2e",
}


def layer_of(path: Path) -> str | None:
    """The marker of the test file at ``path`` (``None`` outside the layer directories)."""
    try:
        top = path.resolve().relative_to(_HERE).parts[0]
    except (ValueError, IndexError):
        return None
    return LAYER_MARKERS.get(top)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = layer_of(Path(str(item.path)))
        if marker is None:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live in one of tests/{{{','.join(LAYER_MARKERS)}}}/"
            )
        if item.get_closest_marker(marker) is None:
            item.add_marker(getattr(pytest.mark, marker))
