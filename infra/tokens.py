"""API bearer tokens, stored as SHA-256 digests only.

A token is ``ph_`` followed by 32 random bytes in URL-safe base64. The secret is returned once,
by :func:`create_token`; the database keeps its digest, so a leaked database does not leak
usable tokens. Lookups go through the digest (a unique index), which never compares the secret
itself byte by byte. The clock is an argument: nothing here reads the current time.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from infra.db import TokenRow

__all__ = [
    "NAME_MAX_LENGTH",
    "TOKEN_PREFIX",
    "Role",
    "TokenInfo",
    "create_token",
    "hash_token",
    "list_tokens",
    "revoke_token",
    "verify_token",
]

TOKEN_PREFIX = "ph_"  # noqa: S105 - a public marker, not a secret
NAME_MAX_LENGTH = 128
_TOKEN_BYTES = 32


class Role(StrEnum):
    """What a token may do; later roles include the earlier ones' rights."""

    VOLUNTEER = "volunteer"
    OPERATOR = "operator"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token's public facts (never the secret, never the digest)."""

    id: int
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """True unless the token has been revoked."""
        return self.revoked_at is None


def hash_token(token: str) -> str:
    """The hex SHA-256 digest under which ``token`` is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def create_token(engine: Engine, name: str, role: Role, now: datetime) -> str:
    """Create a token called ``name`` with ``role`` and return its secret (shown only here).

    ``name`` must be 1 to 128 characters after trimming surrounding whitespace; ``now`` must be
    timezone-aware. Raises ``ValueError`` otherwise.
    """
    clean = name.strip()
    if not 1 <= len(clean) <= NAME_MAX_LENGTH:
        raise ValueError(f"token name must be 1 to {NAME_MAX_LENGTH} characters")
    role = Role(role)
    _require_aware(now)
    token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    with Session(engine) as session, session.begin():
        session.add(
            TokenRow(name=clean, role=role.value, token_hash=hash_token(token), created_at=now)
        )
    return token


def verify_token(engine: Engine, token: str) -> TokenInfo | None:
    """The token's facts if ``token`` is known and not revoked, else ``None``."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    digest = hash_token(token)
    with Session(engine) as session:
        row = session.scalars(select(TokenRow).where(TokenRow.token_hash == digest)).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        # The lookup already matched; compare once more in constant time for good measure.
        if not secrets.compare_digest(row.token_hash, digest):
            return None
        return _info(row)


def list_tokens(engine: Engine) -> list[TokenInfo]:
    """Every token, revoked ones included, oldest first."""
    with Session(engine) as session:
        return [_info(row) for row in session.scalars(select(TokenRow).order_by(TokenRow.id))]


def revoke_token(engine: Engine, token_id: int, now: datetime) -> bool:
    """Revoke the token ``token_id`` as of ``now``.

    Returns True if this call revoked it, False if no such token exists or it was already
    revoked (the first revocation time is kept).
    """
    _require_aware(now)
    with engine.begin() as conn:
        result = conn.execute(
            update(TokenRow)
            .where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)
