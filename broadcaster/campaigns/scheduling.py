"""What the scheduler and reconciler ticks decide, as plain functions over a session.

The database is the source of truth; these functions turn intent into work and find work
whose task was lost. They never talk to the queue: they return what to enqueue, and the
caller enqueues it after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session

from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.fanout import new_batch_token
from broadcaster.campaigns.quiet import in_quiet_hours, recipient_zone
from broadcaster.db import utcnow
from broadcaster.deliveries import service as deliveries
from broadcaster.deliveries.models import SkipReason
from broadcaster.models import (
    Campaign,
    CampaignState,
    Contact,
    Delivery,
    DeliveryState,
    Priority,
)

URGENT_FIRST = case((Campaign.priority == Priority.URGENT.value, 0), else_=1)


@dataclass(frozen=True)
class Batch:
    token: str
    campaign_id: int
    priority: str


def claim_due(session: Session, now: datetime, limit: int = 10) -> list[tuple[int, str]]:
    """Claim campaigns whose time has come; each is claimed by exactly one caller.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets concurrent schedulers take different rows
    without waiting. SQLite has no row locks: its write transaction (BEGIN IMMEDIATE)
    serialises schedulers, and the conditional UPDATE below is the guard on both.
    """
    rows = session.execute(
        select(Campaign.id, Campaign.priority)
        .where(Campaign.state == CampaignState.SCHEDULED.value, Campaign.send_at <= now)
        .order_by(URGENT_FIRST, Campaign.send_at, Campaign.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = []
    for campaign_id, priority in rows:
        if campaigns.move(
            session,
            campaign_id,
            CampaignState.FANNING_OUT,
            only_from=[CampaignState.SCHEDULED],
            values={"launched_at": now},
        ):
            claimed.append((campaign_id, priority))
    return claimed


def campaigns_in(session: Session, state: CampaignState) -> list[tuple[int, str]]:
    return [
        (cid, prio)
        for cid, prio in session.execute(
            select(Campaign.id, Campaign.priority).where(Campaign.state == state.value)
        )
    ]


def release_quiet(session: Session, now: datetime, limit: int = 5000) -> int:
    """Pending deliveries whose quiet hours are over become queued; expired ones are skipped."""
    expired = deliveries.move(
        session,
        and_(
            Delivery.state == DeliveryState.PENDING.value,
            Delivery.campaign_id.in_(
                select(Campaign.id).where(
                    Campaign.valid_until.is_not(None), Campaign.valid_until <= now
                )
            ),
        ),
        DeliveryState.SKIPPED,
        values={"reason": SkipReason.QUIET_HOURS_EXPIRED.value, "finished_at": now},
    )
    rows = session.execute(
        select(Delivery.id, Campaign.quiet_start, Campaign.quiet_end, recipient_zone())
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        # An erased contact's delivery is released too: the send skips it.
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(
            Delivery.state == DeliveryState.PENDING.value,
            Campaign.state.in_([CampaignState.SENDING.value, CampaignState.FANNING_OUT.value]),
        )
        .order_by(Delivery.id)
        .limit(limit)
    ).all()
    ready = [
        delivery_id
        for delivery_id, start, end, zone in rows
        if start is None or not in_quiet_hours(now, zone, start, end)
    ]
    released = 0
    if ready:
        released = deliveries.move(
            session,
            Delivery.id.in_(ready),
            DeliveryState.QUEUED,
            only_from=[DeliveryState.PENDING],
            values={"batch": None, "queued_at": now},
        )
    return released + expired


def assign_batches(
    session: Session, now: datetime, *, batch_size: int, limit: int = 20000
) -> list[Batch]:
    """Give queued deliveries that have no send task (new retries, resumed or lost work) a
    batch token each; the caller enqueues one task per returned batch after commit."""
    rows = session.execute(
        select(Delivery.id, Delivery.campaign_id, Campaign.priority)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(
            Delivery.state == DeliveryState.QUEUED.value,
            Delivery.batch.is_(None),
            Delivery.provider_sid.is_(None),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            Campaign.state.in_([CampaignState.SENDING.value, CampaignState.FANNING_OUT.value]),
        )
        .order_by(URGENT_FIRST, Delivery.id)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=True)
    ).all()
    groups: dict[int, list[int]] = {}
    priorities: dict[int, str] = {}
    for delivery_id, campaign_id, priority in rows:
        groups.setdefault(campaign_id, []).append(delivery_id)
        priorities[campaign_id] = priority
    batches = []
    for campaign_id, ids in groups.items():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            token = new_batch_token()
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(chunk), Delivery.batch.is_(None))
                .values(batch=token)
                .execution_options(synchronize_session=False)
            )
            batches.append(Batch(token, campaign_id, priorities[campaign_id]))
    return batches


def open_batches(session: Session, queued_before: datetime) -> list[Batch]:
    """Batches that still hold queued deliveries and were handed out before ``queued_before``."""
    rows = session.execute(
        select(Delivery.batch, Delivery.campaign_id, Campaign.priority)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(
            Delivery.state == DeliveryState.QUEUED.value,
            Delivery.batch.is_not(None),
            Delivery.updated_at < queued_before,
            Campaign.state.in_([CampaignState.SENDING.value, CampaignState.FANNING_OUT.value]),
        )
        .distinct()
    ).all()
    return [Batch(str(token), cid, prio) for token, cid, prio in rows]


def forget_batches(session: Session, tokens: list[str]) -> int:
    """Lost batches: their queued deliveries go back to the pool for :func:`assign_batches`."""
    if not tokens:
        return 0
    result = session.execute(
        update(Delivery)
        .where(Delivery.batch.in_(tokens), Delivery.state == DeliveryState.QUEUED.value)
        .values(batch=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def rebatch(session: Session, token: str) -> Batch:
    """Move the queued deliveries of batch ``token`` to a new batch (a fresh task)."""
    new = new_batch_token()
    row = session.execute(
        select(Delivery.campaign_id, Campaign.priority)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.batch == token)
        .limit(1)
    ).one()
    session.execute(
        update(Delivery)
        .where(Delivery.batch == token, Delivery.state == DeliveryState.QUEUED.value)
        .values(batch=new, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return Batch(new, row.campaign_id, row.priority)


def unconfirmed(session: Session, sent_before: datetime, limit: int = 200) -> list[tuple[int, str]]:
    """Deliveries the provider accepted whose final status never arrived: (id, SID)."""
    rows = session.execute(
        select(Delivery.id, Delivery.provider_sid)
        .where(
            Delivery.state == DeliveryState.SENT.value,
            Delivery.sent_at < sent_before,
            Delivery.updated_at < sent_before,
            Delivery.provider_sid.is_not(None),
        )
        .order_by(Delivery.updated_at)
        .limit(limit)
    ).all()
    return [(i, str(sid)) for i, sid in rows]


def complete_finished(session: Session) -> list[int]:
    done = []
    for campaign_id, _prio in campaigns_in(session, CampaignState.SENDING):
        if campaigns.complete_if_done(session, campaign_id):
            done.append(campaign_id)
    return done
