"""The volunteer page's installable bits: manifest, icons and service worker come from this origin
with the strict Content-Security-Policy (the e2e tests check that nothing loads from elsewhere)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.api import make_api

pytestmark = pytest.mark.unit


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(make_api(tmp_path).app)


def test_manifest_icons_and_service_worker(client: TestClient) -> None:
    manifest = client.get("/static/report.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"] == "application/manifest+json"
    csp = manifest.headers["content-security-policy"]
    assert "manifest-src 'self'" in csp and "default-src 'none'" in csp
    body = json.loads(manifest.text)
    assert body["start_url"] == "/report" and body["display"] == "standalone"
    for icon in body["icons"]:
        response = client.get(icon["src"])
        assert response.status_code == 200, icon
        assert response.headers["content-type"] == icon["type"]
        if icon["type"] == "image/png":
            width, height = struct.unpack(">II", response.content[16:24])
            assert f"{width}x{height}" == icon["sizes"]

    worker = client.get("/report-sw.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    page = client.get("/report")
    assert '<link rel="manifest" href="/static/report.webmanifest">' in page.text
