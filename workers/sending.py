"""Sending one batch of deliveries: plain functions, called by the send task and by tests.

For each delivery: win it with a conditional UPDATE (``queued -> sending``; only one worker
can), check the campaign and the contact again (an opt-out recorded a moment ago counts),
take a slot from the fleet-wide rate limiter, make exactly one provider request, record the
outcome. Retries are written to the database with a time (``next_attempt_at``), never held
in the broker, so a flushed Redis loses no retry.
"""

from __future__ import annotations

import enum
import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, and_, bindparam, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from broadcaster.campaigns import fallback, scheduling
from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.quiet import FALLBACK_ZONE, in_quiet_hours, recipient_zone
from broadcaster.contacts import service as contacts
from broadcaster.db import on_commit, utcnow
from broadcaster.deliveries import in_doubt
from broadcaster.deliveries import service as deliveries
from broadcaster.deliveries.callbacks import status_callback_url
from broadcaster.models import (
    Campaign,
    CampaignMessage,
    CampaignState,
    ConsentSource,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryState,
    Priority,
    SkipReason,
)
from broadcaster.orm import UTCDateTime
from broadcaster.phones import mask_phone
from broadcaster.runtime import Sessions
from workers.context import Context
from workers.providers.base import ErrorKind, OutboundMessage, ProviderError
from workers.providers.errors import OPTED_OUT_CODE

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0  # seconds
BACKOFF_CAP = 300.0
MAX_RETRY_AGE = timedelta(hours=6)
# A bulk batch hands its remainder back after this long, so urgent work is never behind it.
BULK_SLICE = 1.0
# A send whose claim is older than this when its request is about to leave (a long wait for
# the rate limiter) re-confirms the claim first: the reconciler may have settled it as in
# doubt meanwhile. ``Settings.in_doubt_after`` leaves room for it.
FENCE_AFTER = 1.0


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_MINE = "not_mine"  # another worker has it, or it is not due
    HELD = "held"  # the campaign is paused or stopped
    STOP = "stop"  # configuration error: the campaign was stopped


@dataclass
class BatchReport:
    outcomes: dict[str, int] = field(default_factory=dict)
    handed_back: int = 0

    def add(self, outcome: Outcome) -> None:
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1


def backoff(attempt: int, base: float = BACKOFF_BASE, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [c/2, c], c = min(cap, base * 2**(n-1))."""
    ceiling = min(BACKOFF_CAP, base * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


# The statements every send runs, built once: each run binds only its parameters, so
# SQLAlchemy neither rebuilds them nor recomputes their cache keys per message.
@functools.cache
def _claim_statement() -> Update:
    active = select(Campaign.id).where(
        Campaign.state.in_([CampaignState.SENDING.value, CampaignState.FANNING_OUT.value])
    )
    now = deliveries.now_param()
    return deliveries.move_statement(
        and_(
            Delivery.id == bindparam("delivery_id"),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            Delivery.campaign_id.in_(active),
            # A delivery the provider has (its SID recorded) is never sent again.
            Delivery.provider_sid.is_(None),
        ),
        DeliveryState.SENDING,
        only_from=[DeliveryState.QUEUED],
        values={"attempts": Delivery.attempts + 1, "sending_at": now, "updated_at": now},
    )


@functools.cache
def _message_query() -> Select[*tuple[Any, ...]]:
    return (
        select(
            Delivery.attempts,
            Delivery.channel,
            Contact.phone,
            Contact.status,
            CampaignMessage.body,
            CampaignMessage.parts,
            Campaign.send_rate,
            Campaign.valid_until,
            Campaign.quiet_start,
            Campaign.quiet_end,
        )
        .join(CampaignMessage, CampaignMessage.id == Delivery.message_id)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.id == bindparam("delivery_id"))
    )


@functools.cache
def _fence_statement() -> Update:
    """Still ours: ``sending``, no SID, and the very claim we made (its ``sending_at``: a
    delivery put back by the reconciler and claimed by another worker is not); the claim's
    time moves to now, so the in-doubt age counts from the request leaving."""
    return (
        update(Delivery)
        .where(
            Delivery.id == bindparam("delivery_id"),
            Delivery.state == DeliveryState.SENDING.value,
            Delivery.provider_sid.is_(None),
            Delivery.sending_at == bindparam("claimed_at", type_=UTCDateTime()),
        )
        .values(sending_at=deliveries.now_param())
        .execution_options(synchronize_session=False)
    )


@functools.cache
def _sent_statement() -> Update:
    now = deliveries.now_param()
    return deliveries.move_statement(
        Delivery.id == bindparam("delivery_id"),
        DeliveryState.SENT,
        only_from=[DeliveryState.SENDING],
        values={"provider_sid": bindparam("sid"), "sent_at": now, "updated_at": now},
    )


def _claim(session: Session, delivery_id: int, now: datetime) -> bool:
    params = {"delivery_id": delivery_id, "now": now}
    return bool(deliveries.run_move(session, _claim_statement(), params))


@dataclass(frozen=True)
class Prepared:
    """A won delivery: its message, and what it costs the rate limiter."""

    message: OutboundMessage
    parts: int  # SMS segments: slots taken from the fleet-wide limiter
    campaign_rate: float | None  # the campaign's own limit, if it has one
    claimed_at: datetime  # the claim's ``sending_at``


def prepare(ctx: Context, session: Session, delivery_id: int) -> Prepared | Outcome:
    """Win the delivery and build its message, or say why it is not to be sent now."""
    now = utcnow()
    if not _claim(session, delivery_id, now):
        return Outcome.NOT_MINE
    row = session.execute(_message_query(), {"delivery_id": delivery_id}).one()
    this = Delivery.id == delivery_id
    if row.phone is None or row.status != ContactStatus.ACTIVE:
        deliveries.move(
            session,
            this,
            DeliveryState.SKIPPED,
            values={"reason": SkipReason.OPTED_OUT.value, "finished_at": now},
        )
        return Outcome.SKIPPED
    if row.quiet_start is not None and in_quiet_hours(
        now, _recipient_zone(session, delivery_id), row.quiet_start, row.quiet_end
    ):
        # Quiet hours began after fan-out: wait; the scheduler releases it when they end.
        deliveries.move(
            session,
            this,
            DeliveryState.PENDING,
            values={"batch": None, "attempts": Delivery.attempts - 1},
        )
        return Outcome.HELD
    if row.valid_until is not None and row.valid_until <= now:
        deliveries.move(
            session,
            this,
            DeliveryState.SKIPPED,
            values={"reason": SkipReason.EXPIRED.value, "finished_at": now},
        )
        return Outcome.SKIPPED
    if row.attempts > ctx.settings.max_attempts:
        # A delivery whose sends keep killing the worker is given up here, with a reason.
        deliveries.move(
            session,
            this,
            DeliveryState.FAILED,
            only_from=[DeliveryState.SENDING],
            values={"reason": SkipReason.TOO_MANY_ATTEMPTS.value, "finished_at": now},
        )
        fallback.fall_back(session, delivery_id)
        return Outcome.FAILED
    to = f"whatsapp:{row.phone}" if row.channel == "whatsapp" else row.phone
    validity = None
    if row.valid_until is not None:
        validity = max(1, min(36000, int((row.valid_until - now).total_seconds())))
    message = OutboundMessage(
        delivery_id=delivery_id,
        to=to,
        body=row.body,
        status_callback=status_callback_url(ctx.settings.public_url, delivery_id),
        validity_period=validity,
    )
    parts = max(1, row.parts or 1)
    return Prepared(message, parts, row.send_rate, now)


def _recipient_zone(session: Session, delivery_id: int) -> str:
    """The zone the tick's release reads too (:func:`recipient_zone`)."""
    zone = session.scalar(
        select(recipient_zone())
        .select_from(Delivery)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.id == delivery_id)
    )
    return zone or FALLBACK_ZONE


def _still_mine(db: Sessions, delivery_id: int, claimed_at: datetime) -> bool:
    with db.session() as session:
        params = {"delivery_id": delivery_id, "now": utcnow(), "claimed_at": claimed_at}
        return bool(deliveries.run_move(session, _fence_statement(), params))


def record_sent(session: Session, delivery_id: int, sid: str, status: str = "queued") -> None:
    params = {"delivery_id": delivery_id, "sid": sid, "now": utcnow()}
    if not deliveries.run_move(session, _sent_statement(), params):
        # A callback got here first and moved it further, or the delivery was put back
        # (in doubt, settled as absent) while the answer was late: the provider has it, so
        # record it as its report, which also takes it out of the queue.
        deliveries.apply_provider_status(session, delivery_id=delivery_id, sid=sid, status=status)


def _ours(delivery_id: int, claimed_at: datetime) -> ColumnElement[bool]:
    """The delivery as this worker claimed it: still ``sending`` under the same claim, no
    SID. Anything else (put back by the reconciler, claimed again) is not ours to move."""
    return and_(
        Delivery.id == delivery_id,
        Delivery.sending_at == claimed_at,
        Delivery.provider_sid.is_(None),
    )


def record_error(
    ctx: Context,
    session: Session,
    delivery_id: int,
    campaign_id: int,
    err: ProviderError,
    claimed_at: datetime,
) -> Outcome:
    now = utcnow()
    this = _ours(delivery_id, claimed_at)
    row = session.execute(
        select(Delivery.created_at, Delivery.attempts).where(
            this, Delivery.state == DeliveryState.SENDING.value
        )
    ).first()
    if err.code == OPTED_OUT_CODE:
        # The provider says this person unsubscribed: true whoever holds the delivery now.
        contact = session.scalar(
            select(Contact)
            .join(Delivery, Delivery.contact_id == Contact.id)
            .where(Delivery.id == delivery_id)
        )
        if contact is not None:
            contacts.opt_out(session, contact, source=ConsentSource.PROVIDER.value)
    if row is None:
        return Outcome.NOT_MINE
    fields: dict[str, object] = {
        "error_code": err.code or err.http_status,
        "error_message": str(err)[:500],
    }
    sending = [DeliveryState.SENDING]
    if err.kind is ErrorKind.CONFIGURATION:
        deliveries.move(
            session,
            this,
            DeliveryState.QUEUED,
            only_from=sending,
            values={**fields, "batch": None, "attempts": Delivery.attempts - 1},
        )
        campaigns.stop(session, campaign_id, error=f"provider configuration error: {err}")
        log.error("campaign %s stopped: %s", campaign_id, err)
        return Outcome.STOP
    if err.kind is ErrorKind.RETRYABLE:
        created, attempts = row
        if now - created < MAX_RETRY_AGE and attempts < ctx.settings.max_attempts:
            deliveries.move(
                session,
                this,
                DeliveryState.QUEUED,
                only_from=sending,
                values={
                    **fields,
                    "batch": None,
                    "next_attempt_at": now
                    + timedelta(seconds=backoff(attempts, ctx.settings.retry_base)),
                },
            )
            return Outcome.RETRY
    if err.kind is ErrorKind.RETRYABLE:
        fields["reason"] = SkipReason.RETRIES_EXHAUSTED.value
    deliveries.move(
        session,
        this,
        DeliveryState.FAILED,
        only_from=sending,
        values={**fields, "finished_at": now},
    )
    # A WhatsApp message refused for good goes again as one SMS (not to an opted-out person).
    fallback.fall_back(session, delivery_id)
    return Outcome.FAILED


def send_one(
    ctx: Context, delivery_id: int, campaign_id: int, db: Sessions | None = None
) -> Outcome:
    """Send one delivery; ``db`` gives its transactions (a batch's held connection)."""
    db = db or ctx.runtime
    with db.session() as session:
        prepared = prepare(ctx, session, delivery_id)
    if isinstance(prepared, Outcome):
        return prepared
    message, campaign_rate = prepared.message, prepared.campaign_rate
    try:
        ctx.limiter.acquire(
            prepared.parts,
            also=[(f"campaign:{campaign_id}", campaign_rate)] if campaign_rate else (),
        )
        waited = (utcnow() - prepared.claimed_at).total_seconds()
        if waited > FENCE_AFTER and not _still_mine(db, delivery_id, prepared.claimed_at):
            return Outcome.NOT_MINE
        result = ctx.provider.send(message)
    except ProviderError as err:
        if err.ambiguous:
            # It may have been accepted: leave it `sending`, in doubt. A status callback
            # settles it, else the reconciler asks the provider before any resend.
            log.warning("delivery %s: %s; in doubt until settled", delivery_id, err)
            with db.session() as session:
                in_doubt.note_ambiguous(session, delivery_id, f"in doubt: {err}")
            return Outcome.HELD
        log.info(
            "delivery %s to %s: %s",
            delivery_id,
            mask_phone(message.to.removeprefix("whatsapp:")),
            err,
        )
        with db.session() as session:
            return record_error(ctx, session, delivery_id, campaign_id, err, prepared.claimed_at)
    except Exception:
        # Nothing reached the provider (the limiter or our own code failed): hand it back.
        with db.session() as session:
            deliveries.move(
                session,
                _ours(delivery_id, prepared.claimed_at),
                DeliveryState.QUEUED,
                only_from=[DeliveryState.SENDING],
                values={"batch": None},
            )
        raise
    # The provider has the message: its SID must be written, even through a database blip.
    with_db_retry(
        ctx, lambda session: record_sent(session, delivery_id, result.sid, result.status), db
    )
    return Outcome.SENT


DB_RETRY_FOR = 60.0


def with_db_retry(
    ctx: Context, work: Callable[[Session], None], db: Sessions | None = None
) -> None:
    """Run ``work`` in its own transaction, retrying while the database is unreachable."""
    db = db or ctx.runtime
    deadline = time.monotonic() + DB_RETRY_FOR
    delay = 0.2
    while True:
        try:
            with db.session() as session:
                work(session)
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            log.warning("database unreachable; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            return


def send_batch(ctx: Context, token: str, campaign_id: int, priority: str) -> BatchReport:
    """Send the queued deliveries of batch ``token`` in order; give back what is left."""
    db = ctx.runtime.held()  # one connection for the whole run
    try:
        return _send_batch(ctx, db, token, campaign_id, priority)
    finally:
        db.close()


def _send_batch(
    ctx: Context, db: Sessions, token: str, campaign_id: int, priority: str
) -> BatchReport:
    report = BatchReport()
    ttl = ctx.settings.lease_ttl
    ctx.leases.renew(token, ttl)
    with db.session() as session:
        ids = list(
            session.scalars(
                select(Delivery.id)
                .where(Delivery.batch == token, Delivery.state == DeliveryState.QUEUED.value)
                .order_by(Delivery.id)
            )
        )
    started = renewed = time.monotonic()
    try:
        for position, delivery_id in enumerate(ids):
            now = time.monotonic()
            if priority == Priority.BULK and now - started > BULK_SLICE:
                report.handed_back = len(ids) - position
                break
            if now - renewed > ttl / 10:
                ctx.leases.renew(token, ttl)
                renewed = now
            outcome = send_one(ctx, delivery_id, campaign_id, db)
            report.add(outcome)
            if outcome is Outcome.STOP:
                break
    finally:

        def close(session: Session) -> None:
            if report.handed_back:
                # The rest goes to the back of the queue under a new token.
                rest = scheduling.rebatch(session, token)
                on_commit(session, lambda: enqueue_batches(ctx, [rest]))
            else:
                # Whatever was not sent (paused, not yet due) returns to the pool; the
                # scheduler tick gives it a new batch when it can go.
                scheduling.forget_batches(session, [token])
            campaigns.complete_if_done(session, campaign_id)

        with_db_retry(ctx, close, db)
        ctx.leases.release(token)
    return report


SEND_TASK = "riskcast.send_batch"
FANOUT_TASK = "riskcast.fanout"


def enqueue_batches(ctx: Context, batches: list[scheduling.Batch]) -> None:
    """Lease and enqueue one send task per batch (call after the commit that wrote them)."""
    for batch in batches:
        # Enqueue first: a lease for a message that never left would hide the work from the
        # reconciler for hours, while a task that starts before its lease is harmless.
        ctx.enqueue(SEND_TASK, [batch.token, batch.campaign_id, batch.priority], batch.priority)
        ctx.leases.grant(batch.token)
