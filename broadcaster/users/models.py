"""People who use riskcast (officials, operators, admins) and their API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from broadcaster.db import utcnow
from broadcaster.orm import Base


class Role(enum.StrEnum):
    OFFICIAL = "official"
    OPERATOR = "operator"
    ADMIN = "admin"


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Whom they work for and where (broadcaster.areas): national users see every community,
    # the others only their areas' subtrees.
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisation.id", ondelete="RESTRICT"), index=True
    )
    national: Mapped[bool] = mapped_column(default=True)
    # A new account's one-time invitation (sha256 of the code, and when it lapses): the
    # person redeems it for their own first token and password, so whoever created the
    # account never holds a credential of theirs.
    invite_hash: Mapped[str | None] = mapped_column(String(64))
    invite_expires_at: Mapped[datetime | None]
    # How the dashboard speaks to them: its language (en, lo, th; None: the browser's) and
    # the zone it shows times in (None: Asia/Vientiane).
    locale: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Signing in (broadcaster.users.auth, broadcaster.users.totp). A dashboard cookie
    # carries the epoch it was issued in; raising it (auth.end_sessions) ends them all.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Two-factor codes: the base32 secret (pending until the first code confirms it at
    # `totp_enabled_at`), the last time step a code was accepted for (no code works twice)
    # and whether an admin requires it of this user.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None]
    totp_required: Mapped[bool] = mapped_column(default=False, server_default=false())


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
