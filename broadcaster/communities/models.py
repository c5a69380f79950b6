"""Communities: a hierarchy (country > province > district > village) plus free kinds."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broadcaster.db import utcnow
from broadcaster.orm import Base


class CommunityKind(enum.StrEnum):
    COUNTRY = "country"
    PROVINCE = "province"
    DISTRICT = "district"
    VILLAGE = "village"
    BORDER_CROSSING = "border_crossing"
    WORKSITE = "worksite"
    QUARANTINE_CENTRE = "quarantine_centre"
    OTHER = "other"


class Community(Base):
    __tablename__ = "community"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default=CommunityKind.OTHER.value)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("community.id", ondelete="RESTRICT"), index=True
    )
    # Materialised path of ids ("/1/4/9/"): descendants are a prefix match, one query deep.
    path: Mapped[str] = mapped_column(String(512), index=True, default="/")
    country: Mapped[str | None] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(16), default="lo")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Vientiane")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped[Community | None] = relationship(remote_side=[id])
