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
    revoke_token,
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
        id=info.id, name="张阿姨 (volunteer)", role=Role.VOLUNTEER, created_at=T0, revoked_at=None
    )
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
    assert [r.value for r in Role] == ["volunteer", "operator", "admin"]
    assert Role("operator") is Role.OPERATOR
    assert f"{Role.ADMIN}" == "admin"
