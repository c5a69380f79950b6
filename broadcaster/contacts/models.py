"""Contacts (people, by their E.164 number) and their community memberships."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from broadcaster.db import utcnow
from broadcaster.orm import Base


class ContactStatus(enum.StrEnum):
    ACTIVE = "active"
    OPTED_OUT = "opted_out"
    BLOCKED = "blocked"


class ConsentSource(enum.StrEnum):
    IMPORT = "import"
    OFFICIAL = "official"
    KEYWORD = "keyword"
    PROVIDER = "provider"  # Twilio 21610: the person opted out at the carrier


class Contact(Base):
    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    timezone: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16), default="sms")  # preferred channel
    status: Mapped[str] = mapped_column(String(16), default=ContactStatus.ACTIVE.value)
    consent_source: Mapped[str | None] = mapped_column(String(32))
    consent_at: Mapped[datetime | None]
    opted_out_at: Mapped[datetime | None]
    opted_out_source: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_activity_at: Mapped[datetime | None]


class Membership(Base):
    __tablename__ = "membership"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(
        ForeignKey("community.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_membership_community_contact", "community_id", "contact_id"),)


class ContactImport(Base):
    """One contact import and how far it got: written when it starts and with each chunk
    it commits (so an import that stops says where), read by ``riskcast contacts imports``.
    The audit log records its start and its end, each once."""

    __tablename__ = "contact_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    community: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))  # running, done, failed
    # imported, updated, rejected, merged_duplicates, unchanged_opted_out, blank_lines, rows
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    through_line: Mapped[int] = mapped_column(default=1)  # the last line of the file done
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
