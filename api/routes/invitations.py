"""Sign-in by invitation: ``POST /api/invitations/exchange`` turns a one-time invitation secret
(``puhui token invite``) into an API token.

The pages read the secret from the link's fragment (``#invite=...``, never sent to a server, so
never in an access log) and post it here in the body. The first use within the invitation's
validity answers the token (``Cache-Control: no-store``); a second use, or one after expiry or
revocation, is refused in Chinese and English with the reason as ``details[0].type``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.context import ApiContext
from api.errors import ApiError, Unavailable
from api.schemas import ErrorBody, _In, _Out, error_responses
from infra.invitations import InvitationRefused, redeem_invitation

__all__ = ["REFUSALS", "invitations_router"]

REFUSALS: dict[str, str] = {
    "used": "此邀请链接已使用过，不能再次使用。请向街道工作人员索取新的链接。 "
    "This invitation link has been used already; ask the subdistrict office for a new one.",
    "expired": "此邀请链接已过期。请向街道工作人员索取新的链接。 "
    "This invitation link has expired; ask the subdistrict office for a new one.",
    "revoked": "此邀请链接已被撤销。请向街道工作人员索取新的链接。 "
    "This invitation link has been withdrawn; ask the subdistrict office for a new one.",
    "unknown": "此邀请链接无效，请检查链接是否完整。 "
    "This invitation link is not valid; check that the whole link was opened.",
}


class InvitationError(ApiError):
    """An invitation that cannot be used (any more): 410, or 404 when it was never issued."""

    status = 410
    code = "invitation_refused"

    def __init__(self, reason: str) -> None:
        super().__init__(REFUSALS[reason])
        # The shape of every error's details; ``type`` is the reason.
        self.details = [
            {"loc": ["body", "invite"], "field": "invite", "msg": REFUSALS[reason], "type": reason}
        ]


class UnknownInvitation(InvitationError):
    status = 404


class ExchangeIn(_In):
    """The invitation secret from the link's fragment."""

    invite: str = Field(
        min_length=1, max_length=128, description="The secret after `#invite=` in the link"
    )


class ExchangeOut(_Out):
    """The new token (shown once) and whose it is."""

    token: str
    name: str
    role: str


def invitations_router(ctx: ApiContext) -> APIRouter:
    """``POST /api/invitations/exchange``."""
    router = APIRouter(tags=["access"])

    @router.post(
        "/api/invitations/exchange",
        summary="Exchange a one-time invitation for a token",
        description="No token needed: the invitation is the credential. The first use within "
        "its validity answers a new bearer token for the invitation's name and role; the "
        "invitation is then spent. Used, expired or withdrawn: 410 with `details[0].type` "
        "(`used`, `expired`, `revoked`); never issued: 404 (`unknown`).",
        response_model=ExchangeOut,
        responses={
            **error_responses(400, 413, 422),
            404: {"model": ErrorBody, "description": "No such invitation"},
            410: {"model": ErrorBody, "description": "Used, expired or withdrawn"},
            503: {"model": ErrorBody, "description": "The database did not answer; try again"},
        },
    )
    async def exchange(body: ExchangeIn, response: Response) -> dict[str, Any]:
        try:
            redeemed = await run_in_threadpool(
                redeem_invitation, ctx.engine, body.invite.strip(), ctx.now()
            )
        except InvitationRefused as refused:
            if refused.reason == "unknown":
                raise UnknownInvitation("unknown") from None
            raise InvitationError(refused.reason) from None
        except SQLAlchemyError as exc:
            raise Unavailable("the database did not answer; try the link again") from exc
        response.headers["Cache-Control"] = "no-store"
        return {"token": redeemed.token, "name": redeemed.name, "role": redeemed.role.value}

    return router
