"""Deliveries in doubt: ``sending`` with no provider SID for longer than the in-doubt age.

The worker that claimed one died after its request may have left, or the provider's answer
never came back. The provider may have the message (Twilio posts no callback for a
message's initial status, and ``sent`` can come hours later), so such a delivery is never
sent again blindly: :mod:`workers.settling` asks the provider's read API and calls the
functions here to record what it said. Each one is a conditional UPDATE that holds only if
the delivery is still the same claim (``sending``, no SID, the ``sending_at`` that was
read), so a callback or a live worker that got there first always wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true, update
from sqlalchemy.orm import Session

from broadcaster.db import utcnow
from broadcaster.deliveries import service as deliveries
from broadcaster.models import (
    Campaign,
    CampaignMessage,
    CampaignState,
    Contact,
    Delivery,
    DeliveryState,
    SkipReason,
)

NOTE_LENGTH = 200


def is_in_doubt(cutoff: datetime) -> Any:
    """The WHERE clause of the in-doubt sub-state, for claims made before ``cutoff``."""
    return and_(
        Delivery.state == DeliveryState.SENDING.value,
        Delivery.provider_sid.is_(None),
        Delivery.sending_at < cutoff,
    )


@dataclass(frozen=True)
class Candidate:
    """An in-doubt delivery and what a lookup needs to find it at the provider."""

    id: int
    campaign_id: int
    contact_id: int | None
    phone: str | None  # None once the person is erased
    channel: str
    body: str
    sending_at: datetime
    lookups: int
    looked_up_at: datetime | None
    valid_until: datetime | None

    @property
    def to(self) -> str | None:
        if self.phone is None:
            return None
        return f"whatsapp:{self.phone}" if self.channel == "whatsapp" else self.phone


def lookup_due(lookups: int, looked_up_at: datetime | None, now: datetime, base: float) -> bool:
    """A delivery asked about ``lookups`` times is asked again after a doubling wait
    (``base`` seconds, then twice that, up to 10 minutes), so a provider that does not
    answer is not hammered."""
    if looked_up_at is None or lookups == 0:
        return True
    wait = min(600.0, base * 2 ** max(0, lookups - 1))
    return now >= looked_up_at + timedelta(seconds=wait)


def candidates(
    session: Session, now: datetime, after: float, *, limit: int, retry_base: float
) -> list[Candidate]:
    """Up to ``limit`` in-doubt deliveries whose next lookup is due, least recently asked
    first."""
    cutoff = now - timedelta(seconds=after)
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.campaign_id,
            Delivery.contact_id,
            Contact.phone,
            Delivery.channel,
            CampaignMessage.body,
            Delivery.sending_at,
            Delivery.lookups,
            Delivery.looked_up_at,
            Campaign.valid_until,
        )
        .join(CampaignMessage, CampaignMessage.id == Delivery.message_id)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(is_in_doubt(cutoff))
        .order_by(func.coalesce(Delivery.looked_up_at, Delivery.sending_at), Delivery.id)
        .limit(limit * 4)
    ).all()
    due = [
        Candidate(**row._asdict())
        for row in rows
        if lookup_due(row.lookups, row.looked_up_at, now, retry_base)
    ]
    return due[:limit]


def known_sids(session: Session, sids: list[str]) -> set[str]:
    """Which of these provider SIDs a delivery already holds (another delivery's message)."""
    if not sids:
        return set()
    return {
        str(sid)
        for sid in session.scalars(
            select(Delivery.provider_sid).where(Delivery.provider_sid.in_(sids))
        )
    }


def send_in_progress(session: Session, candidate: Candidate, cutoff: datetime) -> bool:
    """Another delivery to the same person is being sent right now (claimed after
    ``cutoff``, no SID yet): a message found now could be that one's."""
    if candidate.contact_id is None:
        return False
    return (
        session.scalar(
            select(Delivery.id)
            .where(
                Delivery.state == DeliveryState.SENDING.value,
                Delivery.contact_id == candidate.contact_id,
                Delivery.provider_sid.is_(None),
                Delivery.sending_at >= cutoff,
                Delivery.id != candidate.id,
            )
            .limit(1)
        )
        is not None
    )


def _same_claim(candidate: Candidate) -> Any:
    return and_(
        Delivery.id == candidate.id,
        Delivery.provider_sid.is_(None),
        Delivery.sending_at == candidate.sending_at,
    )


def _note(text: str) -> str:
    return text[:NOTE_LENGTH]


def record_found(
    session: Session,
    candidate: Candidate,
    *,
    sid: str,
    status: str,
    error_code: int | None,
    now: datetime,
) -> DeliveryState | None:
    """The provider has it: record its SID and status exactly as a status callback would.
    Returns the delivery's state after (the caller falls back to SMS, in the same
    transaction, if it failed for good, as it does after a callback)."""
    session.execute(
        update(Delivery)
        .where(_same_claim(candidate))
        .values(
            lookups=Delivery.lookups + 1,
            looked_up_at=now,
            lookup_note=_note(f"found at the provider: {sid} ({status})"),
        )
        .execution_options(synchronize_session=False)
    )
    return deliveries.apply_provider_status(
        session, delivery_id=candidate.id, sid=sid, status=status, error_code=error_code
    )


def record_absent(session: Session, candidate: Candidate, now: datetime) -> DeliveryState | None:
    """The provider provably does not have it: queue it again (its campaign cancelled:
    skip it). Returns the new state, or None if something else moved it first.

    The campaign's state is read by the UPDATE itself, not before the lookup: a cancel that
    lands meanwhile is seen (and a cancel after it finds the delivery queued and skips it).
    """
    cancelled = Delivery.campaign_id.in_(
        select(Campaign.id).where(Campaign.state == CampaignState.CANCELLED.value)
    )
    noted = {"lookups": Delivery.lookups + 1, "looked_up_at": now}
    if deliveries.move(
        session,
        and_(_same_claim(candidate), ~cancelled),
        DeliveryState.QUEUED,
        only_from=[DeliveryState.SENDING],
        values={
            **noted,
            "batch": None,
            "next_attempt_at": None,
            "lookup_note": _note("not at the provider: queued again"),
        },
    ):
        return DeliveryState.QUEUED
    if deliveries.move(
        session,
        and_(_same_claim(candidate), cancelled),
        DeliveryState.SKIPPED,
        only_from=[DeliveryState.SENDING],
        values={
            **noted,
            "reason": SkipReason.CANCELLED.value,
            "finished_at": now,
            "lookup_note": _note("not at the provider; campaign cancelled"),
        },
    ):
        return DeliveryState.SKIPPED
    return None


def record_erased(session: Session, candidate: Candidate, now: datetime) -> bool:
    """The person was erased while their send was in doubt: nothing can be looked up or
    sent to them again."""
    return bool(
        deliveries.move(
            session,
            _same_claim(candidate),
            DeliveryState.SKIPPED,
            only_from=[DeliveryState.SENDING],
            values={
                "reason": SkipReason.OPTED_OUT.value,
                "finished_at": now,
                "lookup_note": _note("contact erased while in doubt; not looked up"),
            },
        )
    )


def record_unresolved(
    session: Session, candidate: Candidate, note: str, now: datetime, *, limit: float
) -> DeliveryState:
    """The provider did not answer (or could not prove absence): it stays in doubt and is
    asked again later. Past the campaign's ``valid_until`` (else ``limit`` seconds after its
    claim) it fails as ``unconfirmed``: sent once or not at all, never resent."""
    deadline = candidate.valid_until or candidate.sending_at + timedelta(seconds=limit)
    values: dict[str, Any] = {
        "lookups": Delivery.lookups + 1,
        "looked_up_at": now,
        "lookup_note": _note(note),
    }
    if now >= deadline:
        values.update(
            reason=SkipReason.UNCONFIRMED.value,
            finished_at=now,
            lookup_note=_note(f"{note}; gave up at the campaign's end of validity"),
        )
        if deliveries.move(
            session,
            _same_claim(candidate),
            DeliveryState.FAILED,
            only_from=[DeliveryState.SENDING],
            values=values,
        ):
            return DeliveryState.FAILED
        return DeliveryState.SENDING
    session.execute(
        update(Delivery)
        .where(_same_claim(candidate), Delivery.state == DeliveryState.SENDING.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return DeliveryState.SENDING


def note_ambiguous(session: Session, delivery_id: int, note: str) -> None:
    """A worker's request may have reached the provider but no answer came: say so on the
    delivery, which stays ``sending`` until a callback or a lookup settles it."""
    session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.state == DeliveryState.SENDING.value,
            Delivery.provider_sid.is_(None),
        )
        .values(lookup_note=_note(note))
        .execution_options(synchronize_session=False)
    )


# -- what operators see ----------------------------------------------------------------


@dataclass(frozen=True)
class InDoubtDelivery:
    id: int
    campaign_id: int
    phone: str | None  # whole: the caller masks it
    sending_at: datetime
    lookups: int
    looked_up_at: datetime | None
    note: str | None


@dataclass(frozen=True)
class InDoubtSummary:
    count: int
    oldest_seconds: float | None  # age of the oldest claim in doubt
    last_note: str | None  # what the most recent lookup (or worker) said
    last_lookup_at: datetime | None
    deliveries: list[InDoubtDelivery]


def summary(
    session: Session,
    after: float,
    *,
    limit: int = 50,
    campaigns: ColumnElement[bool] | None = None,
) -> InDoubtSummary:
    """How many deliveries are in doubt, the oldest's age, what the last lookup said (the
    whole fleet's), and the oldest ``limit`` of them, of the ``campaigns`` selected when
    given (with whole numbers: the caller masks them)."""
    now = utcnow()
    where = is_in_doubt(now - timedelta(seconds=after))
    count, oldest = session.execute(
        select(func.count(), func.min(Delivery.sending_at)).select_from(Delivery).where(where)
    ).one()
    last = session.execute(
        select(Delivery.lookup_note, Delivery.looked_up_at)
        .where(where, Delivery.lookup_note.is_not(None))
        .order_by(Delivery.looked_up_at.desc().nulls_last(), Delivery.id.desc())
        .limit(1)
    ).first()
    rows = (
        session.execute(
            select(
                Delivery.id,
                Delivery.campaign_id,
                Contact.phone,
                Delivery.sending_at,
                Delivery.lookups,
                Delivery.looked_up_at,
                Delivery.lookup_note.label("note"),
            )
            .outerjoin(Contact, Contact.id == Delivery.contact_id)
            .where(
                where,
                true()
                if campaigns is None
                else Delivery.campaign_id.in_(select(Campaign.id).where(campaigns)),
            )
            .order_by(Delivery.sending_at, Delivery.id)
            .limit(limit)
        ).all()
        if limit
        else []
    )
    return InDoubtSummary(
        count=int(count or 0),
        oldest_seconds=(now - oldest).total_seconds() if oldest is not None else None,
        last_note=last[0] if last else None,
        last_lookup_at=last[1] if last else None,
        deliveries=[InDoubtDelivery(**row._asdict()) for row in rows],
    )
