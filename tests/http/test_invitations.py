"""One-time sign-in invitations: stored hashed, spent on first use, refused after (used, expired,
withdrawn), over the library (SQLite) and over HTTP (``POST /api/invitations/exchange``); the
CLI's link keeps the secret in the fragment and the QR code decodes to nothing else."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.routes.invitations import REFUSALS
from entrypoints.cli import invite_link, welcome_lines
from infra.db import InvitationRow, make_engine, migrate
from infra.invitations import (
    INVITE_PREFIX,
    InvitationRefused,
    create_invitation,
    list_invitations,
    parse_validity,
    redeem_invitation,
    revoke_invitation,
)
from infra.tokens import Role, list_tokens, revoke_token, verify_token
from tests.support.api import ApiSetup, make_api

pytestmark = pytest.mark.unit

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'inv.db'}"
    migrate(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


def test_first_use_gives_a_token_then_the_invitation_is_spent(engine: Engine) -> None:
    info, secret = create_invitation(engine, " 张阿姨 ", Role.VOLUNTEER, T0, DAY)
    assert secret.startswith(INVITE_PREFIX) and len(secret) > 30
    assert (info.name, info.role, info.expires_at, info.state(T0)) == (
        "张阿姨",
        Role.VOLUNTEER,
        T0 + DAY,
        "open",
    )
    with Session(engine) as session:
        row = session.scalars(select(InvitationRow)).one()
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in {row.name, row.secret_hash}

    redeemed = redeem_invitation(engine, secret, T0 + timedelta(hours=1))
    assert (redeemed.name, redeemed.role) == ("张阿姨", Role.VOLUNTEER)
    token = verify_token(engine, redeemed.token)
    assert token is not None and token.id == redeemed.token_id and token.name == "张阿姨"

    with pytest.raises(InvitationRefused) as again:
        redeem_invitation(engine, secret, T0 + timedelta(hours=2))
    assert again.value.reason == "used"
    (listed,) = list_invitations(engine)
    assert listed.state(T0 + timedelta(hours=2)) == "used"
    assert listed.used_at == T0 + timedelta(hours=1) and listed.token_id == redeemed.token_id
    assert len(list_tokens(engine)) == 1  # the second use made nothing

    # An admin can end the session the invitation started.
    assert revoke_token(engine, redeemed.token_id, T0 + timedelta(hours=3))
    assert verify_token(engine, redeemed.token) is None


def test_expired_withdrawn_and_unknown_invitations_are_refused(engine: Engine) -> None:
    _, late = create_invitation(engine, "小李", Role.VOLUNTEER, T0, timedelta(hours=2))
    with pytest.raises(InvitationRefused) as expired:
        redeem_invitation(engine, late, T0 + timedelta(hours=2))  # the end is exclusive
    assert expired.value.reason == "expired"

    info, withdrawn = create_invitation(engine, "老王", Role.OPERATOR, T0, DAY)
    assert revoke_invitation(engine, info.id, T0)
    assert not revoke_invitation(engine, info.id, T0)  # once
    with pytest.raises(InvitationRefused) as revoked:
        redeem_invitation(engine, withdrawn, T0)
    assert revoked.value.reason == "revoked"

    for bogus in ("phi_nothing-like-this", "ph_token-not-an-invite", "", "phi_" + "x" * 200):
        with pytest.raises(InvitationRefused) as unknown:
            redeem_invitation(engine, bogus, T0)
        assert unknown.value.reason == "unknown"
    assert list_tokens(engine) == []


def test_two_simultaneous_uses_make_one_token(engine: Engine) -> None:
    _, secret = create_invitation(engine, "小张", Role.VOLUNTEER, T0, DAY)

    def use() -> str:
        try:
            return redeem_invitation(engine, secret, T0).token
        except InvitationRefused as refused:
            return refused.reason

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: use(), range(4)))
    assert sorted(r for r in results if r == "used") == ["used"] * 3
    assert len(list_tokens(engine)) == 1


@pytest.mark.parametrize(
    ("name", "role", "valid_for"),
    [
        ("", Role.VOLUNTEER, DAY),
        ("x" * 129, Role.VOLUNTEER, DAY),
        ("admin", Role.ADMIN, DAY),
        ("ok", Role.VOLUNTEER, timedelta(0)),
        ("ok", Role.VOLUNTEER, timedelta(days=31)),
    ],
)
def test_bad_invitations_are_not_made(
    engine: Engine, name: str, role: Role, valid_for: timedelta
) -> None:
    with pytest.raises(ValueError):
        create_invitation(engine, name, role, T0, valid_for)
    assert list_invitations(engine) == []


def test_validity_and_link() -> None:
    assert parse_validity("90m") == timedelta(minutes=90)
    assert parse_validity("48h") == timedelta(hours=48)
    assert parse_validity("7d") == timedelta(days=7)
    assert parse_validity("3600") == timedelta(hours=1)
    for bad in ("", "h", "-1d", "1.5h", "7 weeks"):
        with pytest.raises(ValueError):
            parse_validity(bad)
    assert invite_link("http://127.0.0.1:8080", "volunteer", "phi_s") == (
        "http://127.0.0.1:8080/report#invite=phi_s"
    )
    assert invite_link("http://h:1/", "operator", "phi_s") == "http://h:1/#invite=phi_s"


def test_up_offers_demo_links_only_on_the_local_default(tmp_path: Path) -> None:
    from infra.settings import Settings

    local = Settings(state_dir=tmp_path, http_port=18080)
    migrate(local.resolved_database_url())
    lines = "\n".join(welcome_lines(local, T0))
    assert "http://127.0.0.1:18080/#invite=phi_" in lines
    assert "http://127.0.0.1:18080/report#invite=phi_" in lines
    assert "local default" in lines
    eng = make_engine(local.resolved_database_url())
    try:
        assert [i.role for i in list_invitations(eng)] == [Role.OPERATOR, Role.VOLUNTEER]
    finally:
        eng.dispose()

    exposed = Settings(state_dir=tmp_path / "other", http_host="0.0.0.0")
    lines = "\n".join(welcome_lines(exposed, T0))
    assert "#invite=" not in lines and "not the local default" in lines


# -- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    return make_api(tmp_path)


def test_exchange_over_http(api: ApiSetup) -> None:
    _, secret = create_invitation(api.engine, "志愿者 小陈", Role.VOLUNTEER, api.clock(), DAY)
    with TestClient(api.app) as client:
        response = client.post("/api/invitations/exchange", json={"invite": secret})
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert (body["name"], body["role"]) == ("志愿者 小陈", "volunteer")
        me = client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
        got = me.json()
        assert (got["name"], got["role"], got["expires_at"]) == ("志愿者 小陈", "volunteer", None)
        assert got["principal"].startswith("p_")

        again = client.post("/api/invitations/exchange", json={"invite": secret})
        assert again.status_code == 410
        assert again.json() == {
            "error": {
                "code": "invitation_refused",
                "message": REFUSALS["used"],
                "details": [
                    {
                        "loc": ["body", "invite"],
                        "field": "invite",
                        "msg": REFUSALS["used"],
                        "type": "used",
                    }
                ],
            }
        }
        assert "已使用过" in REFUSALS["used"] and "used already" in REFUSALS["used"]

        _, late = create_invitation(api.engine, "x", Role.VOLUNTEER, api.clock(), DAY)
        api.clock.advance(DAY.total_seconds())
        expired = client.post("/api/invitations/exchange", json={"invite": late})
        assert expired.status_code == 410
        assert expired.json()["error"]["details"][0]["type"] == "expired"
        assert "已过期" in expired.json()["error"]["message"]

        unknown = client.post("/api/invitations/exchange", json={"invite": "phi_nope"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["details"][0]["type"] == "unknown"
        missing = client.post("/api/invitations/exchange", json={})
        assert missing.status_code == 422
        assert missing.json()["error"]["details"][0]["field"] == "invite"


def test_an_invitation_whose_token_could_not_be_made_can_be_used_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import infra.invitations as invitations

    _, secret = create_invitation(engine, "小林", Role.VOLUNTEER, T0, DAY)

    def broken(*_args: object, **_kwargs: object) -> str:
        raise RuntimeError("database went away")

    monkeypatch.setattr(invitations, "create_token", broken)
    with pytest.raises(RuntimeError):
        redeem_invitation(engine, secret, T0)
    (info,) = list_invitations(engine)
    assert info.state(T0) == "open"
    monkeypatch.undo()
    assert redeem_invitation(engine, secret, T0).name == "小林"
