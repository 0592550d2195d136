"""Photos under retention, export and erasure on PostgreSQL (the same scenario as on SQLite in
``tests/adapters/test_photo_privacy.py``): rows and files go together."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.db import make_engine, migrate

from photo_support import retention_and_erasure_scenario

pytestmark = pytest.mark.integration


def test_retention_export_and_erasure_of_photos_on_postgresql(
    fresh_pg_database: str, tmp_path: Path
) -> None:
    migrate(fresh_pg_database)
    engine = make_engine(fresh_pg_database)
    try:
        retention_and_erasure_scenario(engine, tmp_path / "photos")
    finally:
        engine.dispose()
