"""Bearer-token access: who is calling, and may they do this?

Roles are ordered: a volunteer submits and reads its own reports; an operator also reads and acts
on alerts; an admin also manages silences. No token, an unknown token or a revoked one: 401 with
``WWW-Authenticate: Bearer``. A known token whose role is too low: 403.

Token lookups hit the database, so the dependencies are plain functions: FastAPI runs them in
its threadpool, off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from api.errors import BadRequest, Forbidden, InvalidInput, Unauthorized
from infra.tokens import Role, verify_token

__all__ = [
    "RANK",
    "AdminCaller",
    "Caller",
    "OperatorCaller",
    "StreamCaller",
    "VolunteerCaller",
    "reject_unknown_query",
    "require",
]

RANK: dict[Role, int] = {Role.VOLUNTEER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}

# auto_error=False: a missing header is our 401 (one error shape), not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="A token from `puhui token create`")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: the token's name and role."""

    name: str
    role: Role

    def at_least(self, role: Role) -> bool:
        """True when the caller's role includes ``role``'s rights."""
        return RANK[self.role] >= RANK[role]

    @property
    def is_operator(self) -> bool:
        return self.at_least(Role.OPERATOR)


def _check(engine: Engine, token: str | None, role: Role) -> Caller:
    if not token:
        raise Unauthorized()
    info = verify_token(engine, token)
    if info is None:
        raise Unauthorized("the token is unknown or revoked")
    caller = Caller(info.name, info.role)
    if not caller.at_least(role):
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


def require(role: Role, *, query_token: bool = False) -> Callable[..., Caller]:
    """A dependency that authenticates the caller and demands at least ``role``.

    With ``query_token``, the token may come as ``?access_token=`` instead (for ``EventSource``,
    which cannot set headers); both at once is a 400 (RFC 6750 §2).
    """
    if query_token:

        def dependency_q(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
            access_token: Annotated[
                str | None,
                Query(
                    description="The bearer token, for clients that cannot set headers "
                    "(EventSource). Prefer the Authorization header.",
                    max_length=256,
                ),
            ] = None,
        ) -> Caller:
            if credentials is not None and access_token is not None:
                # RFC 6750 §2: a client must not send the token by more than one method.
                raise BadRequest("send the token once: the Authorization header or access_token")
            token = credentials.credentials if credentials else access_token
            caller = _check(request.app.state.engine, token, role)
            reject_unknown_query(request)
            return caller

        return dependency_q

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        token = credentials.credentials if credentials else None
        caller = _check(request.app.state.engine, token, role)
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
StreamCaller = Annotated[Caller, Depends(require(Role.OPERATOR, query_token=True))]
"""An operator or admin token, from the header or ``?access_token=``."""
