"""API bearer tokens, stored as SHA-256 digests only.

A token is ``ph_`` followed by 32 random bytes in URL-safe base64. The secret is returned once,
by :func:`create_token`; the database keeps its digest, so a leaked database does not leak
usable tokens. Lookups go through the digest (a unique index), which never compares the secret
itself byte by byte. The clock is an argument: nothing here reads the current time.

A token belongs to a **principal**: a stable id (``p_`` + 16 random hex digits) that identifies
the person or system behind it. The display name is free text — two volunteers may both be
王芳 — so reports, rate limits and "my reports" go by the principal. A replacement token for the
same person is created with ``principal=`` of the old one. A token may carry an expiry
(``expires_at``); an expired token verifies like a revoked one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from infra.db import TokenRow

__all__ = [
    "NAME_MAX_LENGTH",
    "PRINCIPAL_PREFIX",
    "TOKEN_PREFIX",
    "Role",
    "TokenInfo",
    "create_token",
    "hash_token",
    "list_tokens",
    "new_principal",
    "parse_lifetime",
    "revoke_token",
    "token_active",
    "verify_token",
]

TOKEN_PREFIX = "ph_"  # noqa: S105 - a public marker, not a secret
PRINCIPAL_PREFIX = "p_"
NAME_MAX_LENGTH = 128
_TOKEN_BYTES = 32


class Role(StrEnum):
    """What a token may do; later roles include the earlier ones' rights."""

    VOLUNTEER = "volunteer"
    #: A member of a unit cases are dispatched to (``--unit``); sees its unit's cases only.
    RESPONDER = "responder"
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
    principal: str = ""
    expires_at: datetime | None = None
    unit_id: str | None = None

    @property
    def active(self) -> bool:
        """True unless the token has been revoked (see :meth:`valid_at` for expiry too)."""
        return self.revoked_at is None

    def valid_at(self, now: datetime) -> bool:
        """True when the token is neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


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
        principal=row.principal,
        expires_at=row.expires_at,
        unit_id=row.unit_id,
    )


_LIFETIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_LIFETIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_lifetime(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"8h"``, ``"7d"`` as a positive ``timedelta`` (``ValueError``
    otherwise): the ``--expires-in`` of ``puhui token create``."""
    match = _LIFETIME.match(text)
    if match is None:
        raise ValueError(f"{text[:32]!r} is not a lifetime like 90s, 30m, 8h or 7d")
    lifetime = timedelta(seconds=float(match.group(1)) * _LIFETIME_UNITS[match.group(2)])
    if lifetime <= timedelta(0):
        raise ValueError("a lifetime must be positive")
    return lifetime


def new_principal() -> str:
    """A fresh principal id: ``p_`` and 16 random hex digits."""
    return PRINCIPAL_PREFIX + secrets.token_hex(8)


def create_token(
    engine: Engine,
    name: str,
    role: Role,
    now: datetime,
    *,
    expires_in: timedelta | None = None,
    principal: str | None = None,
    unit_id: str | None = None,
) -> str:
    """Create a token called ``name`` with ``role`` and return its secret (shown only here).

    ``name`` must be 1 to 128 characters after trimming surrounding whitespace; ``now`` must be
    timezone-aware; ``expires_in``, if given, positive (the token stops working at
    ``now + expires_in``). ``principal`` names an existing principal (a replacement token for the
    same person); by default the token gets a new one. A responder token needs ``unit_id`` (the
    caller checks it against the units file); other roles take none. Raises ``ValueError``
    otherwise.
    """
    clean = name.strip()
    if not 1 <= len(clean) <= NAME_MAX_LENGTH:
        raise ValueError(f"token name must be 1 to {NAME_MAX_LENGTH} characters")
    role = Role(role)
    if role is Role.RESPONDER and not unit_id:
        raise ValueError("a responder token needs a unit (--unit UNIT_ID)")
    if role is not Role.RESPONDER and unit_id:
        raise ValueError("only responder tokens belong to a unit")
    _require_aware(now)
    if expires_in is not None and expires_in <= timedelta(0):
        raise ValueError("expires_in must be positive")
    if principal is not None:
        principal = principal.strip()
        with Session(engine) as session:
            known = session.scalars(
                select(TokenRow.id).where(TokenRow.principal == principal).limit(1)
            ).first()
        if known is None:
            raise ValueError(f"no token belongs to principal {principal[:128]!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    with Session(engine) as session, session.begin():
        session.add(
            TokenRow(
                name=clean,
                role=role.value,
                token_hash=hash_token(token),
                created_at=now,
                principal=principal or new_principal(),
                expires_at=None if expires_in is None else now + expires_in,
                unit_id=unit_id,
            )
        )
    return token


def verify_token(engine: Engine, token: str, now: datetime | None = None) -> TokenInfo | None:
    """The token's facts if ``token`` is known and not revoked, else ``None``; with ``now``, an
    expired token is ``None`` too."""
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
        if now is not None and row.expires_at is not None and now >= row.expires_at:
            return None
        return _info(row)


def token_active(engine: Engine, token_id: int, now: datetime) -> bool:
    """True while the token ``token_id`` exists, is not revoked and has not expired at ``now``
    (what an open stream re-checks every few seconds)."""
    with Session(engine) as session:
        row = session.get(TokenRow, token_id)
        return row is not None and _info(row).valid_at(now)


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
