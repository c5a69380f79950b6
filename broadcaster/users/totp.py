"""Two-factor sign-in with time-based one-time codes (RFC 6238: six digits, 30-second steps,
what every authenticator app makes).

A user enrols on the dashboard: a secret is made and shown (as text and as an
``otpauth://`` URI) and is pending until a first code from the app confirms it. From then
on the dashboard asks for a code after the password. A code is accepted for its own step
and the one before or after (clocks drift), and only for a step later than the last one
accepted, so a code seen over a shoulder or replayed does not work twice. The last step is
moved by a conditional UPDATE, so of two sign-ins racing with one code only one wins.

Codes are required of officials and admins when ``RISKCAST_REQUIRE_TOTP`` is on, and of
anyone an admin requires them of; such a user who has not enrolled yet is sent to enrol
before any other page. An admin resets the enrolment of a user who lost their phone.

The secret is kept in the database as it is (it must be read to check a code); it is
never written to a log, the audit log or an API answer other than the enrolment page.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pyotp
from sqlalchemy import CursorResult, or_, update
from sqlalchemy.orm import Session

from broadcaster.errors import IllegalState
from broadcaster.models import Role, User

ISSUER = "riskcast"
# Steps either side of now whose code is still accepted: one, so a code typed as it
# changes, or a phone 30 seconds off, still works.
DRIFT = 1
CODE = re.compile(r"\d{6}")
# Roles RISKCAST_REQUIRE_TOTP applies to: those who compose, approve and manage users.
REQUIRED_ROLES = frozenset({Role.OFFICIAL.value, Role.ADMIN.value})


def enrolled(user: User) -> bool:
    return user.totp_enabled_at is not None and bool(user.totp_secret)


def required(user: User, *, require_totp: bool) -> bool:
    """Whether ``user`` must sign in with a code (``require_totp``: the setting)."""
    return user.totp_required or (require_totp and user.role in REQUIRED_ROLES)


def begin(session: Session, user: User) -> str:
    """The pending secret of ``user`` (made now, or the one shown before: the person may
    already have scanned it). Refused once enrolled: an admin resets first."""
    if enrolled(user):
        raise IllegalState(f"{user.name} already signs in with a two-factor code")
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
        session.flush()
    return user.totp_secret


def uri(user: User) -> str:
    """The ``otpauth://`` URI an authenticator app reads (as a QR code or pasted)."""
    if not user.totp_secret:
        raise IllegalState(f"{user.name} has no two-factor secret")
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.name, issuer_name=ISSUER)


def confirm(session: Session, user: User, code: str, now: datetime) -> bool:
    """Enrol ``user`` if ``code`` comes from their pending secret; False if it does not."""
    if enrolled(user) or not user.totp_secret:
        return False
    return _accept(session, user, code, now, enrol=True)


def check(session: Session, user: User, code: str, now: datetime) -> bool:
    """Whether ``code`` is a fresh code of the enrolled ``user`` (used up if so)."""
    if not enrolled(user):
        return False
    return _accept(session, user, code, now, enrol=False)


def _accept(session: Session, user: User, code: str, now: datetime, *, enrol: bool) -> bool:
    code = re.sub(r"\s", "", code)
    if not CODE.fullmatch(code) or not user.totp_secret:
        return False
    otp = pyotp.TOTP(user.totp_secret)
    current = otp.timecode(now)
    last = user.totp_last_step if user.totp_last_step is not None else -1
    steps = [s for s in range(current - DRIFT, current + DRIFT + 1) if s > last]
    step = next((s for s in steps if pyotp.utils.strings_equal(code, otp.generate_otp(s))), None)
    if step is None:
        return False
    values: dict[str, Any] = {"totp_last_step": step}
    if enrol:
        values["totp_enabled_at"] = now
    stmt = (
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
    session.refresh(user, ["totp_last_step", "totp_enabled_at"])
    return result.rowcount == 1


def reset(session: Session, user: User) -> None:
    """Forget the enrolment of ``user`` (a lost phone): they enrol again at next sign-in if
    codes are required of them."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.flush()


def set_required(session: Session, user: User, value: bool) -> None:
    user.totp_required = value
    session.flush()
