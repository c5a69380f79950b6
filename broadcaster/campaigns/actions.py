"""What people do to campaigns: each action checked against who acts, applied, and written
to the audit log in the same transaction. The API, the dashboard and the command line call
these; the rules of the campaign itself live in :mod:`broadcaster.campaigns.service`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.audit.service import Actor
from broadcaster.campaigns import report as reports
from broadcaster.campaigns import service as campaigns
from broadcaster.communities import service as communities_service
from broadcaster.errors import Forbidden, InvalidInput, NotFound
from broadcaster.models import Campaign, CampaignState, Role


def visible(caller: Actor, campaign: Campaign) -> bool:
    """Whether ``caller`` may see ``campaign``: in their areas (and, for an official, of
    their organisation), or one they created or approved (see :mod:`broadcaster.areas`)."""
    if caller.user_id is not None and caller.user_id in (campaign.created_by, campaign.approved_by):
        return True
    return scope.sees_campaign(caller, campaign)


def get_visible(session: Session, caller: Actor, campaign_id: int) -> Campaign:
    campaign = campaigns.get(session, campaign_id)
    if not visible(caller, campaign):
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def _visible_clause(caller: Actor) -> ColumnElement[bool]:
    mine = (
        or_(Campaign.created_by == caller.user_id, Campaign.approved_by == caller.user_id)
        if caller.user_id is not None
        else false()
    )
    return or_(mine, scope.campaign_clause(caller))


def list_visible(session: Session, caller: Actor, limit: int = 100) -> list[Campaign]:
    stmt = select(Campaign).where(_visible_clause(caller)).order_by(Campaign.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def may_approve(caller: Actor, campaign: Campaign) -> bool:
    """Whether ``caller`` is someone who may give ``campaign`` its second approval: an
    official or admin other than its creator who sees it in their areas and organisation."""
    return (
        caller.role in (Role.OFFICIAL, Role.ADMIN)
        and caller.user_id is not None
        and caller.user_id != campaign.created_by
        and scope.sees_campaign(caller, campaign)
    )


def awaiting_my_approval(session: Session, caller: Actor, limit: int = 50) -> list[Campaign]:
    """Drafts (and campaigns stopped for a new approval) that ``caller`` may approve and
    that the two-person rule holds back: the "waiting for my approval" list."""
    if caller.role not in (Role.OFFICIAL, Role.ADMIN) or caller.user_id is None:
        return []
    stmt = (
        select(Campaign)
        .where(
            scope.campaign_clause(caller),
            or_(Campaign.created_by.is_(None), Campaign.created_by != caller.user_id),
            or_(
                Campaign.state == CampaignState.DRAFT.value,
                and_(
                    Campaign.state == CampaignState.STOPPED.value,
                    Campaign.error.startswith(campaigns.AWAITING_APPROVAL),
                ),
            ),
        )
        .order_by(Campaign.id)
        .limit(limit * 4)
    )
    waiting = [
        c
        for c in session.scalars(stmt)
        if c.state == CampaignState.STOPPED or campaigns.needs_approval(session, c)
    ]
    return waiting[:limit]


def create(session: Session, caller: Actor, **fields: Any) -> Campaign:
    """A draft campaign created by ``caller`` for their organisation, its audience in their
    areas: ``fields`` are :func:`broadcaster.campaigns.service.create_campaign`'s."""
    communities_named = communities_service.resolve_ids(
        session, fields.get("community_slugs", ()), descendants=False
    )
    scope.check_communities(session, caller, communities_named)
    campaign = campaigns.create_campaign(
        session, created_by=caller.user_id, organisation_id=caller.organisation_id, **fields
    )
    caller.record(session, "campaign.create", "campaign", campaign.id, name=campaign.name)
    return campaign


def schedule(
    session: Session,
    caller: Actor,
    campaign_id: int,
    send_at: datetime | None = None,
    threshold: int | None = None,
    *,
    timezone: str | None = None,
) -> Campaign:
    """Launch now (``send_at`` None) or at ``send_at``; ``threshold`` defaults to
    ``RISKCAST_APPROVAL_THRESHOLD``. With ``timezone`` (an IANA name), a ``send_at`` without
    an offset is a local time there, and the campaign keeps the zone to show its time back
    in it; without one, ``send_at`` must carry its offset."""
    get_visible(session, caller, campaign_id)
    if send_at is None:
        timezone = None
    elif timezone is not None:
        communities_service.check_timezone(timezone)
        if send_at.tzinfo is None:
            send_at = local_time(send_at, timezone)
    elif send_at.tzinfo is None:
        raise InvalidInput(
            "give a time zone (e.g. 2024-05-01T09:00:00+07:00, or a zone such as Asia/Bangkok)",
            field="send_at",
        )
    campaign = campaigns.schedule(
        session,
        campaign_id,
        send_at=send_at,
        approval_threshold=threshold,
        schedule_timezone=timezone,
    )
    caller.record(
        session,
        "campaign.schedule" if send_at else "campaign.launch",
        "campaign",
        campaign_id,
        send_at=campaign.send_at.isoformat() if campaign.send_at else None,
        **({"timezone": timezone} if timezone else {}),
    )
    return campaign


def local_time(naive: datetime, timezone: str) -> datetime:
    """``naive`` read on the clocks of ``timezone``; InvalidInput for a time those clocks
    skip (a daylight-saving jump)."""
    zone = ZoneInfo(timezone)
    local = naive.replace(tzinfo=zone)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise InvalidInput(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {timezone} (the clocks skip it)",
            field="send_at",
        )
    return local


def approve(session: Session, caller: Actor, campaign_id: int) -> Campaign:
    """Approve as the second person: ``caller`` themselves, signed in, never on behalf of
    someone else; they must see the campaign in their areas and organisation."""
    campaign = get_visible(session, caller, campaign_id)
    if caller.user_id is None:
        raise Forbidden("an approval is given by a signed-in official or admin")
    if caller.user_id != campaign.created_by and not may_approve(caller, campaign):
        raise Forbidden(
            f"campaign {campaign_id} is outside your areas or organisation; an official "
            "who works over its whole audience approves it"
        )
    campaign = campaigns.approve(session, campaign_id, caller.user_id)
    caller.record(
        session,
        "campaign.approve",
        "campaign",
        campaign_id,
        recipients=campaign.approved_recipients,
    )
    return campaign


OPERATIONS = ("pause", "resume", "cancel")


def may_operate(caller: Actor, campaign: Campaign) -> bool:
    """Operators and admins pause, resume and cancel what they see; an official, their own
    campaigns."""
    if caller.role in (Role.OPERATOR, Role.ADMIN):
        return scope.sees_campaign(caller, campaign) or caller.is_admin
    return caller.user_id is not None and caller.user_id == campaign.created_by


def operate(session: Session, caller: Actor, campaign_id: int, action: str) -> Campaign:
    """pause, resume or cancel, audited."""
    moves = {"pause": campaigns.pause, "resume": campaigns.resume, "cancel": campaigns.cancel}
    campaign = get_visible(session, caller, campaign_id)
    if not may_operate(caller, campaign):
        raise Forbidden(
            f"only an operator, or the official who created campaign {campaign_id}, may {action} it"
        )
    campaign = moves[action](session, campaign_id)
    caller.record(session, f"campaign.{action}", "campaign", campaign_id, state=campaign.state)
    return campaign


def retry(session: Session, caller: Actor, campaign_id: int) -> int:
    get_visible(session, caller, campaign_id)
    count = campaigns.retry_failed(session, campaign_id)
    caller.record(session, "campaign.retry_failed", "campaign", campaign_id, deliveries=count)
    return count


REPORT_FORMATS = ("csv", "xlsx")


def report(
    session: Session, caller: Actor, campaign_id: int, *, export: str | None = None
) -> reports.Report:
    """The campaign's report, for whoever sees the campaign; a file taken away (``export``
    csv or xlsx) is recorded in the audit log."""
    campaign = get_visible(session, caller, campaign_id)
    result = reports.campaign_report(session, campaign)
    if export is not None:
        if export not in REPORT_FORMATS:
            raise InvalidInput(f"{export!r} is not one of csv, xlsx", field="format")
        caller.record(
            session,
            "campaign.report.export",
            "campaign",
            campaign_id,
            format=export,
            deliveries=result.total["total"],
        )
    return result
