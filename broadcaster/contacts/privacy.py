"""Privacy: everything held on one person (export), erasure, and retention.

Erasing a person removes the contact, their memberships and the messages they sent us.
Their deliveries stay, with ``contact_id`` NULL, so campaign counts stay true while nothing
points back at the person; a provider error text kept on a delivery is masked, as it can
quote the number. The audit log keeps that an erasure happened, never the number.

Retention (``RISKCAST_RETENTION_DAYS``): :func:`erase_inactive` erases contacts with no
activity (their own last message, or their creation), no delivery and no inbound message
for N days. Opted-out and blocked contacts are kept: their record is what stops a later
import or an official from adding the number again (a person who wants even that gone asks
for :func:`erase_contact`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from broadcaster.models import (
    Campaign,
    Community,
    Contact,
    ContactStatus,
    Delivery,
    InboundMessage,
    Membership,
)
from broadcaster.phones import mask_phones_in_text

__all__ = ["erase_contact", "erase_inactive", "export_contact", "inactive_ids"]

_PAGE = 500


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _own_addresses(phone: str) -> list[str]:
    """How the person's number can appear as the sender of an inbound message."""
    return [phone, f"whatsapp:{phone}"]


def export_contact(session: Session, contact: Contact) -> dict[str, Any]:
    """All riskcast holds on one person, as JSON-ready data (the full number included:
    this is the person's own data request)."""
    memberships = session.execute(
        select(Community.slug, Community.name, Membership.created_at)
        .join(Membership, Membership.community_id == Community.id)
        .where(Membership.contact_id == contact.id)
        .order_by(Community.slug)
    ).all()
    deliveries = session.execute(
        select(Delivery, Campaign.name, Campaign.state)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.contact_id == contact.id)
        .order_by(Delivery.id)
    ).all()
    inbound = session.scalars(
        select(InboundMessage)
        .where(
            or_(
                InboundMessage.contact_id == contact.id,
                InboundMessage.from_phone.in_(_own_addresses(contact.phone)),
            )
        )
        .order_by(InboundMessage.received_at, InboundMessage.id)
    ).all()
    return {
        "contact": {
            "id": contact.id,
            "phone": contact.phone,
            "name": contact.name,
            "language": contact.language,
            "country": contact.country,
            "timezone": contact.timezone,
            "channel": contact.channel,
            "status": contact.status,
            "consent_source": contact.consent_source,
            "consent_at": _iso(contact.consent_at),
            "opted_out_at": _iso(contact.opted_out_at),
            "opted_out_source": contact.opted_out_source,
            "created_at": _iso(contact.created_at),
            "updated_at": _iso(contact.updated_at),
            "last_activity_at": _iso(contact.last_activity_at),
        },
        "memberships": [
            {"community": slug, "name": name, "since": _iso(since)}
            for slug, name, since in memberships
        ],
        "deliveries": [
            {
                "campaign_id": d.campaign_id,
                "campaign": campaign_name,
                "campaign_state": campaign_state,
                "channel": d.channel,
                "state": d.state,
                "reason": d.reason,
                "error_code": d.error_code,
                "attempts": d.attempts,
                "created_at": _iso(d.created_at),
                "queued_at": _iso(d.queued_at),
                "sent_at": _iso(d.sent_at),
                "finished_at": _iso(d.finished_at),
            }
            for d, campaign_name, campaign_state in deliveries
        ],
        "inbound_messages": [
            {
                "received_at": _iso(m.received_at),
                "from": m.from_phone,
                "to": m.to_phone,
                "body": m.body,
                "keyword": m.keyword,
                "tag": m.tag,
            }
            for m in inbound
        ],
    }


def _erase_ids(session: Session, ids: Sequence[int], phones: Sequence[str]) -> None:
    """Erase these contacts (ids and their numbers, same length)."""
    for delivery in session.scalars(
        select(Delivery).where(Delivery.contact_id.in_(ids), Delivery.error_message.is_not(None))
    ):
        delivery.error_message = mask_phones_in_text(delivery.error_message or "")
    session.flush()
    # Deliveries are kept (counts stay true) but no longer point at anyone. The foreign
    # key would do it too (ON DELETE SET NULL); doing it here keeps both backends alike.
    session.execute(
        update(Delivery)
        .where(Delivery.contact_id.in_(ids))
        .values(contact_id=None)
        .execution_options(synchronize_session=False)
    )
    addresses = [a for phone in phones for a in _own_addresses(phone)]
    session.execute(
        delete(InboundMessage)
        .where(or_(InboundMessage.contact_id.in_(ids), InboundMessage.from_phone.in_(addresses)))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(Membership)
        .where(Membership.contact_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(Contact).where(Contact.id.in_(ids)).execution_options(synchronize_session=False)
    )


def erase_contact(session: Session, contact: Contact) -> int:
    """Erase one person; returns how many of their deliveries were kept, anonymous."""
    kept = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.contact_id == contact.id)
    )
    _erase_ids(session, [contact.id], [contact.phone])
    session.expunge(contact)
    return int(kept or 0)


def inactive_ids(session: Session, now: datetime, days: int, *, limit: int) -> list[int]:
    """Up to ``limit`` ids of active contacts with no activity, delivery or message since
    ``now - days``."""
    cutoff = now - timedelta(days=days)
    recent_delivery = exists().where(
        Delivery.contact_id == Contact.id,
        or_(Delivery.created_at >= cutoff, Delivery.updated_at >= cutoff),
    )
    recent_message = exists().where(
        InboundMessage.contact_id == Contact.id, InboundMessage.received_at >= cutoff
    )
    return list(
        session.scalars(
            select(Contact.id)
            .where(
                Contact.status == ContactStatus.ACTIVE.value,
                func.coalesce(Contact.last_activity_at, Contact.created_at) < cutoff,
                Contact.created_at < cutoff,
                ~recent_delivery,
                ~recent_message,
            )
            .order_by(Contact.id)
            .limit(limit)
        )
    )


def erase_inactive(session: Session, now: datetime, days: int) -> int:
    """Erase every contact inactive for ``days`` days (see the module docstring); returns
    how many. Works in pages; the caller commits."""
    if days < 1:
        raise ValueError("days must be at least 1")
    erased = 0
    while True:
        ids = inactive_ids(session, now, days, limit=_PAGE)
        if not ids:
            return erased
        phones = list(session.scalars(select(Contact.phone).where(Contact.id.in_(ids))))
        _erase_ids(session, ids, phones)
        erased += len(ids)
