"""Organisations, and the areas a person works over.

An area is a community and everything below it (a province, a district); a person with no
area rows and ``national`` set works over every community. A user belongs to one
organisation (:attr:`broadcaster.users.models.User.organisation_id`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from broadcaster.db import utcnow
from broadcaster.orm import Base

DEFAULT_ORGANISATION = "default"


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserArea(Base):
    """One community subtree a (non-national) user works over."""

    __tablename__ = "user_area"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(
        ForeignKey("community.id", ondelete="CASCADE"), primary_key=True
    )
