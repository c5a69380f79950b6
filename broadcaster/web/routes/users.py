"""/api/v1/users and tokens. Admins manage users; everyone makes their own tokens (nobody
another's); a new admin waits for a second admin's confirmation. A token is shown once, in
the answer that made it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from broadcaster.errors import Forbidden
from broadcaster.models import User
from broadcaster.users import auth
from broadcaster.web.common import ERRORS, Id
from broadcaster.web.deps import Admin, Anyone, Db

router = APIRouter(prefix="/api/v1", tags=["users"], responses=ERRORS)


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["official", "operator", "admin"]
    password: str | None = Field(
        default=None, min_length=auth.MIN_PASSWORD, max_length=200, description="for the dashboard"
    )


class UserOut(BaseModel):
    id: int
    name: str
    role: str
    active: bool
    created_at: datetime
    has_password: bool


class NewToken(BaseModel):
    user: UserOut
    token_id: int
    token: str = Field(description="shown once: store it now, riskcast keeps only its hash")
    pending: bool = Field(
        default=False, description="a new admin, inactive until a second admin confirms them"
    )


class TokenOut(BaseModel):
    id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _out(u: User) -> UserOut:
    return UserOut(
        id=u.id,
        name=u.name,
        role=u.role,
        active=u.active,
        created_at=u.created_at,
        has_password=bool(u.password_hash),
    )


def forbidden(exc: Forbidden) -> HTTPException:
    return HTTPException(403, str(exc))


@router.get("/users")
def list_users(_caller: Admin, session: Db) -> list[UserOut]:
    return [_out(u) for u in auth.list_users(session)]


@router.post("/users", status_code=201)
def create_user(body: UserIn, caller: Admin, session: Db) -> NewToken:
    """A user and their first token. A new admin is inactive (``pending``) while another
    admin exists who can confirm them (``POST /users/{name}/confirm``)."""
    try:
        user, row, token = auth.add_user(
            session, caller, body.name, role=body.role, password=body.password
        )
    except Forbidden as exc:
        raise forbidden(exc) from exc
    return NewToken(user=_out(user), token_id=row.id, token=token, pending=not user.active)


@router.post("/users/{name}/tokens", status_code=201)
def new_token(name: str, caller: Anyone, session: Db) -> NewToken:
    """A new token for yourself (``name`` is yours, or ``me``): nobody, not even an admin,
    makes a token for someone else (403)."""
    try:
        row, token = auth.issue_own_token(session, caller, caller.name if name == "me" else name)
    except Forbidden as exc:
        raise forbidden(exc) from exc
    user = auth.get_user(session, caller.name)
    return NewToken(user=_out(user), token_id=row.id, token=token)


@router.post("/users/{name}/confirm")
def confirm_admin(name: str, caller: Admin, session: Db) -> UserOut:
    """Activate an admin created by another admin: a new admin needs two."""
    try:
        return _out(auth.confirm_admin(session, caller, name))
    except Forbidden as exc:
        raise forbidden(exc) from exc


@router.get("/users/{name}/tokens")
def list_tokens(name: str, _caller: Admin, session: Db) -> list[TokenOut]:
    user = auth.get_user(session, name)
    return [
        TokenOut(
            id=t.id, created_at=t.created_at, last_used_at=t.last_used_at, revoked_at=t.revoked_at
        )
        for t in auth.list_tokens(session, user)
    ]


@router.post("/users/{name}/deactivate")
def deactivate_user(name: str, caller: Admin, session: Db) -> UserOut:
    user = auth.get_user(session, name)
    auth.deactivate(session, user)
    caller.record(session, "user.deactivate", "user", user.id, name=user.name)
    return _out(user)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: Id, caller: Admin, session: Db) -> TokenOut:
    t = auth.revoke_token(session, token_id)
    caller.record(session, "token.revoke", "token", t.id, user_id=t.user_id)
    return TokenOut(
        id=t.id, created_at=t.created_at, last_used_at=t.last_used_at, revoked_at=t.revoked_at
    )
