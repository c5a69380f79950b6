"""/api/v1/users and tokens. Admins manage users; everyone makes their own tokens (nobody
another's); a new admin waits for a second admin's confirmation. A token is shown once, in
the answer that made it. Admins also require two-factor codes of a user, or reset a user's
enrolment (a lost phone)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.errors import Forbidden
from broadcaster.models import Organisation, User
from broadcaster.users import auth, totp
from broadcaster.web.common import ERRORS, Id
from broadcaster.web.deps import Admin, Anyone, Db

router = APIRouter(prefix="/api/v1", tags=["users"], responses=ERRORS)


class UserIn(BaseModel):
    # A password is the person's own, set when they accept their invitation: one sent here
    # is refused, not ignored.
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["official", "operator", "admin"]
    organisation: str | None = Field(
        default=None, max_length=64, description="its slug; the default organisation if unset"
    )
    areas: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=100,
        description="community slugs the user works over (with everything below them); "
        "unset: national",
    )


class AreasIn(BaseModel):
    areas: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=100, description="community slugs; null: national"
    )


class AreasOut(BaseModel):
    name: str
    organisation: str | None
    national: bool
    areas: list[str]


class OrganisationIn(BaseModel):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)


class OrganisationOut(BaseModel):
    id: int
    slug: str
    name: str


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


class NewUser(BaseModel):
    user: UserOut
    invitation: str = Field(
        description="shown once: pass it to the person, who accepts it for their own token "
        "and password (riskcast users accept NAME, or /login/invite on the dashboard)"
    )
    expires_at: datetime
    pending: bool = Field(
        default=False, description="a new admin, inactive until a second admin confirms them"
    )


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
        two_factor=totp.enrolled(u),
        two_factor_required=u.totp_required,
    )


def forbidden(exc: Forbidden) -> HTTPException:
    return HTTPException(403, str(exc))


@router.get("/users")
def list_users(_caller: Admin, session: Db) -> list[UserOut]:
    return [_out(u) for u in auth.list_users(session)]


@router.post("/users", status_code=201)
def create_user(body: UserIn, caller: Admin, session: Db) -> NewUser:
    """A user and their invitation (shown once): they accept it for their own token and
    password, so no admin ever holds a credential of theirs. A new admin is inactive
    (``pending``) while another admin exists who can confirm them
    (``POST /users/{name}/confirm``)."""
    try:
        user, first = auth.add_user(
            session,
            caller,
            body.name,
            role=body.role,
            organisation=body.organisation,
            areas=body.areas,
        )
    except Forbidden as exc:
        raise forbidden(exc) from exc
    assert first.invitation is not None and first.expires_at is not None  # noqa: S101
    return NewUser(
        user=_out(user),
        invitation=first.invitation,
        expires_at=first.expires_at,
        pending=not user.active,
    )


class InvitationOut(BaseModel):
    invitation: str
    expires_at: datetime


@router.post("/users/{name}/invite", status_code=201)
def invite_user(name: str, caller: Admin, session: Db) -> InvitationOut:
    """A new invitation for someone with no way in (no password, no live token)."""
    try:
        _user, code, expires = auth.reinvite(session, caller, name)
    except Forbidden as exc:
        raise forbidden(exc) from exc
    return InvitationOut(invitation=code, expires_at=expires)


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


def _areas_out(session: Session, user: User) -> AreasOut:
    org = session.get(Organisation, user.organisation_id) if user.organisation_id else None
    return AreasOut(
        name=user.name,
        organisation=org.slug if org else None,
        national=user.national,
        areas=scope.area_slugs(session, user),
    )


@router.get("/users/{name}/areas")
def user_areas(name: str, _caller: Admin, session: Db) -> AreasOut:
    """The user's organisation and the communities they work over."""
    return _areas_out(session, auth.get_user(session, name))


@router.put("/users/{name}/areas")
def set_user_areas(name: str, body: AreasIn, caller: Admin, session: Db) -> AreasOut:
    """Give the user these areas (each a community and everything below it), or none
    (``null``: national)."""
    return _areas_out(session, auth.set_user_areas(session, caller, name, body.areas))


@router.get("/organisations")
def list_organisations(_caller: Admin, session: Db) -> list[OrganisationOut]:
    return [
        OrganisationOut(id=o.id, slug=o.slug, name=o.name)
        for o in scope.list_organisations(session)
    ]


@router.post("/organisations", status_code=201)
def add_organisation(body: OrganisationIn, caller: Admin, session: Db) -> OrganisationOut:
    org = scope.add_organisation(session, body.slug, body.name)
    caller.record(session, "organisation.create", "organisation", org.id, slug=org.slug)
    return OrganisationOut(id=org.id, slug=org.slug, name=org.name)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: Id, caller: Admin, session: Db) -> TokenOut:
    t = auth.revoke_token(session, token_id)
    caller.record(session, "token.revoke", "token", t.id, user_id=t.user_id)
    return TokenOut(
        id=t.id, created_at=t.created_at, last_used_at=t.last_used_at, revoked_at=t.revoked_at
    )
