"""Campaigns and the messages rendered for them.

Campaign states::

    draft ──schedule/launch──> scheduled ──scheduler claims──> fanning_out ──all rows──> sending
      │                           │                                │                        │
      │                           └──────────── pause ─────────> paused <─────── pause ─────┘
      │                                                           │ resume (back where it was)
      └────────── cancel (from any state but completed) ───────> cancelled
    sending ──no delivery pending/queued/sending──> completed
    any active state ──provider configuration error (e.g. 20003)──> stopped ──resume──> ...

The database is the source of truth: the service writes intent (``scheduled`` with a
``send_at``), the scheduler tick turns it into queued work.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from broadcaster.db import utcnow
from broadcaster.orm import Base
from broadcaster.templates.models import TemplateVersion


class CampaignState(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    FANNING_OUT = "fanning_out"
    SENDING = "sending"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Priority(enum.StrEnum):
    URGENT = "urgent"
    BULK = "bulk"


class Channel(enum.StrEnum):
    SMS = "sms"
    WHATSAPP = "whatsapp"
    # Each contact on their own channel (``contact.channel``). Every WhatsApp delivery that
    # fails permanently falls back to one SMS (see :mod:`broadcaster.campaigns.fallback`).
    PREFERRED = "preferred"


class Campaign(Base):
    __tablename__ = "campaign"
    __table_args__ = (Index("ix_campaign_state_send_at", "state", "send_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    template_version_id: Mapped[int] = mapped_column(ForeignKey("template_version.id"))
    state: Mapped[str] = mapped_column(String(16), default=CampaignState.DRAFT.value)
    # The state a paused or stopped campaign returns to on resume.
    resume_state: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8), default=Priority.BULK.value)
    channel: Mapped[str] = mapped_column(String(16), default=Channel.SMS.value)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {"communities": [ids], "descendants": bool, "languages": [..], "countries": [..]}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    send_at: Mapped[datetime | None]
    # The zone the official set the time in, so a schedule does not drift at DST changes.
    schedule_timezone: Mapped[str | None] = mapped_column(String(64))
    quiet_start: Mapped[int | None]  # local hour, inclusive
    quiet_end: Mapped[int | None]  # local hour, exclusive
    valid_until: Mapped[datetime | None]
    # Segments per second for this campaign alone, under the fleet's RISKCAST_SEND_RATE.
    send_rate: Mapped[float | None]
    # Fan-out progress: contacts are streamed in id order; restart continues after this id.
    fanout_cursor: Mapped[int] = mapped_column(default=0)
    recipients: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    # The two-person rule binds to the audience: the most recipients the approval covers
    # (counted when it was given); fan-out stops past it until someone approves again.
    approved_recipients: Mapped[int | None]
    # Whose campaign it is and where: the organisation of its creator, and the deepest
    # community path holding its whole audience ("/" when it spans countries).
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisation.id", ondelete="RESTRICT"), index=True
    )
    area_path: Mapped[str] = mapped_column(String(512), default="/")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    launched_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    template_version: Mapped[TemplateVersion] = relationship()


class CampaignMessage(Base):
    """A body rendered once per distinct (language, variables) of a campaign."""

    __tablename__ = "campaign_message"
    __table_args__ = (UniqueConstraint("campaign_id", "digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of language + variables
    language: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    encoding: Mapped[str] = mapped_column(String(8))
    parts: Mapped[int]
