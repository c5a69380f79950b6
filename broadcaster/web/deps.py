"""Request dependencies: the runtime, one session (one transaction) per request, the caller
(from ``Authorization: Bearer <token>``) and the roles a route admits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from broadcaster import audit, auth
from broadcaster.db import session_scope
from broadcaster.models import Role
from broadcaster.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="An API token from `riskcast users token`.")


def get_rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def db_session(rt: Annotated[Runtime, Depends(get_rt)]) -> Iterator[Session]:
    """The request's unit of work: committed when the handler returns, rolled back on error.
    Depend on it through :data:`Db` (or ``Depends(db_session, scope="function")``): FastAPI's
    default scope would commit only after the response is sent, so a client (a browser
    following the dashboard's redirect) could read the old state, or be told of a change
    whose commit then failed."""
    with session_scope(rt.sessions) as session:
        yield session


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@dataclass(frozen=True)
class Caller:
    """Who is calling, and from where: what the audit log records."""

    user_id: int
    name: str
    role: str
    source: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def record(
        self,
        session: Session,
        action: str,
        object_type: str | None = None,
        object_id: object = None,
        **detail: Any,
    ) -> None:
        audit.record(
            session,
            actor=self.name,
            user_id=self.user_id,
            action=action,
            object_type=object_type,
            object_id=object_id,
            detail=detail,
            source=self.source,
        )


UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def current_caller(
    request: Request,
    session: Annotated[Session, Depends(db_session, scope="function")],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing Authorization: Bearer <token>", headers=UNAUTHORIZED)
    user = auth.user_for_token(session, credentials.credentials)
    if user is None:
        raise HTTPException(401, "invalid or revoked token", headers=UNAUTHORIZED)
    return Caller(user_id=user.id, name=user.name, role=user.role, source=client_ip(request))


def require(*roles: Role) -> Callable[..., Caller]:
    """A dependency admitting callers with one of ``roles`` (admins always): 401 without a
    valid token, 403 with another role."""
    allowed = frozenset(r.value for r in roles) | {Role.ADMIN.value}

    def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if caller.role not in allowed:
            raise HTTPException(
                403, f"this needs the role {' or '.join(sorted(allowed))}; you are {caller.role}"
            )
        return caller

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]  # read by the route tests
    return dependency


ANYONE = (Role.OFFICIAL, Role.OPERATOR)
Official = Annotated[Caller, Depends(require(Role.OFFICIAL))]
Operator = Annotated[Caller, Depends(require(Role.OPERATOR))]
Anyone = Annotated[Caller, Depends(require(*ANYONE))]
Admin = Annotated[Caller, Depends(require())]
Db = Annotated[Session, Depends(db_session, scope="function")]
Rt = Annotated[Runtime, Depends(get_rt)]
