"""WhatsApp to SMS fallback.

A WhatsApp delivery that ends for good without reaching the person (refused when sent,
``undelivered`` or ``failed`` in a status callback, or out of retries) is followed by one
SMS with the same text: a second delivery row, queued, whose ``fallback_of`` names the
first. The scheduler tick gives it a batch like any other queued delivery.

No fallback when the person opted out or was erased, when the campaign was cancelled or
stopped, or when the message is no longer valid. A unique ``fallback_of`` makes this
idempotent: a repeated or late callback never sends a second SMS. The caller commits.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broadcaster.campaigns import service as campaigns
from broadcaster.db import utcnow
from broadcaster.models import (
    Campaign,
    CampaignState,
    Channel,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryState,
)

# Ends of a delivery after which the person has not had the message.
NOT_REACHED = frozenset({DeliveryState.FAILED.value, DeliveryState.UNDELIVERED.value})
# Campaign states in which a fallback may still go out (a completed one reopens for it).
OPEN = frozenset(
    {
        CampaignState.FANNING_OUT.value,
        CampaignState.SENDING.value,
        CampaignState.PAUSED.value,
        CampaignState.COMPLETED.value,
    }
)


def fall_back(session: Session, delivery_id: int) -> int | None:
    """Queue the SMS fallback of WhatsApp delivery ``delivery_id`` if it is due one.

    Returns the fallback's id when one was created now, else None.
    """
    row = session.execute(
        select(
            Delivery.channel,
            Delivery.state,
            Delivery.fallback_of,
            Delivery.campaign_id,
            Delivery.contact_id,
            Delivery.message_id,
            Contact.status.label("contact_status"),
            Campaign.state.label("campaign_state"),
            Campaign.valid_until,
        )
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .outerjoin(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.id == delivery_id)
    ).first()
    if row is None or row.channel != Channel.WHATSAPP or row.fallback_of is not None:
        return None
    now = utcnow()
    if (
        row.state not in NOT_REACHED
        or row.contact_status != ContactStatus.ACTIVE
        or row.campaign_state not in OPEN
        or (row.valid_until is not None and row.valid_until <= now)
    ):
        return None
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    created = session.execute(
        insert(Delivery)
        .values(
            campaign_id=row.campaign_id,
            contact_id=row.contact_id,
            message_id=row.message_id,
            channel=Channel.SMS.value,
            state=DeliveryState.QUEUED.value,
            fallback_of=delivery_id,
            queued_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["fallback_of"])
        .returning(Delivery.id)
    ).scalar()
    if created is not None and row.campaign_state == CampaignState.COMPLETED:
        campaigns.move(
            session,
            row.campaign_id,
            CampaignState.SENDING,
            only_from=[CampaignState.COMPLETED],
            values={"completed_at": None},
        )
    return created


def after_provider_status(
    session: Session, state: DeliveryState | None, *, delivery_id: int | None, sid: str | None
) -> int | None:
    """Fall back if a status report (callback or lookup) left a delivery not reached."""
    if state is None or state not in NOT_REACHED:
        return None
    if delivery_id is None:
        delivery_id = session.scalar(select(Delivery.id).where(Delivery.provider_sid == sid))
    return None if delivery_id is None else fall_back(session, delivery_id)
