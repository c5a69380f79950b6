"""Sending one batch of deliveries: plain functions, called by the send task and by tests.

A batch goes a run of deliveries at a time (up to :data:`RUN`, spanning at most
:data:`RUN_SPAN` seconds of sending at the rate that binds them). For each run: take its
slots from the fleet-wide rate limiter, win its deliveries with one conditional UPDATE
(``queued -> sending``; only one worker can win each), check the campaign and the contacts
again (an opt-out recorded a moment ago counts), make exactly one provider request per
delivery at its slot, and record each outcome as it comes: an accepted message's SID is
committed the moment the provider answers. A worker killed before that commit leaves the
delivery ``sending``: the status callback (matched by the delivery id in its URL) moves it
on, and the reconciler queues again only what has neither SID nor callback. Retries are written to the database
with a time (``next_attempt_at``), never held in the broker, so a flushed Redis loses no
retry.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from broadcaster import campaigns, contacts, deliveries, fallback, scheduling
from broadcaster.db import on_commit, utcnow
from broadcaster.models import (
    Campaign,
    CampaignMessage,
    CampaignState,
    Community,
    ConsentSource,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryState,
    Membership,
    Priority,
    SkipReason,
)
from broadcaster.phones import mask_phone
from broadcaster.quiet import in_quiet_hours
from broadcaster.webhooks import status_callback_url
from workers.context import Context
from workers.providers.base import ErrorKind, OutboundMessage, ProviderError
from workers.providers.errors import OPTED_OUT_CODE

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0  # seconds
BACKOFF_CAP = 300.0
MAX_RETRY_AGE = timedelta(hours=6)
# A bulk batch hands its remainder back after this long, so urgent work is never behind it.
BULK_SLICE = 1.0
# Deliveries go a run at a time: one claim, one rate-limiter call and one write of their
# SIDs for up to RUN deliveries...
RUN = 20
# ...whose sends span at most this long at the slowest rate that binds them, so an opt-out
# or a pause recorded a moment before a send still stops it.
RUN_SPAN = 0.1  # seconds
# A sending batch renews its lease this often (and at least three times per lease time).
LEASE_RENEW_EVERY = 1.0


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


@dataclass(frozen=True)
class Queued:
    """A delivery of the batch, with what its send costs the rate limiter (SMS segments)."""

    delivery_id: int
    parts: int


def backoff(attempt: int, base: float = BACKOFF_BASE, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [c/2, c], c = min(cap, base * 2**(n-1))."""
    ceiling = min(BACKOFF_CAP, base * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


class End(enum.Enum):
    """Why a claimed delivery is not sent now: the state it moves to, its reason, the outcome."""

    OPTED_OUT = (DeliveryState.SKIPPED, SkipReason.OPTED_OUT.value, Outcome.SKIPPED)
    # Quiet hours began after fan-out: wait; the scheduler releases it when they end.
    QUIET = (DeliveryState.PENDING, None, Outcome.HELD)
    EXPIRED = (DeliveryState.SKIPPED, SkipReason.EXPIRED.value, Outcome.SKIPPED)
    # A delivery whose sends keep killing the worker is given up here, with a reason.
    TOO_MANY = (DeliveryState.FAILED, SkipReason.TOO_MANY_ATTEMPTS.value, Outcome.FAILED)

    def __init__(self, state: DeliveryState, reason: str | None, outcome: Outcome) -> None:
        self.state = state
        self.reason = reason
        self.outcome = outcome


def claim(
    ctx: Context, session: Session, delivery_ids: Sequence[int]
) -> tuple[list[OutboundMessage], dict[int, Outcome]]:
    """Win a run of deliveries and build their messages; say why the others are not sent.

    One conditional UPDATE wins them (``queued -> sending``: of two workers, only one can);
    the campaign and every contact are checked in the same transaction, just before sending.
    """
    now = utcnow()
    active = select(Campaign.id).where(
        Campaign.state.in_([CampaignState.SENDING.value, CampaignState.FANNING_OUT.value])
    )
    won = deliveries.move_returning(
        session,
        and_(
            Delivery.id.in_(delivery_ids),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            Delivery.campaign_id.in_(active),
        ),
        DeliveryState.SENDING,
        only_from=[DeliveryState.QUEUED],
        values={"attempts": Delivery.attempts + 1, "sending_at": now},
    )
    mine = set(won)
    outcomes = {i: Outcome.NOT_MINE for i in delivery_ids if i not in mine}
    if not won:
        return [], outcomes
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.attempts,
            Delivery.channel,
            Contact.phone,
            Contact.status,
            CampaignMessage.body,
            Campaign.valid_until,
            Campaign.quiet_start,
            Campaign.quiet_end,
        )
        .join(CampaignMessage, CampaignMessage.id == Delivery.message_id)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.id.in_(won))
        .order_by(Delivery.id)
    ).all()
    messages: list[OutboundMessage] = []
    ends: dict[End, list[int]] = {}
    for row in rows:
        checked = _check(ctx, session, row, now)
        if isinstance(checked, End):
            ends.setdefault(checked, []).append(row.id)
        else:
            messages.append(checked)
    for end, ids in ends.items():
        values: dict[str, object] = {"reason": end.reason, "finished_at": now}
        if end.state is DeliveryState.PENDING:
            values = {"batch": None, "attempts": Delivery.attempts - 1}
        deliveries.move(session, Delivery.id.in_(ids), end.state, values=values)
        outcomes.update(dict.fromkeys(ids, end.outcome))
        if end.state is DeliveryState.FAILED:
            for delivery_id in ids:
                fallback.fall_back(session, delivery_id)
    return messages, outcomes


def _check(ctx: Context, session: Session, row: Row[Any], now: datetime) -> OutboundMessage | End:
    """A claimed delivery's message, or why it is not to be sent now."""
    if row.phone is None or row.status != ContactStatus.ACTIVE:
        return End.OPTED_OUT
    if row.quiet_start is not None and in_quiet_hours(
        now, _recipient_zone(session, row.id), row.quiet_start, row.quiet_end
    ):
        return End.QUIET
    if row.valid_until is not None and row.valid_until <= now:
        return End.EXPIRED
    if row.attempts > ctx.settings.max_attempts:
        return End.TOO_MANY
    validity = None
    if row.valid_until is not None:
        validity = max(1, min(36000, int((row.valid_until - now).total_seconds())))
    return OutboundMessage(
        delivery_id=row.id,
        to=f"whatsapp:{row.phone}" if row.channel == "whatsapp" else row.phone,
        body=row.body,
        status_callback=status_callback_url(ctx.settings.public_url, row.id),
        validity_period=validity,
    )


def _recipient_zone(session: Session, delivery_id: int) -> str:
    """The contact's own time zone, else their first community's."""
    zone = session.scalar(
        select(func.coalesce(Contact.timezone, Community.timezone))
        .select_from(Delivery)
        .join(Contact, Contact.id == Delivery.contact_id)
        .join(Membership, Membership.contact_id == Contact.id)
        .join(Community, Community.id == Membership.community_id)
        .where(Delivery.id == delivery_id)
        .order_by(Community.id)
        .limit(1)
    )
    return zone or "UTC"


def record_sent(session: Session, sent: Sequence[tuple[int, str]]) -> None:
    """Write the provider SIDs of accepted messages: ``(delivery id, SID)`` pairs."""
    if not sent:
        return
    now = utcnow()
    moved = deliveries.move_each(
        session,
        [{"id": delivery_id, "provider_sid": sid, "sent_at": now} for delivery_id, sid in sent],
        DeliveryState.SENT,
        only_from=[DeliveryState.SENDING],
    )
    if moved != len(sent):
        # A callback got here first and moved some further; keep their SIDs all the same.
        session.connection().execute(
            update(Delivery)
            .where(Delivery.id == bindparam("row_id"), Delivery.provider_sid.is_(None))
            .values(provider_sid=bindparam("row_sid")),
            [{"row_id": delivery_id, "row_sid": sid} for delivery_id, sid in sent],
        )


def record_error(
    ctx: Context, session: Session, delivery_id: int, campaign_id: int, err: ProviderError
) -> Outcome:
    now = utcnow()
    this = Delivery.id == delivery_id
    fields: dict[str, object] = {
        "error_code": err.code or err.http_status,
        "error_message": str(err)[:500],
    }
    if err.kind is ErrorKind.CONFIGURATION:
        deliveries.move(
            session,
            this,
            DeliveryState.QUEUED,
            values={**fields, "batch": None, "attempts": Delivery.attempts - 1},
        )
        campaigns.stop(session, campaign_id, error=f"provider configuration error: {err}")
        log.error("campaign %s stopped: %s", campaign_id, err)
        return Outcome.STOP
    if err.kind is ErrorKind.RETRYABLE:
        created, attempts = session.execute(
            select(Delivery.created_at, Delivery.attempts).where(this)
        ).one()
        if now - created < MAX_RETRY_AGE and attempts < ctx.settings.max_attempts:
            deliveries.move(
                session,
                this,
                DeliveryState.QUEUED,
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
    deliveries.move(session, this, DeliveryState.FAILED, values={**fields, "finished_at": now})
    if err.code == OPTED_OUT_CODE:
        contact = session.scalar(
            select(Contact).join(Delivery, Delivery.contact_id == Contact.id).where(this)
        )
        if contact is not None:
            contacts.opt_out(session, contact, source=ConsentSource.PROVIDER.value)
    # A WhatsApp message refused for good goes again as one SMS (not to an opted-out person).
    fallback.fall_back(session, delivery_id)
    return Outcome.FAILED


class SidWriter:
    """Writes an accepted message's SID the moment the provider answers, each in its own
    commit, on one connection held for a run (no pool checkout per message), and through a
    database blip by :func:`with_db_retry`. Until that commit only the status callback can
    tell a killed worker's accepted message from one never sent, so no SID waits."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._conn: Connection | None = None
        self._session: Session | None = None

    def write(self, delivery_id: int, sid: str) -> None:
        sent = [(delivery_id, sid)]
        try:
            if self._session is None:
                self._conn = self._ctx.runtime.engine.connect()
                self._session = Session(bind=self._conn)
            record_sent(self._session, sent)
            self._session.commit()
        except OperationalError:
            self.close()
            with_db_retry(self._ctx, lambda session: record_sent(session, sent))

    def close(self) -> None:
        session, conn, self._session, self._conn = self._session, self._conn, None, None
        with contextlib.suppress(Exception):
            if session is not None:
                session.close()
            if conn is not None:
                conn.close()


def send_one(ctx: Context, message: OutboundMessage, campaign_id: int, sids: SidWriter) -> Outcome:
    """One provider request for a claimed delivery. An accepted message's SID is written at
    once by ``sids``; an error is recorded by :func:`record_error`."""
    delivery_id = message.delivery_id
    try:
        result = ctx.provider.send(message)
    except ProviderError as err:
        if err.ambiguous:
            # It may have been accepted: leave it `sending`. A status callback settles it;
            # with none by the timeout, the reconciler queues it again.
            log.warning("delivery %s: %s; waiting for a status callback", delivery_id, err)
            return Outcome.HELD
        log.info(
            "delivery %s to %s: %s",
            delivery_id,
            mask_phone(message.to.removeprefix("whatsapp:")),
            err,
        )
        with ctx.runtime.session() as session:
            return record_error(ctx, session, delivery_id, campaign_id, err)
    # The provider has the message: its SID must be written, even through a database blip.
    sids.write(delivery_id, result.sid)
    return Outcome.SENT


def hand_back(session: Session, delivery_ids: Sequence[int], *, attempted: bool = False) -> None:
    """Claimed deliveries that never reached the provider go back to ``queued`` (to the
    batch they came in, which the batch's end gives back); ``attempted`` keeps the attempt
    counted (their send failed in our own code)."""
    if delivery_ids:
        deliveries.move(
            session,
            Delivery.id.in_(delivery_ids),
            DeliveryState.QUEUED,
            only_from=[DeliveryState.SENDING],
            values={} if attempted else {"attempts": Delivery.attempts - 1},
        )


def send_run(
    ctx: Context,
    run: Sequence[Queued],
    campaign_id: int,
    campaign_rate: float | None,
    report: BatchReport,
) -> bool:
    """Send a run of deliveries: their slots from the rate limiter (one call), one claim,
    one provider request each at its slot, each SID written as it comes. True when the
    campaign was stopped."""
    also = [(f"campaign:{campaign_id}", campaign_rate)] if campaign_rate else []
    asked = time.monotonic()
    # Slots first, claim after: the claim is then never older than the run's own span.
    waits = ctx.limiter.reserve_many([q.parts for q in run], also)
    slots = {q.delivery_id: asked + wait for q, wait in zip(run, waits, strict=True)}
    _sleep_until(asked + waits[0])
    with ctx.runtime.session() as session:
        messages, outcomes = claim(ctx, session, [q.delivery_id for q in run])
    for outcome in outcomes.values():
        report.add(outcome)
    claimed = time.monotonic()
    sids = SidWriter(ctx)
    done = 0
    stopped = late = False
    try:
        for message in messages:
            _sleep_until(slots[message.delivery_id])
            if time.monotonic() - claimed > ctx.settings.sending_timeout / 2:
                # The reconciler takes a delivery `sending` this long without a SID for
                # lost and queues it again: give the rest back rather than race it.
                late = True
                break
            outcome = send_one(ctx, message, campaign_id, sids)
            done += 1
            report.add(outcome)
            if outcome is Outcome.STOP:
                stopped = True
                break
    finally:
        sids.close()
        if done < len(messages):
            # Nothing of the rest reached the provider (the campaign stopped, the run is
            # late, or our own code failed on the current one, whose attempt counts).
            clean = stopped or late
            failed = [] if clean else [messages[done].delivery_id]
            rest = [m.delivery_id for m in messages[done + (0 if clean else 1) :]]

            def give_back(session: Session) -> None:
                hand_back(session, failed, attempted=True)
                hand_back(session, rest)

            with_db_retry(ctx, give_back)
    return stopped


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


DB_RETRY_FOR = 60.0


def with_db_retry(ctx: Context, work: Callable[[Session], None]) -> None:
    """Run ``work`` in its own transaction, retrying while the database is unreachable."""
    deadline = time.monotonic() + DB_RETRY_FOR
    delay = 0.2
    while True:
        try:
            with ctx.runtime.session() as session:
                work(session)
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            log.warning("database unreachable; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        else:
            return


def next_run(queued: Sequence[Queued], start: int, slowest_rate: float) -> list[Queued]:
    """The deliveries from ``start`` to claim together: at most RUN of them, whose sends
    span at most RUN_SPAN seconds at ``slowest_rate`` (always at least one)."""
    budget = slowest_rate * RUN_SPAN
    run: list[Queued] = []
    used = 0
    for q in queued[start : start + RUN]:
        if run and used + q.parts > budget:
            break
        run.append(q)
        used += q.parts
    return run


def send_batch(ctx: Context, token: str, campaign_id: int, priority: str) -> BatchReport:
    """Send the queued deliveries of batch ``token`` in order, a run at a time; give back
    what is left."""
    report = BatchReport()
    ttl = ctx.settings.lease_ttl
    ctx.leases.renew(token, ttl)
    renewed = time.monotonic()
    renew_every = min(LEASE_RENEW_EVERY, ttl / 3)
    ignore_segments = bool(ctx.extras.get("ignore_segments"))
    with ctx.runtime.session() as session:
        queued = [
            Queued(delivery_id, 1 if ignore_segments else max(1, parts or 1))
            for delivery_id, parts in session.execute(
                select(Delivery.id, CampaignMessage.parts)
                .join(CampaignMessage, CampaignMessage.id == Delivery.message_id)
                .where(Delivery.batch == token, Delivery.state == DeliveryState.QUEUED.value)
                .order_by(Delivery.id)
            )
        ]
        campaign_rate = session.scalar(select(Campaign.send_rate).where(Campaign.id == campaign_id))
    slowest = min(ctx.limiter.rate, campaign_rate or ctx.limiter.rate)
    started = time.monotonic()
    try:
        position = 0
        while position < len(queued):
            if priority == Priority.BULK and time.monotonic() - started > BULK_SLICE:
                report.handed_back = len(queued) - position
                break
            run = next_run(queued, position, slowest)
            position += len(run)
            stopped = send_run(ctx, run, campaign_id, campaign_rate, report)
            if time.monotonic() - renewed >= renew_every:
                ctx.leases.renew(token, ttl)
                renewed = time.monotonic()
            if stopped:
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

        with_db_retry(ctx, close)
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
