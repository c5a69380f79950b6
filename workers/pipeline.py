"""The scheduler tick, the fan-out loop and the reconciler, as plain functions.

Each opens its own short transactions through the context's runtime and enqueues only
after they commit. Tasks in :mod:`workers.tasks` call these and nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import update
from sqlalchemy.orm import Session

from broadcaster.audit.service import Actor
from broadcaster.campaigns import fallback, scheduling
from broadcaster.campaigns.fanout import Page, fan_out
from broadcaster.contacts import privacy
from broadcaster.db import on_commit, utcnow
from broadcaster.deliveries import service as deliveries
from broadcaster.models import CampaignState, Delivery
from workers.context import Context
from workers.providers.base import ProviderError
from workers.sending import FANOUT_TASK, enqueue_batches
from workers.settling import SettleReport, settle_in_doubt

log = logging.getLogger(__name__)

# A batch handed out this recently may not have its lease yet (commit, then lease).
LEASE_GRACE = 10.0


def fanout_token(campaign_id: int) -> str:
    return f"fanout:{campaign_id}"


def enqueue_fanout(ctx: Context, campaign_id: int, priority: str) -> None:
    ctx.enqueue(FANOUT_TASK, [campaign_id], priority)
    ctx.leases.grant(fanout_token(campaign_id))


def restart_fanouts(ctx: Context) -> int:
    """Fan-outs with no lease (lost task, killed worker, resumed campaign) start again;
    they continue from the saved cursor."""
    restarted = 0
    with ctx.runtime.session() as session:
        fanouts = scheduling.campaigns_in(session, CampaignState.FANNING_OUT)
    live = ctx.leases.live(fanout_token(c) for c, _ in fanouts)
    for campaign_id, priority in fanouts:
        if fanout_token(campaign_id) not in live:
            restarted += 1
            enqueue_fanout(ctx, campaign_id, priority)
    return restarted


@dataclass
class TickReport:
    claimed: list[int] = field(default_factory=list)
    restarted_fanouts: int = 0
    released: int = 0
    batches: int = 0
    completed: list[int] = field(default_factory=list)


def start_due(ctx: Context, now: datetime | None = None) -> list[int]:
    """Claim the campaigns that are due and enqueue their fan-outs (after the commit)."""
    with ctx.runtime.session() as session:
        claimed = scheduling.claim_due(session, now or utcnow())
        for campaign_id, priority in claimed:
            on_commit(session, partial(enqueue_fanout, ctx, campaign_id, priority))
    return [cid for cid, _ in claimed]


def tick(ctx: Context) -> TickReport:
    """Start due campaigns; enqueue queued deliveries that have no task; complete finished."""
    report = TickReport()
    now = utcnow()
    report.claimed = start_due(ctx, now)
    report.restarted_fanouts = restart_fanouts(ctx)
    with ctx.runtime.session() as session:
        report.released = scheduling.release_quiet(session, now)
    with ctx.runtime.session() as session:
        batches = scheduling.assign_batches(session, now, batch_size=ctx.settings.send_batch_size)
        report.batches = len(batches)
        on_commit(session, lambda: enqueue_batches(ctx, batches))
    with ctx.runtime.session() as session:
        report.completed = scheduling.complete_finished(session)
    return report


def run_fanout(ctx: Context, campaign_id: int) -> int:
    """Fan a campaign out page by page; each page commits, then its batches are enqueued."""
    token = fanout_token(campaign_id)

    def each(session: Session, page: Page) -> None:
        batches = [scheduling.Batch(t, campaign_id, page.priority) for t in page.batches]
        on_commit(session, partial(enqueue_batches, ctx, batches))
        ctx.leases.renew(token, ctx.settings.lease_ttl)

    ctx.leases.renew(token, ctx.settings.lease_ttl)
    created = fan_out(
        ctx.runtime.session,
        campaign_id,
        page_size=ctx.settings.fanout_batch_size,
        batch_size=ctx.settings.send_batch_size,
        each=each,
    )
    ctx.leases.release(token)
    log.info("campaign %s: fan-out created %s deliveries", campaign_id, created)
    return created


@dataclass
class ReconcileReport:
    lost_batches: int = 0
    confirmed: int = 0
    in_doubt: SettleReport = field(default_factory=SettleReport)


def confirm_with_provider(ctx: Context, sent_before: datetime) -> int:
    """Ask the provider for the status of messages whose final callback never came."""
    with ctx.runtime.session() as session:
        pending = scheduling.unconfirmed(session, sent_before)
    confirmed = 0
    for delivery_id, sid in pending:
        try:
            status = ctx.provider.fetch(sid)
        except ProviderError as err:
            log.warning("delivery %s: status lookup failed: %s", delivery_id, err)
            continue
        with ctx.runtime.session() as session:
            state = deliveries.apply_provider_status(
                session,
                delivery_id=delivery_id,
                sid=sid,
                status=status.status,
                error_code=status.error_code,
            )
            fallback.after_provider_status(session, state, delivery_id=delivery_id, sid=sid)
            # Looked at now: not again before the next period, whatever the answer.
            session.execute(
                update(Delivery).where(Delivery.id == delivery_id).values(updated_at=utcnow())
            )
        confirmed += 1
    return confirmed


def reconcile(ctx: Context) -> ReconcileReport:
    """Find work whose task was lost (Redis flushed or restarted, a worker killed) and
    put it back; settle deliveries in doubt by asking the provider before anything is sent
    again (:mod:`workers.settling`)."""
    report = ReconcileReport()
    now = utcnow()
    with ctx.runtime.session() as session:
        candidates = scheduling.open_batches(session, now - timedelta(seconds=LEASE_GRACE))
        live = ctx.leases.live(b.token for b in candidates)
        lost = [b.token for b in candidates if b.token not in live]
        report.lost_batches = len(lost)
        scheduling.forget_batches(session, lost)
    report.in_doubt = settle_in_doubt(ctx, now)
    report.confirmed = confirm_with_provider(
        ctx, now - timedelta(seconds=ctx.settings.confirm_after)
    )
    if report.lost_batches or report.confirmed:
        log.warning("reconciler: %s", report)
    return report


RETENTION_ACTOR = "retention"


def apply_retention(ctx: Context) -> int:
    """Erase contacts inactive for ``RISKCAST_RETENTION_DAYS`` (none when it is unset), with
    an audit row saying how many; returns how many."""
    days = ctx.settings.retention_days
    if days is None:
        return 0
    with ctx.runtime.session() as session:
        erased = privacy.erase_inactive(session, utcnow(), days)
        if erased:
            retention = Actor(user_id=None, name=RETENTION_ACTOR, role="", source="scheduler")
            retention.record(session, "contact.purge_inactive", "contact", days=days, erased=erased)
    if erased:
        log.info("retention: %d contacts inactive for %d days erased", erased, days)
    return erased
