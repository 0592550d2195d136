"""Wire contract of ``puhui.cases``: the commands that move a case through 立案 → 派遣 → 处置 →
核查 → 结案 (key: the case id). The case worker is their single writer's input; the HTTP API
and the worker's overdue check produce them. See ``alerts/cases.py`` for the rules."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from models.contracts import FREE_TEXT_CHARS, Level, _check_size, _rejection

__all__ = [
    "CASE_ID_PATTERN",
    "PHOTO_ID_PATTERN",
    "TOPIC_CASES",
    "ActorRole",
    "CaseAction",
    "CaseCommand",
    "VerifyResult",
    "decode_case_command",
]

TOPIC_CASES: Final = "puhui.cases"

#: ``cs_`` and 32 lowercase hex digits.
CASE_ID_PATTERN: Final = r"^cs_[0-9a-f]{32}$"
#: A photo id of ``POST /api/photos``: ``ph_`` and 32 lowercase hex digits.
PHOTO_ID_PATTERN: Final = r"^ph_[0-9a-f]{32}$"
_CASE_ID_RE = re.compile(CASE_ID_PATTERN)

_Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$")]
_Note = Annotated[str, Field(max_length=2000), FREE_TEXT_CHARS]


class CaseAction(StrEnum):
    """What a command does to a case."""

    OPEN = "open"  # 立案 (operator)
    DISPATCH = "dispatch"  # 派遣 / 改派 (operator)
    ACCEPT = "accept"  # 接单 (responder of the unit)
    ARRIVE = "arrive"  # 到场 (responder of the unit)
    HANDLE = "handle"  # 处置完成 (responder of the unit)
    VERIFY = "verify"  # 核查: closed 结案 or returned 退回 (operator)
    CANCEL = "cancel"  # 撤销 (operator)
    ESCALATE = "escalate"  # a step went past its time limit (the system)


class ActorRole(StrEnum):
    """The role a command was issued with (from the caller's token)."""

    OPERATOR = "operator"
    ADMIN = "admin"
    RESPONDER = "responder"
    SYSTEM = "system"


class VerifyResult(StrEnum):
    CLOSED = "closed"
    RETURNED = "returned"


class CaseCommand(BaseModel):
    """One command on ``puhui.cases``; ``command_id`` makes it idempotent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: _Id
    case_id: Annotated[str, Field(pattern=CASE_ID_PATTERN)]
    action: CaseAction
    actor: _Id
    actor_role: ActorRole
    #: The responder's unit (from the token), for accept / arrive / handle.
    actor_unit: _Id | None = None
    issued_at: AwareDatetime
    note: _Note | None = None
    # open
    title: Annotated[str, Field(min_length=1, max_length=200), FREE_TEXT_CHARS] | None = None
    category: _Id | None = None
    level: Level | None = None
    zone_id: _Id | None = None
    alert_ids: tuple[_Id, ...] = ()
    report_ids: tuple[_Id, ...] = ()
    # dispatch
    unit_id: _Id | None = None
    # handle
    photo_ids: tuple[Annotated[str, Field(pattern=PHOTO_ID_PATTERN)], ...] = ()
    # verify
    result: VerifyResult | None = None
    # escalate: the step (``step_seq``) that went overdue
    step: int | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def decode_case_command(raw: bytes) -> CaseCommand:
    """Parse one ``puhui.cases`` record (raises :class:`RejectedRecord`)."""
    _check_size(raw)
    try:
        return CaseCommand.model_validate_json(raw)
    except ValidationError as exc:
        raise _rejection(exc) from None


def is_case_id(text: str) -> bool:
    return bool(_CASE_ID_RE.match(text))
