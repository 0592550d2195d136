"""Photos over HTTP: upload (type, size, pixel and corruption checks), what is served back (no
metadata), who may see a photo (404 for everybody else), the audit of operators' reads, and
photos attached to reports. No broker: a fake publisher stands in (reports only)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth import Caller
from infra.photos import PhotoRow, PhotoStore
from infra.privacy import access_log
from infra.tokens import Role, create_token

from api_support import LANE, NAMES, ApiSetup, make_api
from photo_support import alpha_png, bomb_png, metadata_of, phone_jpeg

pytestmark = pytest.mark.unit

MAX_BYTES = 200_000


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    return make_api(tmp_path, photo_max_bytes=MAX_BYTES, photo_max_pixels=20_000_000)


@pytest.fixture
def client(api: ApiSetup) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c


def upload(
    client: TestClient,
    api: ApiSetup,
    data: bytes,
    who: str = "volunteer",
    ctype: str = "image/jpeg",
) -> object:
    return client.post(
        "/api/photos", headers=api.auth(who), files={"file": ("photo.jpg", data, ctype)}
    )


def photo_rows(api: ApiSetup) -> int:
    with Session(api.engine) as session:
        return int(session.scalar(select(func.count()).select_from(PhotoRow)) or 0)


def stored_files(api: ApiSetup) -> list[Path]:
    return sorted(p for p in api.settings.resolved_photo_dir().rglob("*") if p.is_file())


def assert_nothing_stored(api: ApiSetup) -> None:
    assert photo_rows(api) == 0
    assert stored_files(api) == []


def test_a_phone_photo_is_served_back_without_any_metadata(
    api: ApiSetup, client: TestClient
) -> None:
    source = phone_jpeg((800, 600), orientation=6)
    assert metadata_of(source)["exif"]
    response = upload(client, api, source)
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    photo_id = body["photo_id"]
    assert photo_id.startswith("ph_") and len(photo_id) == 35
    assert body["url"] == f"/api/photos/{photo_id}"
    assert body["thumbnail_url"] == f"/api/photos/{photo_id}/thumbnail"
    assert (body["width"], body["height"]) == (600, 800)  # turned upright

    for url in (body["url"], body["thumbnail_url"]):
        served = client.get(url, headers=api.auth("volunteer"))
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/jpeg"
        assert "no-store" in served.headers["cache-control"]
        assert "private" in served.headers["cache-control"]
        assert metadata_of(served.content) == {
            "format": "JPEG",
            "exif": {},
            "info": [],
            "segments": [],
        }
    thumb = Image.open(
        io.BytesIO(client.get(body["thumbnail_url"], headers=api.auth("volunteer")).content)
    )
    assert max(thumb.size) == 320
    # Files on disk: the photo and its thumbnail, nothing half-written left around.
    names = sorted(p.name for p in stored_files(api))
    assert names == [f"{photo_id}.jpg", f"{photo_id}.thumb.jpg"]
    with Session(api.engine) as session:
        row = session.get(PhotoRow, photo_id)
        assert row is not None
        assert row.owner != NAMES["volunteer"] and row.owner  # the principal, not the name
        assert (row.source_format, row.width, row.height) == ("JPEG", 600, 800)
        assert row.bytes == len(client.get(body["url"], headers=api.auth("volunteer")).content)


def test_a_png_with_alpha_is_taken(api: ApiSetup, client: TestClient) -> None:
    response = upload(client, api, alpha_png(), ctype="image/png")
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    served = client.get(response.json()["url"], headers=api.auth("volunteer"))  # type: ignore[attr-defined]
    assert Image.open(io.BytesIO(served.content)).mode == "RGB"


def test_an_oversize_file_is_a_413(api: ApiSetup, client: TestClient) -> None:
    big = phone_jpeg((1600, 1200)) + b"\0" * MAX_BYTES  # valid start, too many bytes
    response = upload(client, api, big)
    assert response.status_code == 413, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["code"] == "payload_too_large"  # type: ignore[attr-defined]
    assert_nothing_stored(api)


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(
    api: ApiSetup, client: TestClient
) -> None:
    response = upload(client, api, b"\xff\xd8\xff" + b"\0" * (MAX_BYTES * 3))
    assert response.status_code == 413
    assert_nothing_stored(api)


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (b"GIF89a" + b"\0" * 64, "image/gif"),
        (b"%PDF-1.7\n%...", "application/pdf"),
        (phone_jpeg(), "text/plain"),  # declared type not an image
        (b"\0\0\0\x18ftypheic" + b"\0" * 64, "image/heic"),
    ],
    ids=["gif", "pdf", "declared-text", "heic"],
)
def test_other_types_are_a_415(api: ApiSetup, client: TestClient, data: bytes, ctype: str) -> None:
    response = upload(client, api, data, ctype=ctype)
    assert response.status_code == 415, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["code"] == "unsupported_media_type"  # type: ignore[attr-defined]
    assert_nothing_stored(api)


def test_a_corrupt_image_is_a_422_naming_the_file(api: ApiSetup, client: TestClient) -> None:
    response = upload(client, api, phone_jpeg()[:300])
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    detail = response.json()["error"]["details"][0]  # type: ignore[attr-defined]
    assert (detail["field"], detail["type"]) == ("file", "corrupt_image")
    assert_nothing_stored(api)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_decompression_bomb_is_refused(api: ApiSetup, client: TestClient) -> None:
    bomb = bomb_png(10_000)  # 100 million pixels; the limit here is 20 million
    assert len(bomb) < MAX_BYTES
    response = upload(client, api, bomb, ctype="image/png")
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["details"][0]["type"] == "too_many_pixels"  # type: ignore[attr-defined]
    assert_nothing_stored(api)


def test_a_missing_file_field_is_a_422(api: ApiSetup, client: TestClient) -> None:
    response = client.post(
        "/api/photos", headers=api.auth("volunteer"), files={"photo": ("a.jpg", phone_jpeg())}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "file"
    assert_nothing_stored(api)


def test_no_token_is_a_401(api: ApiSetup, client: TestClient) -> None:
    response = client.post("/api/photos", files={"file": ("a.jpg", phone_jpeg(), "image/jpeg")})
    assert response.status_code == 401
    assert_nothing_stored(api)


def test_another_volunteer_gets_404_and_an_operator_read_is_audited(
    api: ApiSetup, client: TestClient
) -> None:
    body = upload(client, api, phone_jpeg()).json()  # type: ignore[attr-defined]
    photo_id = body["photo_id"]
    unknown = "ph_" + "0" * 32
    for url in (body["url"], body["thumbnail_url"]):
        other = client.get(url, headers=api.auth("volunteer2"))
        missing = client.get(url.replace(photo_id, unknown), headers=api.auth("volunteer2"))
        assert other.status_code == missing.status_code == 404
        assert other.json()["error"]["code"] == "not_found"
        assert client.get(url).status_code == 401
    assert access_log(api.engine) == []  # the owner's and refused reads are not recorded

    assert client.get(body["url"], headers=api.auth("volunteer")).status_code == 200
    assert access_log(api.engine) == []
    assert client.get(body["url"], headers=api.auth("operator")).status_code == 200
    assert client.get(body["thumbnail_url"], headers=api.auth("admin")).status_code == 200
    log = access_log(api.engine)
    assert [(a.actor, a.action, a.what, a.report_ids) for a in log] == [
        (NAMES["operator"], "read", f"GET /api/photos/{photo_id}", [photo_id]),
        (NAMES["admin"], "read", f"GET /api/photos/{photo_id}/thumbnail", [photo_id]),
    ]


def test_a_registered_rule_lets_other_callers_in(api: ApiSetup, client: TestClient) -> None:
    body = upload(client, api, phone_jpeg()).json()  # type: ignore[attr-defined]
    assert client.get(body["url"], headers=api.auth("volunteer2")).status_code == 404
    seen: list[tuple[str, str]] = []

    def volunteer2_may(caller: Caller, photo: PhotoRow) -> bool:
        seen.append((caller.name, photo.photo_id))
        return caller.name == NAMES["volunteer2"]

    api.app.state.photo_access.allow(volunteer2_may)
    assert client.get(body["url"], headers=api.auth("volunteer2")).status_code == 200
    assert seen == [(NAMES["volunteer2"], body["photo_id"])]
    assert [a.actor for a in access_log(api.engine)] == [NAMES["volunteer2"]]


def test_an_erased_photo_is_a_404_and_its_files_are_gone(api: ApiSetup, client: TestClient) -> None:
    from datetime import timedelta

    from infra.privacy import erase_expired

    body = upload(client, api, phone_jpeg()).json()  # type: ignore[attr-defined]
    store = PhotoStore(api.settings.resolved_photo_dir())
    erased = erase_expired(api.engine, api.clock() + timedelta(days=181), 180, store)
    assert erased.photos == 1
    assert stored_files(api) == []
    assert client.get(body["url"], headers=api.auth("volunteer")).status_code == 404
    assert client.get(body["url"], headers=api.auth("operator")).status_code == 404


# -- photos in reports ----------------------------------------------------------------------

REPORT = {"zone_id": LANE, "category": "fire_lane", "description": "消防通道被电动车堵住"}


def test_a_report_carries_its_photos_and_shows_them(api: ApiSetup, client: TestClient) -> None:
    first = upload(client, api, phone_jpeg()).json()["photo_id"]  # type: ignore[attr-defined]
    second = upload(client, api, alpha_png(), ctype="image/png").json()["photo_id"]  # type: ignore[attr-defined]
    response = client.post(
        "/api/reports", headers=api.auth("volunteer"), json={**REPORT, "photo_ids": [first, second]}
    )
    assert response.status_code == 202, response.text
    report_id = response.json()["report_id"]
    view = client.get(f"/api/reports/{report_id}", headers=api.auth("volunteer")).json()
    assert [p["photo_id"] for p in view["photos"]] == [first, second]
    assert view["photos"][0]["thumbnail_url"] == f"/api/photos/{first}/thumbnail"
    assert view["media_url"] == f"/api/photos/{first}"
    mine = client.get("/api/reports", headers=api.auth("volunteer")).json()["items"]
    assert [p["photo_id"] for p in mine[0]["photos"]] == [first, second]


def test_a_report_cannot_carry_another_volunteers_photo(api: ApiSetup, client: TestClient) -> None:
    theirs = upload(client, api, phone_jpeg(), who="volunteer2").json()["photo_id"]  # type: ignore[attr-defined]
    unknown = "ph_" + "a" * 32
    for ids in ([theirs], [unknown]):
        response = client.post(
            "/api/reports", headers=api.auth("volunteer"), json={**REPORT, "photo_ids": ids}
        )
        assert response.status_code == 422, response.text
        detail = response.json()["error"]["details"][0]
        assert detail["field"] == "photo_ids.0"
        assert "of yours" in detail["msg"]
    assert api.publisher is not None and api.publisher.sent == []


def test_a_photo_goes_with_one_report_only(api: ApiSetup, client: TestClient) -> None:
    photo = upload(client, api, phone_jpeg()).json()["photo_id"]  # type: ignore[attr-defined]
    ok = client.post(
        "/api/reports", headers=api.auth("volunteer"), json={**REPORT, "photo_ids": [photo]}
    )
    assert ok.status_code == 202
    again = client.post(
        "/api/reports",
        headers=api.auth("volunteer"),
        json={**REPORT, "description": "又一次", "photo_ids": [photo]},
    )
    assert again.status_code == 422
    assert "another report" in again.json()["error"]["details"][0]["msg"]
    dup = client.post(
        "/api/reports", headers=api.auth("volunteer"), json={**REPORT, "photo_ids": [photo, photo]}
    )
    assert dup.status_code == 422
    assert dup.json()["error"]["details"][0]["field"] == "photo_ids.1"


def test_a_resent_report_with_photos_is_the_same_report(api: ApiSetup, client: TestClient) -> None:
    photo = upload(client, api, phone_jpeg()).json()["photo_id"]  # type: ignore[attr-defined]
    body = {**REPORT, "photo_ids": [photo], "report_id": "6f1c1b1e-8d3a-4a57-9b3e-1c2d3e4f5a6b"}
    first = client.post("/api/reports", headers=api.auth("volunteer"), json=body)
    second = client.post("/api/reports", headers=api.auth("volunteer"), json=body)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert api.publisher is not None and len(api.publisher.sent) == 1
    other = client.post(
        "/api/reports", headers=api.auth("volunteer"), json={**body, "photo_ids": []}
    )
    assert other.status_code == 409


def test_a_refused_report_frees_its_photos_for_the_resend(
    api: ApiSetup, client: TestClient
) -> None:
    photo = upload(client, api, phone_jpeg()).json()["photo_id"]  # type: ignore[attr-defined]
    assert api.publisher is not None
    api.publisher.fail = True
    body = {**REPORT, "photo_ids": [photo], "report_id": "6f1c1b1e-8d3a-4a57-9b3e-1c2d3e4f5a6c"}
    assert client.post("/api/reports", headers=api.auth("volunteer"), json=body).status_code == 503
    with Session(api.engine) as session:
        row = session.get(PhotoRow, photo)
        assert row is not None and row.report_id is None
    api.publisher.fail = False
    assert client.post("/api/reports", headers=api.auth("volunteer"), json=body).status_code == 202
    with Session(api.engine) as session:
        row = session.get(PhotoRow, photo)
        assert row is not None and row.report_id == body["report_id"]


def test_operators_see_the_photos_of_an_alerts_reports(api: ApiSetup, client: TestClient) -> None:
    from infra.db import upsert_reports
    from models.contracts import decode_report

    from api_support import episode, store

    photo = upload(client, api, phone_jpeg()).json()["photo_id"]  # type: ignore[attr-defined]
    response = client.post(
        "/api/reports", headers=api.auth("volunteer"), json={**REPORT, "photo_ids": [photo]}
    )
    records = episode()
    store(api.engine, records)
    assert api.publisher is not None
    report = decode_report(api.publisher.sent[0][2], api.app.state.zones)
    upsert_reports(api.engine, [(report, records[0].alert_id)])
    detail = client.get(f"/api/alerts/{records[0].alert_id}", headers=api.auth("operator")).json()
    assert [p["photo_id"] for p in detail["reports"][0]["photos"]] == [photo]
    page = client.get(
        f"/api/alerts/{records[0].alert_id}/reports", headers=api.auth("operator")
    ).json()
    assert page["items"][0]["photos"][0]["url"] == f"/api/photos/{photo}"
    assert response.status_code == 202


def test_a_responder_like_role_can_upload(api: ApiSetup, client: TestClient) -> None:
    # Any token may upload (volunteers, responders, operators): an operator here.
    token = create_token(api.engine, "值班员 二号", Role.OPERATOR, api.clock())
    response = client.post(
        "/api/photos",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": ("p.webp", alpha_png(), "application/octet-stream")},
    )
    assert response.status_code == 201, response.text


def test_owned_problems_checks_ownership_only(api: ApiSetup, client: TestClient) -> None:
    """What the cases module uses for a responder's "handled" photos."""
    from infra.photos import get_photo, owned_problems

    mine = upload(client, api, phone_jpeg()).json()["photo_id"]  # type: ignore[attr-defined]
    theirs = upload(client, api, phone_jpeg(), who="volunteer2").json()["photo_id"]  # type: ignore[attr-defined]
    row = get_photo(api.engine, mine)
    assert row is not None
    assert owned_problems(api.engine, [mine], row.owner) is None
    problem = owned_problems(api.engine, [mine, theirs], row.owner)
    assert problem is not None and problem.index == 1
