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
    from streams.cli import main

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
