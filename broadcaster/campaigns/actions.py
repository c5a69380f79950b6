"""What people do to campaigns: each action checked against who acts, applied, and written
to the audit log in the same transaction. The API, the dashboard and the command line call
these; the rules of the campaign itself live in :mod:`broadcaster.campaigns.service`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broadcaster.audit.service import Actor
from broadcaster.campaigns import service as campaigns
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import Campaign, CampaignState, Role, User


def visible(caller: Actor, campaign: Campaign) -> bool:
    """Officials see the campaigns they created or approved and every draft; operators and
    admins see all."""
    if caller.role != Role.OFFICIAL:
        return True
    return (
        caller.user_id is not None and caller.user_id in (campaign.created_by, campaign.approved_by)
    ) or campaign.state == CampaignState.DRAFT


def get_visible(session: Session, caller: Actor, campaign_id: int) -> Campaign:
    campaign = campaigns.get(session, campaign_id)
    if not visible(caller, campaign):
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def list_visible(session: Session, caller: Actor, limit: int = 100) -> list[Campaign]:
    stmt = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if caller.role == Role.OFFICIAL:
        stmt = stmt.where(
            or_(
                Campaign.created_by == caller.user_id,
                Campaign.approved_by == caller.user_id,
                Campaign.state == CampaignState.DRAFT.value,
            )
        )
    return list(session.scalars(stmt))


def create(session: Session, caller: Actor, **fields: Any) -> Campaign:
    """A draft campaign created by ``caller``: ``fields`` are
    :func:`broadcaster.campaigns.service.create_campaign`'s."""
    campaign = campaigns.create_campaign(session, created_by=caller.user_id, **fields)
    caller.record(session, "campaign.create", "campaign", campaign.id, name=campaign.name)
    return campaign


def schedule(
    session: Session,
    caller: Actor,
    campaign_id: int,
    send_at: datetime | None = None,
    threshold: int | None = None,
) -> Campaign:
    """Launch now (``send_at`` None) or at ``send_at``; ``threshold`` defaults to
    ``RISKCAST_APPROVAL_THRESHOLD``."""
    get_visible(session, caller, campaign_id)
    if send_at is not None and send_at.tzinfo is None:
        raise InvalidInput("give a time zone (e.g. 2024-05-01T09:00:00+07:00)", field="send_at")
    campaign = campaigns.schedule(
        session, campaign_id, send_at=send_at, approval_threshold=threshold
    )
    caller.record(
        session,
        "campaign.schedule" if send_at else "campaign.launch",
        "campaign",
        campaign_id,
        send_at=campaign.send_at.isoformat() if campaign.send_at else None,
    )
    return campaign


def approve(
    session: Session, caller: Actor, campaign_id: int, *, approver: User | None = None
) -> Campaign:
    """Approve a draft as the second person: ``caller`` itself, or ``approver`` when the
    caller acts for someone (the command line names the approving user)."""
    get_visible(session, caller, campaign_id)
    approver_id = approver.id if approver is not None else caller.user_id
    if approver_id is None:
        raise InvalidInput("an approval is given by a user with an account", field="user")
    campaign = campaigns.approve(session, campaign_id, approver_id)
    detail = {"approved_by": approver.name} if approver is not None else {}
    caller.record(session, "campaign.approve", "campaign", campaign_id, **detail)
    return campaign


def operate(session: Session, caller: Actor, campaign_id: int, action: str) -> Campaign:
    """pause, resume or cancel, audited."""
    moves = {"pause": campaigns.pause, "resume": campaigns.resume, "cancel": campaigns.cancel}
    campaign = moves[action](session, campaign_id)
    caller.record(session, f"campaign.{action}", "campaign", campaign_id, state=campaign.state)
    return campaign


def retry(session: Session, caller: Actor, campaign_id: int) -> int:
    count = campaigns.retry_failed(session, campaign_id)
    caller.record(session, "campaign.retry_failed", "campaign", campaign_id, deliveries=count)
    return count
