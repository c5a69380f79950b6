"""Deliveries: one per (campaign, contact), and the only place their states are drawn.

::

    pending ──> queued ──> sending ──> sent ──> delivered
       ^  │          │  ^        │  │       └────> undelivered | failed      (status callbacks)
       │  │          │  └retry───┘  ├──> delivered | undelivered | failed  (callback beat our write)
       └──│──────────│──────────────┤   (quiet hours began: back to pending)
       │          │              ├──> failed          (permanent provider error, too many attempts)
       └──────────┴──────────────┴──> skipped         (reason: opted_out, invalid_number,
                                                       quiet_hours_expired, cancelled,
                                                       duplicate_number)
    failed ──retry-failed (retryable codes only)──> queued
    pending | queued ──> sent | delivered | undelivered | failed
                       (a provider answer or callback for a delivery that was put back:
                        the provider has the message after all; it is never sent again)

``pending`` waits for a condition (quiet hours, a paused campaign); ``queued`` has, or is
about to get, a send task.

**In doubt** is a sub-state of ``sending``: no provider SID, and older than the in-doubt
age (``Settings.in_doubt_after``): the worker died after its request may have left, or the
provider's answer never came. Such a delivery is never sent again blindly: the reconciler
asks the provider's read API (:mod:`workers.settling`): found -> its SID and status are
recorded as a callback would; provably absent -> ``queued`` again; no answer -> it stays
in doubt and is asked again later (``lookups``, ``looked_up_at``, ``lookup_note`` say
what the last lookup said); still unanswered at the campaign's ``valid_until`` -> ``failed``
with reason ``unconfirmed`` (sent once or not at all, never twice). Callbacks only ever move a delivery forward by rank, so a late
or repeated callback never moves it back. :mod:`broadcaster.deliveries.service` enforces this.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from broadcaster.db import utcnow
from broadcaster.orm import Base


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"


class SkipReason(enum.StrEnum):
    OPTED_OUT = "opted_out"
    INVALID_NUMBER = "invalid_number"
    QUIET_HOURS_EXPIRED = "quiet_hours_expired"
    CANCELLED = "cancelled"
    DUPLICATE_NUMBER = "duplicate_number"
    EXPIRED = "expired"
    # Reasons a delivery failed that a later retry may overcome (``retry-failed`` takes them).
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    RETRIES_EXHAUSTED = "retries_exhausted"
    # In doubt until the campaign's validity ran out, the provider's read API never
    # answering: sent once or not at all. Never retried (``retry-failed`` leaves it).
    UNCONFIRMED = "unconfirmed"


RETRYABLE_FAILURES = (SkipReason.TOO_MANY_ATTEMPTS.value, SkipReason.RETRIES_EXHAUSTED.value)


# Forward-only order for callbacks; equal ranks are terminal alternatives.
RANK: dict[str, int] = {
    DeliveryState.PENDING: 0,
    DeliveryState.QUEUED: 1,
    DeliveryState.SENDING: 2,
    DeliveryState.SENT: 3,
    DeliveryState.DELIVERED: 4,
    DeliveryState.UNDELIVERED: 4,
    DeliveryState.FAILED: 4,
    DeliveryState.SKIPPED: 4,
}

# What the provider can report of a message it has.
_REPORTED = (
    DeliveryState.SENT,
    DeliveryState.DELIVERED,
    DeliveryState.UNDELIVERED,
    DeliveryState.FAILED,
)

TRANSITIONS: dict[str, frozenset[str]] = {
    DeliveryState.PENDING: frozenset({DeliveryState.QUEUED, DeliveryState.SKIPPED, *_REPORTED}),
    DeliveryState.QUEUED: frozenset(
        {DeliveryState.SENDING, DeliveryState.PENDING, DeliveryState.SKIPPED, *_REPORTED}
    ),
    DeliveryState.SENDING: frozenset(
        {
            DeliveryState.PENDING,
            DeliveryState.QUEUED,
            DeliveryState.SENT,
            DeliveryState.DELIVERED,
            DeliveryState.UNDELIVERED,
            DeliveryState.FAILED,
            DeliveryState.SKIPPED,
        }
    ),
    DeliveryState.SENT: frozenset(
        {DeliveryState.DELIVERED, DeliveryState.UNDELIVERED, DeliveryState.FAILED}
    ),
    DeliveryState.FAILED: frozenset({DeliveryState.QUEUED}),
    DeliveryState.DELIVERED: frozenset(),
    DeliveryState.UNDELIVERED: frozenset(),
    DeliveryState.SKIPPED: frozenset(),
}

UNFINISHED = (DeliveryState.PENDING, DeliveryState.QUEUED, DeliveryState.SENDING)


class Delivery(Base):
    __tablename__ = "delivery"
    __table_args__ = (
        # One first delivery per person and campaign; a fallback is a second delivery that
        # points at the one it replaces, and each delivery has at most one fallback.
        Index(
            "uq_delivery_campaign_contact",
            "campaign_id",
            "contact_id",
            unique=True,
            postgresql_where=text("fallback_of IS NULL"),
            sqlite_where=text("fallback_of IS NULL"),
        ),
        Index("ix_delivery_campaign_state", "campaign_id", "state"),
        Index("ix_delivery_state_next_attempt", "state", "next_attempt_at"),
        Index("ix_delivery_batch", "batch"),
        # Erasure and retention find a person's deliveries by contact (and deleting a
        # contact makes the database look for them too, to set contact_id NULL): without
        # this index, each erased person would cost a scan of every delivery ever made.
        Index("ix_delivery_contact_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    # NULL once the person is erased: the row stays so campaign counts stay true.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    message_id: Mapped[int] = mapped_column(ForeignKey("campaign_message.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16), default="sms")
    # Set on an SMS sent because this WhatsApp delivery failed for good (broadcaster.campaigns.fallback).
    fallback_of: Mapped[int | None] = mapped_column(
        ForeignKey("delivery.id", ondelete="SET NULL"), unique=True
    )
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    reason: Mapped[str | None] = mapped_column(String(32))
    # The send batch (a token) whose task carries this delivery (broadcaster.campaigns.scheduling).
    batch: Mapped[str | None] = mapped_column(String(40))
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[int | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None]
    sending_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Lookups at the provider of a delivery in doubt: how many, the last, what it said.
    lookups: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    looked_up_at: Mapped[datetime | None]
    lookup_note: Mapped[str | None] = mapped_column(String(200))
