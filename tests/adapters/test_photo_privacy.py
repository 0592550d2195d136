"""Photos under retention, export and erasure on SQLite (the same scenario runs on PostgreSQL in
``tests/integration/test_photos_pg.py``); the API's retention job erases photos too."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infra.db import make_engine, migrate

from api_support import make_api
from photo_support import phone_jpeg, retention_and_erasure_scenario

pytestmark = pytest.mark.unit


def test_retention_export_and_erasure_of_photos_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        retention_and_erasure_scenario(engine, tmp_path / "photos")
    finally:
        engine.dispose()


async def test_the_api_retention_job_erases_old_photos(tmp_path: Path) -> None:
    api = make_api(tmp_path, report_retention_days=30)
    with TestClient(api.app) as client:
        response = client.post(
            "/api/photos",
            headers=api.auth("volunteer"),
            files={"file": ("a.jpg", phone_jpeg(), "image/jpeg")},
        )
        assert response.status_code == 201
        url = response.json()["url"]
        assert client.get(url, headers=api.auth("volunteer")).status_code == 200
        job = api.app.state.retention
        assert (await job.run_once()).photos == 0
        api.clock.advance(timedelta(days=31).total_seconds())
        assert (await job.run_once()).photos == 1
        assert client.get(url, headers=api.auth("volunteer")).status_code == 404
    photo_dir = api.settings.resolved_photo_dir()
    assert [p for p in photo_dir.rglob("*") if p.is_file()] == []
