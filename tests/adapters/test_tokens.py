"""Bearer tokens: created, verified, listed and revoked against a real (SQLite) database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from infra.db import TokenRow, make_engine, migrate
from infra.tokens import (
    TOKEN_PREFIX,
    Role,
    TokenInfo,
    create_token,
    list_tokens,
    parse_lifetime,
    revoke_token,
    token_active,
    verify_token,
)

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    migrate(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


def test_create_verify_revoke(engine: Engine) -> None:
    token = create_token(engine, "张阿姨 (volunteer)", Role.VOLUNTEER, T0)
    assert token.startswith(TOKEN_PREFIX)
    assert len(token) > len(TOKEN_PREFIX) + 40

    info = verify_token(engine, token)
    assert info is not None
    assert info == TokenInfo(
        id=info.id,
        name="张阿姨 (volunteer)",
        role=Role.VOLUNTEER,
        created_at=T0,
        revoked_at=None,
        principal=info.principal,
        expires_at=None,
    )
    assert info.principal.startswith("p_") and len(info.principal) == 18
    assert info.active
    assert info.created_at.tzinfo is not None

    revoked_at = T0 + timedelta(hours=1)
    assert revoke_token(engine, info.id, revoked_at) is True
    assert verify_token(engine, token) is None
    # Revoking again changes nothing and keeps the first revocation time.
    assert revoke_token(engine, info.id, revoked_at + timedelta(hours=1)) is False
    [listed] = list_tokens(engine)
    assert listed.revoked_at == revoked_at
    assert not listed.active


def test_only_the_hash_is_stored(engine: Engine) -> None:
    token = create_token(engine, "ops", Role.OPERATOR, T0)
    with Session(engine) as session:
        row = session.scalars(select(TokenRow)).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.token_hash, row.name)
    # The secret appears in no column.
    with engine.connect() as conn:
        values = [str(v) for r in conn.execute(select(TokenRow.__table__)) for v in r]
    assert all(token not in v and token[len(TOKEN_PREFIX) :] not in v for v in values)


def test_unknown_and_malformed_tokens_are_rejected(engine: Engine) -> None:
    token = create_token(engine, "ops", Role.OPERATOR, T0)
    assert verify_token(engine, token + "x") is None
    assert verify_token(engine, token[len(TOKEN_PREFIX) :]) is None
    assert verify_token(engine, "") is None
    assert verify_token(engine, TOKEN_PREFIX) is None


def test_tokens_are_unique(engine: Engine) -> None:
    tokens = {create_token(engine, f"t{i}", Role.VOLUNTEER, T0) for i in range(20)}
    assert len(tokens) == 20


def test_list_never_shows_secrets(engine: Engine) -> None:
    a = create_token(engine, "volunteer-1", Role.VOLUNTEER, T0)
    b = create_token(engine, "control room", Role.OPERATOR, T0 + timedelta(minutes=1))
    create_token(engine, "root", Role.ADMIN, T0 + timedelta(minutes=2))
    listed = list_tokens(engine)
    assert [(t.name, t.role) for t in listed] == [
        ("volunteer-1", Role.VOLUNTEER),
        ("control room", Role.OPERATOR),
        ("root", Role.ADMIN),
    ]
    assert [t.created_at for t in listed] == [T0 + timedelta(minutes=m) for m in range(3)]
    assert all(isinstance(t, TokenInfo) for t in listed)
    assert a not in repr(listed) and b not in repr(listed)
    assert not hasattr(listed[0], "token_hash")


def test_revoke_unknown_id(engine: Engine) -> None:
    assert revoke_token(engine, 12345, T0) is False


@pytest.mark.parametrize("name", ["", "   ", "x" * 129])
def test_name_length_is_checked(engine: Engine, name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        create_token(engine, name, Role.ADMIN, T0)
    assert list_tokens(engine) == []


def test_name_of_128_characters_is_accepted(engine: Engine) -> None:
    create_token(engine, "名" * 128, Role.ADMIN, T0)
    assert list_tokens(engine)[0].name == "名" * 128


def test_naive_clock_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="timezone"):
        create_token(engine, "ops", Role.OPERATOR, datetime(2025, 3, 1, 8, 30))
    token = create_token(engine, "ops", Role.OPERATOR, T0)
    info = verify_token(engine, token)
    assert info is not None
    with pytest.raises(ValueError, match="timezone"):
        revoke_token(engine, info.id, datetime(2025, 3, 1, 9, 0))


def test_role_is_a_str_enum() -> None:
    assert [r.value for r in Role] == ["volunteer", "responder", "operator", "admin"]
    assert Role("operator") is Role.OPERATOR
    assert f"{Role.ADMIN}" == "admin"


def test_a_token_expires(engine: Engine) -> None:
    token = create_token(engine, "夜班 operator", Role.OPERATOR, T0, expires_in=timedelta(hours=8))
    info = verify_token(engine, token, T0 + timedelta(hours=7, minutes=59))
    assert info is not None and info.expires_at == T0 + timedelta(hours=8)
    assert token_active(engine, info.id, T0 + timedelta(hours=7, minutes=59))
    assert verify_token(engine, token, T0 + timedelta(hours=8)) is None
    assert not token_active(engine, info.id, T0 + timedelta(hours=8))
    assert not info.valid_at(T0 + timedelta(hours=9))
    for bad in (timedelta(0), timedelta(seconds=-1)):
        with pytest.raises(ValueError, match="expires_in"):
            create_token(engine, "x", Role.OPERATOR, T0, expires_in=bad)


def test_revocation_shows_in_token_active(engine: Engine) -> None:
    token = create_token(engine, "值班员", Role.OPERATOR, T0)
    info = verify_token(engine, token)
    assert info is not None and token_active(engine, info.id, T0)
    revoke_token(engine, info.id, T0)
    assert not token_active(engine, info.id, T0)
    assert not token_active(engine, 9999, T0)


def test_same_name_different_principals_and_a_replacement_keeps_its_principal(
    engine: Engine,
) -> None:
    first = verify_token(engine, create_token(engine, "王芳", Role.VOLUNTEER, T0))
    second = verify_token(engine, create_token(engine, "王芳", Role.VOLUNTEER, T0))
    assert first is not None and second is not None
    assert first.principal != second.principal
    again = verify_token(
        engine, create_token(engine, "王芳 (新手机)", Role.VOLUNTEER, T0, principal=first.principal)
    )
    assert again is not None and again.principal == first.principal
    with pytest.raises(ValueError, match="no token belongs to principal"):
        create_token(engine, "x", Role.VOLUNTEER, T0, principal="p_nobody")


def test_migration_gives_older_tokens_their_name_as_principal(tmp_path: Path) -> None:
    """Tokens made before revision 0007 keep their reports: the name becomes the principal."""
    from alembic import command
    from sqlalchemy import text

    from infra.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    make_engine(url).dispose()
    command.upgrade(alembic_config(url), "0006")
    old = make_engine(url)
    with old.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_tokens (name, role, token_hash, created_at) "
                "VALUES ('王芳', 'volunteer', :h, :at)"
            ),
            {"h": "0" * 64, "at": "2025-03-01 08:30:00.000000"},
        )
    old.dispose()
    migrate(url)
    new = make_engine(url)
    try:
        [info] = list_tokens(new)
        assert (info.name, info.principal, info.expires_at) == ("王芳", "王芳", None)
    finally:
        new.dispose()


def test_cli_creates_an_expiring_token_and_lists_principals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from entrypoints.cli import main

    monkeypatch.setenv("PUHUI_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PUHUI_STATE_DIR", str(tmp_path))
    argv = ["token", "create", "--role", "operator", "--name", "夜班 值班员", "--expires-in", "8h"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert "expires" in out[0]
    token = out[-1]
    assert token.startswith(TOKEN_PREFIX)
    assert main(["token", "list"]) == 0
    listed = capsys.readouterr().out
    assert "夜班 值班员" in listed and "\texpires " in listed and token not in listed
    assert main(["token", "create", "--role", "operator", "--name", "x", "--expires-in", "8"]) == 2
    assert "not a lifetime" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("8h", 28800), ("7d", 604800), ("1.5h", 5400)]
)
def test_lifetimes(text: str, seconds: int) -> None:
    assert parse_lifetime(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "8", "h", "-1h", "0h", "8 hours", "1w"])
def test_bad_lifetimes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_lifetime(text)
