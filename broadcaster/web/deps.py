"""Request dependencies: the runtime, one session (one transaction) per request, the caller
(from ``Authorization: Bearer <token>``) and the roles a route admits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from broadcaster.audit.service import Actor
from broadcaster.db import session_scope
from broadcaster.models import Role, User
from broadcaster.runtime import Runtime
from broadcaster.users import auth
from broadcaster.users import roles as rules

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


UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def token_user(session: Session, credentials: HTTPAuthorizationCredentials | None) -> User:
    """The user whose valid token ``credentials`` carry; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing Authorization: Bearer <token>", headers=UNAUTHORIZED)
    user = auth.user_for_token(session, credentials.credentials)
    if user is None:
        raise HTTPException(401, "invalid or revoked token", headers=UNAUTHORIZED)
    return user


def check_token(rt: Runtime, credentials: HTTPAuthorizationCredentials | None) -> None:
    """:func:`token_user` in a session of its own, closed without a commit: the look taken
    before a request's body is read (:mod:`broadcaster.web.gate`). The route's own
    :func:`current_caller` then takes the caller and records the token's use."""
    with rt.sessions() as session:
        token_user(session, credentials)


def current_caller(
    request: Request,
    session: Annotated[Session, Depends(db_session, scope="function")],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    user = token_user(session, credentials)
    return auth.actor_for(session, user, client_ip(request))


def require(*roles: Role) -> Callable[..., Actor]:
    """A dependency admitting callers with one of ``roles`` (admins always): 401 without a
    valid token, 403 with another role."""
    allowed = rules.admitted(roles)

    def dependency(caller: Annotated[Actor, Depends(current_caller)]) -> Actor:
        if not rules.admits(caller.role, allowed):
            raise HTTPException(403, rules.refusal(caller.role, allowed))
        return caller

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]  # read by the route tests
    return dependency


ANYONE = rules.ANYONE
Official = Annotated[Actor, Depends(require(Role.OFFICIAL))]
Operator = Annotated[Actor, Depends(require(Role.OPERATOR))]
Anyone = Annotated[Actor, Depends(require(*ANYONE))]
Admin = Annotated[Actor, Depends(require())]
Db = Annotated[Session, Depends(db_session, scope="function")]
Rt = Annotated[Runtime, Depends(get_rt)]
