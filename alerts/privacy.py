"""What of an alert may leave the control room: counts and categories, never a volunteer's
identity or words (PIPL: personal data goes only where it is needed).

CAP messages (``scope: Public``) and webhooks to outside targets carry an alert's evidence
through :func:`public_evidence`; the operators' own views keep the whole evidence.
"""

from __future__ import annotations

from typing import Final

from pydantic import JsonValue

#: Evidence keys that identify volunteers or carry their words (report ids lead to both).
PERSONAL_EVIDENCE: Final = frozenset({"reporters", "reports", "description"})


def public_evidence(evidence: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """``evidence`` without what identifies a volunteer; counts (``report_count``,
    ``reporter_count``) and the category stay."""
    return {k: v for k, v in evidence.items() if k not in PERSONAL_EVIDENCE}
