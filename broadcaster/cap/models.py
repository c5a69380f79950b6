"""CAP alerts taken in, and the mapping from CAP areas to communities."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broadcaster.db import utcnow
from broadcaster.orm import Base


class AreaKind(enum.StrEnum):
    GEOCODE = "geocode"  # a <geocode> value, or valueName=value
    NAME = "name"  # an <areaDesc>, compared case- and space-insensitively


class CapAreaMapping(Base):
    """An official's rule: a CAP area with this geocode or name means this community."""

    __tablename__ = "cap_area_mapping"
    __table_args__ = (
        UniqueConstraint("kind", "value", "community_id"),
        Index("ix_cap_area_mapping_kind_value", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CapAlert(Base):
    """A CAP alert riskcast took in (the document as received), and the campaign it became
    (a draft for Alert and Update; the cancelled one for Cancel). ``references`` lets a later
    Update or Cancel find it."""

    __tablename__ = "cap_alert"
    __table_args__ = (UniqueConstraint("sender", "identifier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    sent: Mapped[datetime]
    msg_type: Mapped[str] = mapped_column(String(16))
    references: Mapped[str | None] = mapped_column(Text)  # "sender,identifier,sent ..."
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign.id", ondelete="SET NULL"), index=True
    )
    xml: Mapped[str] = mapped_column(Text)
    imported_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
