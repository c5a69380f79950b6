"""/api/v1/users and tokens (admins only). A token is shown once, in the answer that made it.
Admins also require two-factor codes of a user, or reset a user's enrolment (a lost phone)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from broadcaster.models import User
from broadcaster.users import auth, totp
from broadcaster.web.common import ERRORS, Id
from broadcaster.web.deps import Admin, Db

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
    two_factor: bool = Field(description="signs in to the dashboard with a code")
    two_factor_required: bool = Field(description="an admin requires codes of this user")


class TwoFactorIn(BaseModel):
    required: bool


class NewToken(BaseModel):
    user: UserOut
    token_id: int
    token: str = Field(description="shown once: store it now, riskcast keeps only its hash")


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
        two_factor=totp.enrolled(u),
        two_factor_required=u.totp_required,
    )


def _token(session: Session, user: User) -> NewToken:
    row, token = auth.issue_token(session, user)
    return NewToken(user=_out(user), token_id=row.id, token=token)


@router.get("/users")
def list_users(_caller: Admin, session: Db) -> list[UserOut]:
    return [_out(u) for u in auth.list_users(session)]


@router.post("/users", status_code=201)
def create_user(body: UserIn, caller: Admin, session: Db) -> NewToken:
    user = auth.create_user(session, body.name, role=body.role, password=body.password)
    caller.record(session, "user.create", "user", user.id, name=user.name, role=user.role)
    return _token(session, user)


@router.post("/users/{name}/tokens", status_code=201)
def new_token(name: str, caller: Admin, session: Db) -> NewToken:
    user = auth.get_user(session, name)
    new = _token(session, user)
    caller.record(session, "token.create", "user", user.id, token_id=new.token_id)
    return new


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


@router.post("/users/{name}/two-factor")
def require_two_factor(name: str, body: TwoFactorIn, caller: Admin, session: Db) -> UserOut:
    """Require (or stop requiring) a two-factor code of this user at dashboard sign-in;
    one not enrolled yet is sent to enrol at their next page."""
    user = auth.get_user(session, name)
    totp.set_required(session, user, body.required)
    caller.record(session, "user.two_factor.require", "user", user.id, required=body.required)
    return _out(user)


@router.post("/users/{name}/two-factor/reset")
def reset_two_factor(name: str, caller: Admin, session: Db) -> UserOut:
    """Forget this user's authenticator (a lost phone): they set up a new one."""
    user = auth.get_user(session, name)
    totp.reset(session, user)
    caller.record(session, "user.two_factor.reset", "user", user.id)
    return _out(user)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: Id, caller: Admin, session: Db) -> TokenOut:
    t = auth.revoke_token(session, token_id)
    caller.record(session, "token.revoke", "token", t.id, user_id=t.user_id)
    return TokenOut(
        id=t.id, created_at=t.created_at, last_used_at=t.last_used_at, revoked_at=t.revoked_at
    )
