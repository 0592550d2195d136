"""``puhui token create --role responder --unit UNIT_ID``: the token is bound to a unit of the units
file; an unknown or missing unit is a clear error and makes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.db import make_engine
from infra.tokens import Role, list_tokens, verify_token

pytestmark = pytest.mark.unit


def test_responder_tokens_need_a_known_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from entrypoints.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PUHUI_DATABASE_URL", url)
    monkeypatch.setenv("PUHUI_STATE_DIR", str(tmp_path))
    create = ["token", "create", "--role", "responder", "--name", "网格员 李强"]
    assert main([*create, "--unit", "grid-nowhere"]) == 2
    err = capsys.readouterr().err
    assert "unknown unit 'grid-nowhere'" in err and "grid-zhongtai" in err
    assert main(create) == 2
    assert "needs --unit" in capsys.readouterr().err
    assert (
        main(["token", "create", "--role", "operator", "--name", "x", "--unit", "grid-zhongtai"])
        == 2
    )
    assert "responder tokens only" in capsys.readouterr().err
    engine = make_engine(url)
    try:
        assert list_tokens(engine) == []  # nothing was made by the refused commands
        assert main([*create, "--unit", "grid-zhongtai"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert "unit grid-zhongtai" in out[0]
        info = verify_token(engine, out[-1])
        assert info is not None
        assert (info.role, info.unit_id) == (Role.RESPONDER, "grid-zhongtai")
    finally:
        engine.dispose()


def test_a_responder_invitation_makes_a_token_of_its_unit_and_opens_the_field_page(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    from entrypoints.cli import invite_link
    from infra.db import migrate
    from infra.invitations import create_invitation, redeem_invitation

    url = f"sqlite:///{tmp_path / 'inv.db'}"
    migrate(url)
    engine = make_engine(url)
    now = datetime(2026, 10, 1, 11, 0, tzinfo=UTC)
    try:
        with pytest.raises(ValueError, match="needs a unit"):
            create_invitation(engine, "网格员 王", Role.RESPONDER, now, timedelta(days=1))
        with pytest.raises(ValueError, match="only responder"):
            create_invitation(
                engine, "志愿者", Role.VOLUNTEER, now, timedelta(days=1), unit_id="grid-zhongtai"
            )
        _, secret = create_invitation(
            engine, "网格员 王", Role.RESPONDER, now, timedelta(days=1), unit_id="grid-zhonghai"
        )
        redeemed = redeem_invitation(engine, secret, now)
        info = verify_token(engine, redeemed.token)
        assert info is not None and (info.role, info.unit_id) == (Role.RESPONDER, "grid-zhonghai")
    finally:
        engine.dispose()
    assert invite_link("http://h:1", "responder", "phi_s") == "http://h:1/field#invite=phi_s"
