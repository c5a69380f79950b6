"""Messages people send us: keywords handled, everything else kept in an inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from broadcaster.db import utcnow
from broadcaster.orm import Base


class InboundMessage(Base):
    __tablename__ = "inbound_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64), unique=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    from_phone: Mapped[str] = mapped_column(String(40))
    to_phone: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    keyword: Mapped[str | None] = mapped_column(String(16))  # stop, start, help, join, leave
    tag: Mapped[str | None] = mapped_column(String(16))  # question, rumour, complaint, other
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
