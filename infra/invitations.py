"""One-time sign-in invitations: a link (or its QR code) that turns into an API token once.

``puhui token invite`` stores an invitation for a name and role and prints the secret inside a
link's fragment (``/report#invite=...``), which browsers never send in a request line, so it
stays out of access logs. The page posts the secret to ``POST /api/invitations/exchange``, which
calls :func:`redeem_invitation`: the first use within the validity creates a token (through
:func:`infra.tokens.create_token`) and spends the invitation; any later use, or one after
expiry or revocation, is refused with the reason. Like tokens, invitations are stored as SHA-256
digests only. The clock is an argument: nothing here reads the current time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from infra.db import InvitationRow
from infra.tokens import NAME_MAX_LENGTH, Role, create_token, hash_token, verify_token
from models.errors import PuhuiError

__all__ = [
    "INVITE_PREFIX",
    "MAX_VALIDITY",
    "InvitationInfo",
    "InvitationRefused",
    "Redeemed",
    "create_invitation",
    "list_invitations",
    "parse_validity",
    "redeem_invitation",
    "revoke_invitation",
]

INVITE_PREFIX = "phi_"
MAX_VALIDITY = timedelta(days=30)
_SECRET_BYTES = 24

RefusalReason = Literal["unknown", "used", "expired", "revoked"]


class InvitationRefused(PuhuiError):
    """The invitation cannot be used: ``reason`` is unknown, used, expired or revoked."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(reason)
        self.reason: RefusalReason = reason


@dataclass(frozen=True, slots=True)
class InvitationInfo:
    """An invitation's public facts (never the secret, never the digest)."""

    id: int
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    token_id: int | None

    def state(self, now: datetime) -> str:
        """``open``, ``used``, ``revoked`` or ``expired`` as of ``now``."""
        if self.used_at is not None:
            return "used"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "open"


@dataclass(frozen=True, slots=True)
class Redeemed:
    """What the first use of an invitation gives: the new token (shown once) and its facts."""

    token: str
    token_id: int
    name: str
    role: Role


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _info(row: InvitationRow) -> InvitationInfo:
    return InvitationInfo(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        revoked_at=row.revoked_at,
        token_id=row.token_id,
    )


def create_invitation(
    engine: Engine,
    name: str,
    role: Role,
    now: datetime,
    valid_for: timedelta,
    unit_id: str | None = None,
) -> tuple[InvitationInfo, str]:
    """Store an invitation for ``name`` with ``role``; return its facts and its secret (shown
    only here). Admin invitations are refused: an admin token is made on the command line.

    Raises ``ValueError`` for a blank or too long name, an admin role, a naive ``now`` or a
    validity outside (0, 30 days]; a responder invitation needs ``unit_id`` (the token it
    makes belongs to that unit; the caller checks it against the units file), other roles take
    none.
    """
    clean = name.strip()
    if not 1 <= len(clean) <= NAME_MAX_LENGTH:
        raise ValueError(f"name must be 1 to {NAME_MAX_LENGTH} characters")
    role = Role(role)
    if role == Role.ADMIN:
        raise ValueError("admin tokens are not given by invitation: use `puhui token create`")
    if role is Role.RESPONDER and not unit_id:
        raise ValueError("a responder invitation needs a unit (--unit UNIT_ID)")
    if role is not Role.RESPONDER and unit_id:
        raise ValueError("only responder invitations belong to a unit")
    _require_aware(now)
    if not timedelta(0) < valid_for <= MAX_VALIDITY:
        raise ValueError("an invitation must be valid for more than 0 s and at most 30 days")
    secret = INVITE_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
    row = InvitationRow(
        name=clean,
        role=role.value,
        secret_hash=hash_token(secret),
        created_at=now,
        expires_at=now + valid_for,
        unit_id=unit_id,
    )
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(row)
    return _info(row), secret


def redeem_invitation(engine: Engine, secret: str, now: datetime) -> Redeemed:
    """Spend the invitation ``secret`` and create its token, or raise :class:`InvitationRefused`.

    The spending is one conditional UPDATE (unused, unrevoked, unexpired), so two simultaneous
    uses cannot both win: the loser sees ``used``.
    """
    _require_aware(now)
    if not secret.startswith(INVITE_PREFIX) or len(secret) > 128:
        raise InvitationRefused("unknown")
    digest = hash_token(secret)
    with engine.begin() as conn:
        claimed = conn.execute(
            update(InvitationRow)
            .where(
                InvitationRow.secret_hash == digest,
                InvitationRow.used_at.is_(None),
                InvitationRow.revoked_at.is_(None),
                InvitationRow.expires_at > now,
            )
            .values(used_at=now)
        ).rowcount
    with Session(engine) as session:
        row = session.scalars(
            select(InvitationRow).where(InvitationRow.secret_hash == digest)
        ).one_or_none()
        if row is None or not secrets.compare_digest(row.secret_hash, digest):
            raise InvitationRefused("unknown")
        if not claimed:
            info = _info(row)
            state = info.state(now)
            raise InvitationRefused("used" if state == "open" else state)  # type: ignore[arg-type]
        name, role, invitation_id, unit_id = row.name, Role(row.role), row.id, row.unit_id
    try:
        token = create_token(engine, name, role, now, unit_id=unit_id)
        token_info = verify_token(engine, token)
        if token_info is None:  # pragma: no cover - the token was created just above
            raise RuntimeError("the new token cannot be read back")
    except Exception:
        # No token came of it: give the invitation back, so the link can be tried again.
        with engine.begin() as conn:
            conn.execute(
                update(InvitationRow)
                .where(InvitationRow.id == invitation_id, InvitationRow.token_id.is_(None))
                .values(used_at=None)
            )
        raise
    with engine.begin() as conn:
        conn.execute(
            update(InvitationRow)
            .where(InvitationRow.id == invitation_id)
            .values(token_id=token_info.id)
        )
    return Redeemed(token=token, token_id=token_info.id, name=name, role=role)


def list_invitations(engine: Engine) -> list[InvitationInfo]:
    """Every invitation, oldest first."""
    with Session(engine) as session:
        rows = session.scalars(select(InvitationRow).order_by(InvitationRow.id))
        return [_info(row) for row in rows]


def revoke_invitation(engine: Engine, invitation_id: int, now: datetime) -> bool:
    """Void an unused invitation. True if this call did; False if there is no such invitation
    or it is used or revoked already (revoke the token it made with ``revoke_token``)."""
    _require_aware(now)
    with engine.begin() as conn:
        result = conn.execute(
            update(InvitationRow)
            .where(
                InvitationRow.id == invitation_id,
                InvitationRow.used_at.is_(None),
                InvitationRow.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return bool(result.rowcount)


def parse_validity(text: str) -> timedelta:
    """``90m``, ``48h``, ``7d`` (or plain seconds) as a duration; ``ValueError`` otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in units else "s"
    number = value[:-1] if value[-1:] in units else value
    if not number.isdigit():
        raise ValueError(f"not a duration: {text!r} (examples: 30m, 48h, 7d)")
    return timedelta(seconds=int(number) * units[unit])
