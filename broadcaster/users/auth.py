"""Users, roles, API tokens and dashboard passwords.

An API token is 32 random bytes (``secrets.token_urlsafe``) shown once, when it is made;
only its SHA-256 is stored, so a copy of the database lets nobody call the API. Dashboard
passwords are hashed with Argon2id (``argon2-cffi``), whose parameters travel in the hash,
so they can be raised later and old hashes still verify (and are rehashed at login).

Roles: ``official`` composes, schedules and approves campaigns; ``operator`` monitors,
pauses, resumes, cancels and retries; ``admin`` does both and manages users, sees whole
phone numbers and the audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.audit import service as audit
from broadcaster.audit.service import Actor
from broadcaster.db import utcnow
from broadcaster.errors import Forbidden, InvalidInput, NotFound
from broadcaster.models import ApiToken, AuditEvent, Role, User

ROLES = tuple(r.value for r in Role)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
MIN_PASSWORD = 10

_hasher = PasswordHasher()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"{role!r} is not one of {', '.join(ROLES)}", field="role")
    return role


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"user {name!r} does not exist")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def create_user(
    session: Session,
    name: str,
    *,
    role: str,
    password: str | None = None,
    organisation: str | None = None,
    areas: Sequence[str] | None = None,
) -> User:
    """A new active user of ``organisation`` (the default one when None), national when
    ``areas`` is None, else working over those communities' subtrees."""
    if not NAME.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not a user name (letters, digits, . _ @ -, at most 100)", field="name"
        )
    check_role(role)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise InvalidInput(f"user {name!r} already exists", field="name")
    org = (
        scope.get_organisation(session, organisation)
        if organisation
        else scope.default_organisation(session)
    )
    user = User(name=name, role=role, active=True, organisation_id=org.id, national=True)
    if password is not None:
        user.password_hash = hash_password(password)
    session.add(user)
    session.flush()
    if areas is not None:
        scope.set_areas(session, user, areas)
    return user


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"must be at least {MIN_PASSWORD} characters", field="password")
    return _hasher.hash(password)


def set_password(session: Session, user: User, password: str) -> None:
    """A new password; every dashboard session signed in with the old one ends."""
    user.password_hash = hash_password(password)
    end_sessions(session, user)


def end_sessions(session: Session, user: User) -> None:
    """End every dashboard session of ``user``, on every device: a session's cookie names
    the epoch it was issued in, and only the user's current epoch is honoured."""
    session.execute(
        update(User).where(User.id == user.id).values(session_epoch=User.session_epoch + 1)
    )
    session.flush()
    session.refresh(user, ["session_epoch"])


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The active user with this name and password, or None (the same for either mistake)."""
    user = session.scalar(select(User).where(User.name == name, User.active.is_(True)))
    if user is None or not user.password_hash:
        # Spend the same time as a real check, so a wrong name is not told apart by timing.
        _hasher.hash(password or "x")
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def issue_token(session: Session, user: User) -> tuple[ApiToken, str]:
    """A new API token for ``user``: the row and the token itself (shown once, never stored)."""
    token = secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=hash_token(token))
    session.add(row)
    session.flush()
    return row, token


def user_for_token(session: Session, token: str) -> User | None:
    """The active user whose unrevoked token this is, or None."""
    if not token:
        return None
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(
            ApiToken.token_hash == hash_token(token),
            ApiToken.revoked_at.is_(None),
            User.active.is_(True),
        )
    ).first()
    if row is None:
        return None
    api_token, user = row
    api_token.last_used_at = utcnow()
    return user


def actor_for(session: Session, user: User, source: str | None) -> Actor:
    """The actor ``user`` is when they act from ``source`` (an address, ``cli``): what every
    door (API, dashboard, command line) checks and records."""
    return Actor(
        user_id=user.id,
        name=user.name,
        role=user.role,
        source=source,
        organisation_id=user.organisation_id,
        areas=None if user.role == Role.ADMIN else scope.areas_of(session, user),
    )


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def revoke_token(session: Session, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} does not exist")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def deactivate(session: Session, user: User) -> None:
    """A deactivated user can neither log in nor use any of their tokens, and their
    dashboard sessions end."""
    user.active = False
    end_sessions(session, user)


def names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """User names by id, for the ids given (None and unknown ids are left out)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.name).where(User.id.in_(wanted))).all()
    return {int(user_id): str(name) for user_id, name in rows}


# Sign-in attempts: after this many failures for one name or from one address within the
# window, the password is not even checked until the window has passed.
MAX_FAILED_LOGINS = 5
FAILED_LOGIN_WINDOW = timedelta(minutes=15)


def sign_in_failed(session: Session, name: str, source: str | None, **detail: Any) -> None:
    """Record a failed sign-in for ``name`` from ``source`` (what :func:`sign_in_blocked`
    counts), by no one in particular: the name may be no user's."""
    Actor(user_id=None, name=name[:100], role="", source=source).record(
        session, "login.failed", **detail
    )


def sign_in_blocked(session: Session, name: str, source: str | None, now: datetime) -> bool:
    """Whether sign-ins for ``name`` or from ``source`` failed too often lately (counted
    from the audit log, so it holds across API processes)."""
    who = AuditEvent.actor == name[:100]
    if source:
        who = or_(who, AuditEvent.source == source)
    failures = audit.count_since(session, "login.failed", now - FAILED_LOGIN_WINDOW, who)
    return failures >= MAX_FAILED_LOGINS


# -- who makes users, tokens and passwords ---------------------------------------------
# The rules every door (API, command line) applies; each function checks the caller, acts
# and writes its audit row in the caller's transaction. Nobody acts for someone else: a
# token or a password is made by its own user (an account's first ones by redeeming the
# invitation its creator passed on), and an admin added while another admin could object
# waits for a second admin.


def admin_exists(session: Session) -> bool:
    """Whether an active admin exists (else the first one is made without signing in)."""
    stmt = select(User.id).where(User.role == Role.ADMIN.value, User.active.is_(True)).limit(1)
    return session.scalar(stmt) is not None


def _other_admins(session: Session, user_id: int | None) -> int:
    stmt = select(User.id).where(
        User.role == Role.ADMIN.value, User.active.is_(True), User.id != (user_id or 0)
    )
    return len(session.scalars(stmt).all())


def add_user(
    session: Session,
    caller: Actor | None,
    name: str,
    *,
    role: str,
    password: str | None = None,
    source: str | None = None,
    organisation: str | None = None,
    areas: Sequence[str] | None = None,
) -> tuple[User, FirstCredential]:
    """A new user, audited as ``user.create``, and what lets them in (shown once).

    ``caller`` None (nobody signed in) makes only the first admin, while no active admin
    exists: it is recorded under the new admin's own name, from ``source``, and gets their
    own first token (and the password they typed). Otherwise the caller is an admin, and
    the new person gets an invitation: a one-time code the admin passes on, which the
    person redeems for their own token and password (:func:`accept_invitation`), so the
    admin never holds a credential of theirs. A new admin starts inactive, *pending*, while
    another active admin exists who could confirm it (:func:`confirm_admin`): one stolen
    admin token cannot make a second admin on its own."""
    check_role(role)
    if caller is None:
        if admin_exists(session):
            raise Forbidden("an admin exists: only an admin adds users")
        if role != Role.ADMIN:
            raise Forbidden("the first user is an admin (--role admin)")
    elif not caller.is_admin:
        raise Forbidden(f"only an admin adds users; you are {caller.role}")
    elif password is not None:
        raise InvalidInput(
            "a person sets their own password when they accept their invitation",
            field="password",
        )
    pending = (
        caller is not None and role == Role.ADMIN and _other_admins(session, caller.user_id) > 0
    )
    if areas is not None and role == Role.ADMIN:
        raise InvalidInput("an admin works over every area; give no areas", field="areas")
    user = create_user(
        session, name, role=role, password=password, organisation=organisation, areas=areas
    )
    user.active = not pending
    if caller is None:
        row, token = issue_token(session, user)
        first = FirstCredential(token=token, token_id=row.id)
    else:
        code, expires = _invite(user)
        first = FirstCredential(invitation=code, expires_at=expires)
    who = caller or Actor(user_id=user.id, name=user.name, role=user.role, source=source)
    detail: dict[str, object] = {
        "name": user.name,
        "role": role,
        "token_id": first.token_id,
        "invited": first.invitation is not None,
        "organisation": organisation,
        "areas": list(areas) if areas is not None else "national",
    }
    if pending:
        detail["pending"] = True
    if caller is None:
        detail["first_admin"] = True
    who.record(session, "user.create", "user", user.id, **detail)
    session.flush()
    return user, first


# -- invitations ----------------------------------------------------------------------

INVITATION_LIFETIME = timedelta(days=3)


@dataclass(frozen=True)
class FirstCredential:
    """What lets a new user in, shown once: their own token (the first admin), or an
    invitation code to pass on (everyone an admin adds)."""

    token: str | None = None
    token_id: int | None = None
    invitation: str | None = None
    expires_at: datetime | None = None


def _invite(user: User) -> tuple[str, datetime]:
    code = secrets.token_urlsafe(16)
    user.invite_hash = hash_token(code)
    user.invite_expires_at = utcnow() + INVITATION_LIFETIME
    return code, user.invite_expires_at


def _holds_credentials(session: Session, user: User) -> bool:
    live = select(ApiToken.id).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    return bool(user.password_hash) or session.scalar(live.limit(1)) is not None


def reinvite(session: Session, caller: Actor, name: str) -> tuple[User, str, datetime]:
    """A new invitation for someone who has no way in (it lapsed, or their tokens were
    revoked and they have no password), audited: an admin cannot invite their way into an
    account its person is using."""
    if not caller.is_admin:
        raise Forbidden(f"only an admin invites; you are {caller.role}")
    user = get_user(session, name)
    if _holds_credentials(session, user):
        raise Forbidden(
            f"{name} has a password or a live token: revoke their tokens and let them reset "
            "it, rather than sign in as them"
        )
    code, expires = _invite(user)
    caller.record(session, "user.invite", "user", user.id, expires_at=expires.isoformat())
    return user, code, expires


def accept_invitation(
    session: Session,
    name: str,
    code: str,
    *,
    password: str | None,
    source: str | None,
    token: bool = True,
) -> tuple[User, tuple[ApiToken, str] | None]:
    """Redeem ``name``'s invitation: their own first token (unless ``token`` is False) and
    dashboard password (when given), audited under their name. The same refusal for a
    wrong name, code or date; a wrong code counts as a failed sign-in."""
    user = session.scalar(select(User).where(User.name == name))
    valid = (
        user is not None
        and user.invite_hash is not None
        and user.invite_expires_at is not None
        and user.invite_expires_at > utcnow()
        and secrets.compare_digest(user.invite_hash, hash_token(code))
    )
    if not valid or user is None:
        raise Forbidden("that invitation is unknown, used or out of date; ask an admin")
    if password is not None:
        user.password_hash = hash_password(password)
    user.invite_hash = None
    user.invite_expires_at = None
    made = issue_token(session, user) if token else None
    own = Actor(user_id=user.id, name=user.name, role=user.role, source=source)
    own.record(
        session,
        "user.invitation.accept",
        "user",
        user.id,
        token_id=made[0].id if made else None,
        password=password is not None,
    )
    return user, made


def set_user_areas(session: Session, caller: Actor, name: str, areas: Sequence[str] | None) -> User:
    """An admin gives ``name`` these areas (None: national), audited as ``user.areas``."""
    if not caller.is_admin:
        raise Forbidden(f"only an admin changes someone's areas; you are {caller.role}")
    user = get_user(session, name)
    if areas is not None and user.role == Role.ADMIN:
        raise InvalidInput("an admin works over every area; give no areas", field="areas")
    scope.set_areas(session, user, areas)
    caller.record(
        session,
        "user.areas",
        "user",
        user.id,
        areas=list(areas) if areas is not None else "national",
    )
    return user


# The audit actions that change whether a user is active, newest deciding.
_LIFECYCLE = ("user.create", "user.confirm", "user.deactivate")


def pending_proposer(session: Session, user: User) -> int | None:
    """The admin who proposed ``user`` as an admin still waiting for confirmation, or None
    when ``user`` is not pending (the audit log is where a pending admin is told apart
    from a deactivated one)."""
    if user.active or user.role != Role.ADMIN:
        return None
    latest = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.object_type == "user",
            AuditEvent.object_id == str(user.id),
            AuditEvent.action.in_(_LIFECYCLE),
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest.action != "user.create" or not (latest.detail or {}).get("pending"):
        return None
    return latest.user_id


def confirm_admin(session: Session, caller: Actor, name: str) -> User:
    """Activate a pending admin, as a second admin (not the one who proposed them)."""
    if not caller.is_admin:
        raise Forbidden(f"only an admin confirms an admin; you are {caller.role}")
    user = get_user(session, name)
    if pending_proposer(session, user) is None:
        raise InvalidInput(f"{name} is not an admin waiting for confirmation", field="name")
    if pending_proposer(session, user) == caller.user_id:
        raise Forbidden(f"you proposed {name}: a second admin confirms them")
    user.active = True
    caller.record(session, "user.confirm", "user", user.id, name=user.name)
    session.flush()
    return user


def issue_own_token(
    session: Session, caller: Actor, name: str | None = None
) -> tuple[ApiToken, str]:
    """A new token for the caller themselves (``name``, when given, must be theirs): nobody,
    not even an admin, makes a token to act as someone else."""
    if name is not None and name != caller.name:
        raise Forbidden("a token is made by its own user only (an admin may revoke theirs)")
    if caller.user_id is None:
        raise Forbidden("a token is made by a signed-in user")
    user = session.get(User, caller.user_id)
    if user is None or not user.active:
        raise NotFound(f"user {caller.name!r} does not exist or is not active")
    row, token = issue_token(session, user)
    caller.record(session, "token.create", "user", user.id, token_id=row.id)
    return row, token


def check_password_setter(caller: Actor, user: User) -> None:
    """Whether ``caller`` may set ``user``'s dashboard password: only their own (one set by
    anyone else would let them sign in as its person)."""
    if user.id != caller.user_id:
        raise Forbidden(f"a password is set by its own user: only {user.name} sets it")


def change_password(session: Session, caller: Actor, name: str, password: str) -> User:
    """Set ``name``'s dashboard password, as :func:`check_password_setter` allows."""
    user = get_user(session, name)
    check_password_setter(caller, user)
    set_password(session, user, password)
    caller.record(session, "user.password", "user", user.id)
    return user
