"""Bearer-token access: who is calling, and may they do this?

Roles are ordered: a volunteer submits and reads its own reports; an operator also reads and acts
on alerts; an admin also manages silences. No token, an unknown token or a revoked one: 401 with
``WWW-Authenticate: Bearer``. A known token whose role is too low: 403.

Token lookups hit the database, so the dependencies are plain functions: FastAPI runs them in
its threadpool, off the event loop.

Tokens travel in the ``Authorization`` header only: a URL ends up in access logs, browser
history and proxies' logs, so ``?access_token=`` is refused (400) on every endpoint. An expired
token is a 401 like a revoked one. An address that keeps failing (``PUHUI_AUTH_FAILURE_LIMIT``
401s within ``PUHUI_AUTH_FAILURE_WINDOW_SECONDS``) is answered 429 before any lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from api.errors import BadRequest, Forbidden, InvalidInput, Unauthorized
from api.limits import FailureGuard
from infra.tokens import Role, verify_token

__all__ = [
    "RANK",
    "URL_TOKEN_PARAMETERS",
    "AdminCaller",
    "Caller",
    "CaseCaller",
    "OperatorCaller",
    "StreamCaller",
    "VolunteerCaller",
    "reject_unknown_query",
    "require",
]

RANK: dict[Role, int] = {Role.VOLUNTEER: 1, Role.RESPONDER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}

# auto_error=False: a missing header is our 401 (one error shape), not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="A token from `puhui token create`")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: the token's display name and role, the stable id of the person
    or system behind it (``principal``: what reports and rate limits are keyed by) and the
    token's id (what an open stream re-checks)."""

    name: str
    role: Role
    principal: str = ""
    token_id: int = 0
    expires_at: datetime | None = None
    #: A responder's unit.
    unit_id: str | None = None

    def at_least(self, role: Role) -> bool:
        """True when the caller's role includes ``role``'s rights."""
        return RANK[self.role] >= RANK[role]

    @property
    def is_operator(self) -> bool:
        return self.at_least(Role.OPERATOR)


URL_TOKEN_PARAMETERS = frozenset({"access_token", "token", "ticket"})
"""Query parameters that would put a credential in a URL: refused, whatever the endpoint."""


def _check(request: Request, token: str | None, role: Role) -> Caller:
    for name in request.query_params:
        if name.lower() in URL_TOKEN_PARAMETERS:
            raise BadRequest(
                "tokens are not accepted in URLs (they end up in logs); "
                "send the header Authorization: Bearer <token>"
            )
    state = request.app.state
    engine: Engine = state.engine
    guard: FailureGuard | None = getattr(state, "auth_guard", None)
    address = request.client.host if request.client is not None else "unknown"
    if guard is not None:
        guard.check(address)
    ctx = getattr(state, "ctx", None)
    now = ctx.now() if ctx is not None else None
    info = verify_token(engine, token, now) if token else None
    if info is None:
        if guard is not None:
            guard.failed(address)
        if not token:
            raise Unauthorized()
        raise Unauthorized("the token is unknown, revoked or expired")
    caller = Caller(info.name, info.role, info.principal, info.id, info.expires_at, info.unit_id)
    if role is Role.RESPONDER:
        if caller.role is not Role.RESPONDER and not caller.is_operator:
            raise Forbidden(f"this needs the responder role; the token has {info.role.value}")
    elif not caller.at_least(role):
        raise Forbidden(f"this needs the {role.value} role; the token has {info.role.value}")
    return caller


_KNOWN_QUERY: dict[int, frozenset[str]] = {}


def _declared_query(route: Any) -> frozenset[str]:
    known = _KNOWN_QUERY.get(id(route))
    if known is None:
        names: set[str] = set()
        pending = [getattr(route, "dependant", None)]
        while pending:
            dependant = pending.pop()
            if dependant is None:
                continue
            names.update(field.alias for field in dependant.query_params)
            pending.extend(dependant.dependencies)
        known = _KNOWN_QUERY[id(route)] = frozenset(names)
    return known


def reject_unknown_query(request: Request) -> None:
    """422 naming a query parameter the endpoint does not take: ``?zone_id=`` where the filter
    is ``?zone=`` must not silently return everything."""
    route = request.scope.get("route")
    if route is None:
        return
    known = _declared_query(route)
    for name in request.query_params:
        if name not in known:
            accepted = ", ".join(sorted(known)) or "none"
            raise InvalidInput(
                ("query", name[:64]),
                f"unknown query parameter (accepted: {accepted})",
                "unknown_parameter",
            )


def require(role: Role) -> Callable[..., Caller]:
    """A dependency that authenticates the caller (``Authorization: Bearer``) and demands at
    least ``role``."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        token = credentials.credentials if credentials else None
        caller = _check(request, token, role)
        reject_unknown_query(request)
        return caller

    return dependency


# Ready-made parameter types (module level, so FastAPI can resolve them from annotations).
VolunteerCaller = Annotated[Caller, Depends(require(Role.VOLUNTEER))]
"""Any token: volunteer, operator or admin."""
OperatorCaller = Annotated[Caller, Depends(require(Role.OPERATOR))]
"""An operator or admin token."""
AdminCaller = Annotated[Caller, Depends(require(Role.ADMIN))]
"""An admin token."""
CaseCaller = Annotated[Caller, Depends(require(Role.RESPONDER))]
"""A responder (its unit's cases), an operator or an admin."""
StreamCaller = OperatorCaller
"""An operator or admin token (the console reads the stream with ``fetch``, which sends the
header; ``EventSource``, which cannot, is not supported: no token in a URL)."""
