"""Settling deliveries in doubt by asking the provider, never by sending again blindly.

A delivery is in doubt when it has been ``sending`` with no provider SID for longer than
``Settings.in_doubt_after`` (:mod:`broadcaster.deliveries.in_doubt`). For each one the reconciler asks
the provider's read API for this sender's messages to that address created since the
claim (less a clock-skew margin), and matches them on body:

- found (and not already another delivery's message) -> its SID and status are recorded,
  exactly as a status callback would record them;
- provably absent (the list was read back past the claim and holds no match) -> queued
  again: only now may it be sent;
- the provider unreachable, rate-limited or refusing -> it stays in doubt and is asked again
  later (a doubling wait per delivery; a 429 ends the run), never resent.

Lookups are bounded: at most ``lookup_batch`` per run, each page request paced by the
fleet-wide limiter (counted against the send rate and a read rate of its own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from broadcaster.campaigns import fallback
from broadcaster.db import utcnow
from broadcaster.deliveries import in_doubt
from broadcaster.models import DeliveryState
from workers.context import Context
from workers.providers.base import ErrorKind, Lookup, ProviderError, ProviderMessage

log = logging.getLogger(__name__)

READS_SCHEDULE = "provider-reads"
# A run stops after this many lookups in a row the provider did not answer (the read API
# is down: asking the rest now only adds load and time), and once it has used half the
# reconcile interval (the scheduler loop that runs it also starts campaigns). The first
# lookup of a run always goes.
FAILURES_IN_A_ROW = 3


@dataclass
class SettleReport:
    found: int = 0
    requeued: int = 0
    unresolved: int = 0
    given_up: int = 0
    skipped: int = 0
    postponed: int = 0
    requests: int = 0
    rate_limited: bool = False
    # The run stopped early: the provider kept failing, or the run's time was up.
    cut_short: str | None = None

    def __bool__(self) -> bool:
        return bool(self.found or self.requeued or self.unresolved or self.given_up or self.skipped)


def match(lookup: Lookup, body: str, claimed: set[str]) -> ProviderMessage | None:
    """The provider's message for this delivery: same body, not already another delivery's,
    the oldest such (two in-doubt sends of the same text to one person take one each)."""
    mine = [m for m in lookup.messages if m.body == body and m.sid not in claimed]
    return min(mine, key=lambda m: m.created_at) if mine else None


def settle_in_doubt(ctx: Context, now: datetime | None = None) -> SettleReport:
    """Ask the provider about the deliveries in doubt whose lookup is due; record answers."""
    settings = ctx.settings
    now = now or utcnow()
    report = SettleReport()
    with ctx.runtime.session() as session:
        batch = in_doubt.candidates(
            session,
            now,
            settings.in_doubt_after,
            limit=settings.lookup_batch,
            retry_base=max(settings.reconcile_interval, 1.0),
        )
    reads: Sequence[tuple[str, float]] = [(READS_SCHEDULE, settings.lookup_rate)]

    def pace() -> None:
        ctx.limiter.acquire(1, also=reads)
        report.requests += 1

    live_cutoff = now - timedelta(seconds=settings.in_doubt_after)
    deadline = time.monotonic() + settings.reconcile_interval / 2
    failures = 0
    for position, candidate in enumerate(batch):
        if report.rate_limited:
            report.cut_short = "the provider is rate-limiting reads"
            break
        if failures >= FAILURES_IN_A_ROW:
            report.cut_short = f"{failures} lookups in a row unanswered"
            break
        if position and time.monotonic() > deadline:
            report.cut_short = "the run's time was up"
            break
        before = report.unresolved + report.given_up
        settle_one(ctx, candidate, pace, live_cutoff, report)
        failures = failures + 1 if report.unresolved + report.given_up > before else 0
    if report:
        log.warning(
            "in doubt: %d found at the provider, %d queued again, %d still unresolved, "
            "%d given up, %d skipped (%d read requests)%s",
            report.found,
            report.requeued,
            report.unresolved,
            report.given_up,
            report.skipped,
            report.requests,
            f"; stopped early: {report.cut_short}" if report.cut_short else "",
        )
    return report


def settle_one(
    ctx: Context,
    candidate: in_doubt.Candidate,
    pace: Callable[[], object],
    live_cutoff: datetime,
    report: SettleReport,
) -> None:
    settings = ctx.settings
    now = utcnow()
    to = candidate.to
    if to is None:
        with ctx.runtime.session() as session:
            if in_doubt.record_erased(session, candidate, now):
                report.skipped += 1
        return
    since = candidate.sending_at - timedelta(seconds=settings.lookup_skew)
    try:
        lookup = ctx.provider.messages_to(to, since, pace=pace)
    except ProviderError as err:
        if err.http_status == 429 or err.code in (20429, 63017):
            report.rate_limited = True
        note = f"the provider did not answer the lookup: {err}"
        if err.kind is ErrorKind.CONFIGURATION:
            note = f"the provider refused the lookup: {err}"
        _unresolved(ctx, candidate, note, report)
        return
    try:
        unproven = _record_answer(ctx, candidate, lookup, live_cutoff, now, report)
    except IntegrityError:
        # Another delivery took that SID between our check and our write (a callback, a
        # second reconciler): nothing was written; ask again next run.
        report.postponed += 1
        return
    if unproven is not None:
        _unresolved(ctx, candidate, unproven, report)


def _record_answer(
    ctx: Context,
    candidate: in_doubt.Candidate,
    lookup: Lookup,
    live_cutoff: datetime,
    now: datetime,
    report: SettleReport,
) -> str | None:
    """Record what the lookup proved, in one transaction; or say why it proved nothing."""
    with ctx.runtime.session() as session:
        claimed = in_doubt.known_sids(session, [m.sid for m in lookup.messages])
        found = match(lookup, candidate.body, claimed)
        if found is not None:
            if in_doubt.send_in_progress(session, candidate, live_cutoff):
                # The match could be the message another worker is sending to this person
                # this very moment: ask again once that send has its SID.
                report.postponed += 1
                return None
            state = in_doubt.record_found(
                session,
                candidate,
                sid=found.sid,
                status=found.status,
                error_code=found.error_code,
                now=now,
            )
            fallback.after_provider_status(session, state, delivery_id=candidate.id, sid=found.sid)
            report.found += state is not None
            return None
        if not lookup.complete:
            return (
                f"the provider's list of messages to this person took {lookup.requests} "
                "pages; absence not proven"
            )
        unexplained = [m for m in lookup.messages if m.sid not in claimed]
        if unexplained:
            # Ours, to this person, in the window, held by no delivery, with another text:
            # perhaps this one, its body changed on the way (link shortening, smart
            # encoding). Not proof of absence.
            return (
                f"the provider has {len(unexplained)} message(s) to this person since the "
                "send with another text; absence not proven"
            )
        if in_doubt.record_absent(session, candidate, now) is not None:
            report.requeued += 1
        return None


def _unresolved(
    ctx: Context, candidate: in_doubt.Candidate, note: str, report: SettleReport
) -> None:
    with ctx.runtime.session() as session:
        state = in_doubt.record_unresolved(
            session, candidate, note, utcnow(), limit=ctx.settings.in_doubt_limit
        )
    if state is DeliveryState.FAILED:
        report.given_up += 1
        log.error(
            "delivery %s: in doubt past its campaign's validity; failed as unconfirmed (%s)",
            candidate.id,
            note,
        )
    else:
        report.unresolved += 1
