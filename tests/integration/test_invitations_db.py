"""Invitations on SQLite and a real PostgreSQL: the migration makes the table, and of many
simultaneous uses of one link exactly one makes a token."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from infra.invitations import (
    InvitationRefused,
    create_invitation,
    list_invitations,
    redeem_invitation,
)
from infra.tokens import Role, list_tokens, verify_token
from tests.integration import test_persistence

pytestmark = pytest.mark.integration

engine = test_persistence.engine  # the fixture: SQLite, then a fresh PostgreSQL schema

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def test_many_simultaneous_uses_make_one_token(engine: Engine) -> None:
    _, secret = create_invitation(engine, "志愿者 小马", Role.VOLUNTEER, T0, timedelta(hours=1))

    def use(_: int) -> str:
        try:
            return redeem_invitation(engine, secret, T0 + timedelta(minutes=1)).token
        except InvitationRefused as refused:
            return refused.reason

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(use, range(8)))
    tokens = [r for r in results if r.startswith("ph_")]
    assert len(tokens) == 1 and results.count("used") == 7, results
    (made,) = list_tokens(engine)
    info = verify_token(engine, tokens[0])
    assert info is not None and info.id == made.id and info.name == "志愿者 小马"
    (invitation,) = list_invitations(engine)
    assert invitation.token_id == made.id
    assert invitation.used_at == T0 + timedelta(minutes=1)
