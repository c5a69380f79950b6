"""Campaigns: create from a template version, and every move of the campaign state machine.

The diagram is in :mod:`broadcaster.campaigns.models`; :func:`move` enforces it with a
conditional UPDATE, so two processes (an operator pausing, a worker completing) never
both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, CursorResult, and_, exists, func, select, text, update
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.campaigns.audience import eligible_contacts
from broadcaster.communities import service as communities
from broadcaster.config import get_settings
from broadcaster.db import utcnow
from broadcaster.deliveries import service as deliveries
from broadcaster.deliveries.models import RETRYABLE_FAILURES, UNFINISHED, SkipReason
from broadcaster.errors import IllegalState, InvalidInput, NotFound
from broadcaster.models import (
    Campaign,
    CampaignState,
    Channel,
    Delivery,
    DeliveryState,
    Priority,
    Role,
    Template,
    TemplateVersion,
    User,
)
from broadcaster.templates import service as templates
from broadcaster.users import auth
from messages import CONTACT_VARIABLES

S = CampaignState
TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.SCHEDULED, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.FANNING_OUT, S.PAUSED, S.CANCELLED}),
    S.FANNING_OUT: frozenset({S.SENDING, S.PAUSED, S.STOPPED, S.CANCELLED}),
    S.SENDING: frozenset({S.COMPLETED, S.PAUSED, S.STOPPED, S.CANCELLED}),
    S.PAUSED: frozenset({S.SCHEDULED, S.FANNING_OUT, S.SENDING, S.CANCELLED}),
    S.STOPPED: frozenset({S.FANNING_OUT, S.SENDING, S.CANCELLED}),
    S.COMPLETED: frozenset({S.SENDING}),  # retry-failed reopens it
    S.CANCELLED: frozenset(),
}
ACTIVE = (S.FANNING_OUT, S.SENDING)


def move(
    session: Session,
    campaign_id: int,
    to: CampaignState,
    *,
    only_from: Iterable[str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Move a campaign to ``to`` if its current state allows; True when it moved."""
    allowed = frozenset(s for s, targets in TRANSITIONS.items() if to in targets)
    if only_from is not None:
        allowed &= frozenset(only_from)
    stmt = (
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.state.in_(sorted(allowed)))
        .values(state=to.value, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
    return result.rowcount == 1


def get(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id, populate_existing=True)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def create_campaign(
    session: Session,
    *,
    name: str,
    template_key: str,
    community_slugs: Iterable[str],
    descendants: bool = True,
    languages: Iterable[str] = (),
    countries: Iterable[str] = (),
    priority: str = Priority.BULK.value,
    channel: str = Channel.SMS.value,
    variables: Mapping[str, str] | None = None,
    quiet_hours: tuple[int, int] | None = None,
    valid_until: datetime | None = None,
    send_rate: float | None = None,
    created_by: int | None = None,
    organisation_id: int | None = None,
) -> Campaign:
    """A draft campaign frozen to the template's current version, of ``organisation_id``,
    its area the deepest community holding its whole audience."""
    if not name.strip():
        raise InvalidInput("must not be empty", field="name")
    if priority not in {p.value for p in Priority}:
        raise InvalidInput(f"{priority!r} is not one of urgent, bulk", field="priority")
    if channel not in {c.value for c in Channel}:
        raise InvalidInput(f"{channel!r} is not one of sms, whatsapp, preferred", field="channel")
    slugs = list(community_slugs)
    if not slugs:
        raise InvalidInput("name at least one community", field="community")
    community_ids = communities.resolve_ids(session, slugs, descendants=False)
    version = templates.current_version(session, template_key)
    variables = dict(variables or {})
    # A variable the official leaves unset keeps the template's own value (the catalog's
    # hotline, for instance); contact variables are filled in per recipient at fan-out.
    merged = {k: str(v) for k, v in version.variables.items() if k not in CONTACT_VARIABLES}
    merged.update(variables)
    unknown = sorted(set(variables) - set(version.variables))
    if unknown:
        raise InvalidInput(
            f"template {template_key!r} has no variable {unknown[0]!r} "
            f"(it has: {', '.join(sorted(version.variables)) or 'none'})",
            field="var",
        )
    if send_rate is not None and send_rate <= 0:
        raise InvalidInput("must be more than 0 segments per second", field="send_rate")
    if quiet_hours is not None:
        start, end = quiet_hours
        if not (0 <= start <= 23 and 0 <= end <= 23) or start == end:
            raise InvalidInput("quiet hours are two different hours 0-23", field="quiet_hours")
    campaign = Campaign(
        name=name.strip(),
        template_version_id=version.id,
        state=S.DRAFT.value,
        priority=priority,
        channel=channel,
        variables=merged,
        audience={
            "communities": community_ids,
            "descendants": descendants,
            "languages": sorted(set(languages)),
            "countries": sorted({c.upper() for c in countries}),
        },
        quiet_start=quiet_hours[0] if quiet_hours else None,
        quiet_end=quiet_hours[1] if quiet_hours else None,
        valid_until=valid_until,
        send_rate=send_rate,
        created_by=created_by,
        organisation_id=organisation_id,
        area_path=scope.area_path(session, community_ids),
    )
    session.add(campaign)
    session.flush()
    return campaign


def local_hotlines(
    campaign: Campaign, version: TemplateVersion, hotlines: Mapping[str, str]
) -> dict[str, str]:
    """Country -> the ``hotline`` people whose numbers are of that country are told instead
    of the campaign's (``Settings.hotlines``): a short number such as 1166 rings only in its
    own country. Empty when the official set the campaign's hotline to a number of their
    own (anything but the template's value, which is what an unset variable keeps)."""
    own = campaign.variables.get("hotline")
    if own is None or str(version.variables.get("hotline")) != str(own):
        return {}
    return {country: number for country, number in hotlines.items() if number != own}


def schedule(
    session: Session,
    campaign_id: int,
    *,
    send_at: datetime | None = None,
    approval_threshold: int | None = None,
    schedule_timezone: str | None = None,
) -> Campaign:
    """Write the intent to send at ``send_at`` (now when None); the scheduler does the rest.
    ``schedule_timezone`` is the zone the time was given in, kept to show it back so.

    Refused while the two-person rule (:func:`needs_approval`) asks for an approval that has
    not been given; ``approval_threshold`` defaults to ``RISKCAST_APPROVAL_THRESHOLD``.
    """
    campaign = get(session, campaign_id)
    rule = approval_rule(session, campaign, approval_threshold) if campaign.state == S.DRAFT else ""
    if rule:
        raise IllegalState(
            f"campaign {campaign_id} needs approval by a second official or admin before it "
            f"is launched (two-person rule: {rule}); another official approves it with: "
            f"riskcast campaigns approve {campaign_id}"
        )
    now = utcnow()
    when = send_at or now
    values = {"send_at": when, "schedule_timezone": schedule_timezone}
    if not move(session, campaign_id, S.SCHEDULED, only_from=[S.DRAFT], values=values):
        campaign = get(session, campaign_id)
        raise IllegalState(
            f"campaign {campaign_id} is {campaign.state}; only a draft can be launched"
        )
    if when <= now:
        announce_due(session)
    return get(session, campaign_id)


# Schedulers LISTEN on this channel (workers.wakeup): a launch is claimed at once, not at
# the next tick.
DUE_CHANNEL = "riskcast_due"


def announce_due(session: Session) -> None:
    """Tell the schedulers a campaign is due, when this transaction commits (PostgreSQL's
    NOTIFY is transactional; other databases wait for the next tick)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {DUE_CHANNEL}"))


# -- the two-person rule --------------------------------------------------------------


def count_recipients(session: Session, campaign: Campaign) -> int:
    """How many people fan-out would pick now: its own audience query, counted."""
    community_ids = communities.expand_ids(
        session, campaign.audience["communities"], descendants=campaign.audience["descendants"]
    )
    if not community_ids:
        return 0
    audience = (
        eligible_contacts(campaign, community_ids, 0, 1).limit(None).order_by(None).subquery()
    )
    return session.scalar(select(func.count()).select_from(audience)) or 0


def _threshold(threshold: int | None) -> int:
    return get_settings().approval_threshold if threshold is None else threshold


def breach(campaign: Campaign, count: int, threshold: int | None = None) -> str:
    """Why ``count`` recipients need a (new) second person for ``campaign`` ("" when they
    do not). An approval covers at most the recipients counted when it was given."""
    if campaign.approved_by is not None:
        approved = campaign.approved_recipients
        if approved is not None and count > approved:
            return f"{count} recipients is more than the {approved} approved"
        return ""
    if campaign.priority == Priority.URGENT:
        return "every urgent campaign"
    limit = _threshold(threshold)
    if count > limit:
        return f"{count} recipients is more than {limit}"
    return ""


def approval_rule(session: Session, campaign: Campaign, threshold: int | None = None) -> str:
    """Why ``campaign`` needs a (new) second person now ("" when it does not)."""
    if campaign.approved_by is None and campaign.priority == Priority.URGENT:
        return "every urgent campaign"
    return breach(campaign, count_recipients(session, campaign), threshold)


def needs_approval(session: Session, campaign: Campaign, *, threshold: int | None = None) -> bool:
    """True for an urgent campaign or one above the approval threshold of recipients (or,
    once approved, above the recipients the approval covered)."""
    return bool(approval_rule(session, campaign, threshold))


# What a campaign stopped at fan-out for want of an approval says (an approval, then a
# resume, sends it on).
AWAITING_APPROVAL = "waiting for a new approval"


def check_fanout(session: Session, campaign: Campaign, upcoming: int) -> str:
    """Fan-out's own check of the two-person rule, with the threshold of the process that
    fans out (server settings, not the caller's), before ``upcoming`` more deliveries are
    made: why it must stop ("" to go on)."""
    if campaign.fanout_cursor == 0 and campaign.recipients == 0:
        count = count_recipients(session, campaign)
    else:
        count = campaign.recipients + upcoming
    return breach(campaign, count)


def approve(session: Session, campaign_id: int, user_id: int) -> Campaign:
    """Record the second person's approval: an active official or admin who did not create
    the campaign, of a draft (the launch that follows is the creator's) or of a campaign
    fan-out stopped because its audience grew past its approval. The approval covers the
    recipients counted now, no more."""
    campaign = get(session, campaign_id)
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise NotFound(f"user {user_id} does not exist or is not active")
    if user.role not in (Role.OFFICIAL, Role.ADMIN):
        raise IllegalState(f"{user.name} is {user.role}; only an official or admin approves")
    if campaign.created_by == user.id:
        raise IllegalState(
            f"campaign {campaign_id} was created by {user.name}; a second person must approve it"
        )
    count = count_recipients(session, campaign)
    stopped_for_approval = campaign.state == S.STOPPED and (campaign.error or "").startswith(
        AWAITING_APPROVAL
    )
    if campaign.state != S.DRAFT and not stopped_for_approval:
        raise IllegalState(f"campaign {campaign_id} is {campaign.state}; only a draft is approved")
    if campaign.approved_by is not None and not breach(campaign, count):
        raise IllegalState(f"campaign {campaign_id} is already approved")
    campaign.approved_by = user.id
    campaign.approved_recipients = count
    if stopped_for_approval:
        campaign.error = None
    session.flush()
    return campaign


def pause(session: Session, campaign_id: int) -> Campaign:
    campaign = get(session, campaign_id)
    if not move(
        session,
        campaign_id,
        S.PAUSED,
        only_from=[campaign.state],
        values={"resume_state": campaign.state},
    ):
        raise IllegalState(f"campaign {campaign_id} is {campaign.state}; it cannot be paused")
    return get(session, campaign_id)


def resume(session: Session, campaign_id: int) -> Campaign:
    campaign = get(session, campaign_id)
    back = CampaignState(campaign.resume_state or S.SENDING)
    if campaign.state not in (S.PAUSED, S.STOPPED) or not move(
        session,
        campaign_id,
        back,
        only_from=[campaign.state],
        values={"resume_state": None, "error": None},
    ):
        raise IllegalState(
            f"campaign {campaign_id} is {campaign.state}; only paused or stopped campaigns resume"
        )
    return get(session, campaign_id)


def cancel(session: Session, campaign_id: int) -> Campaign:
    """Cancel: nothing not yet handed to the provider will be sent."""
    campaign = get(session, campaign_id)
    if not move(session, campaign_id, S.CANCELLED, values={"completed_at": utcnow()}):
        raise IllegalState(f"campaign {campaign_id} is {campaign.state}; it cannot be cancelled")
    deliveries.move(
        session,
        Delivery.campaign_id == campaign_id,
        DeliveryState.SKIPPED,
        only_from=[DeliveryState.PENDING, DeliveryState.QUEUED],
        values={"reason": SkipReason.CANCELLED.value, "finished_at": utcnow()},
    )
    return get(session, campaign_id)


def retry_failed(session: Session, campaign_id: int) -> int:
    """Queue again the failures a retry may overcome (never permanent provider refusals);
    returns how many. A completed campaign goes back to sending."""
    campaign = get(session, campaign_id)
    if campaign.state in (S.CANCELLED, S.DRAFT, S.SCHEDULED):
        raise IllegalState(f"campaign {campaign_id} is {campaign.state}; nothing to retry")
    moved = deliveries.move(
        session,
        and_(
            Delivery.campaign_id == campaign_id,
            Delivery.reason.in_(RETRYABLE_FAILURES),
            # A WhatsApp failure an SMS already replaced is not sent again.
            ~deliveries.has_fallback(),
        ),
        DeliveryState.QUEUED,
        only_from=[DeliveryState.FAILED],
        values={
            "batch": None,
            "next_attempt_at": None,
            "attempts": 0,
            "reason": None,
            "finished_at": None,
        },
    )
    if moved:
        move(
            session, campaign_id, S.SENDING, only_from=[S.COMPLETED], values={"completed_at": None}
        )
    return moved


def stop(session: Session, campaign_id: int, *, error: str) -> bool:
    """Stop an active campaign after a configuration error; an operator resumes it."""
    campaign = get(session, campaign_id)
    return move(
        session,
        campaign_id,
        S.STOPPED,
        only_from=ACTIVE,
        values={"resume_state": campaign.state, "error": error},
    )


def complete_if_done(session: Session, campaign_id: int) -> bool:
    """Mark a sending campaign completed once no delivery is pending, queued or sending."""
    unfinished = exists().where(
        Delivery.campaign_id == campaign_id, Delivery.state.in_([s.value for s in UNFINISHED])
    )
    done: ColumnElement[bool] = ~unfinished
    stmt = (
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.state == S.SENDING.value, done)
        .values(state=S.COMPLETED.value, completed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
    return result.rowcount == 1


def status(session: Session, campaign_id: int) -> dict[str, Any]:
    campaign = get(session, campaign_id)
    counts = deliveries.counts_by_state(session, campaign_id)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "state": campaign.state,
        "priority": campaign.priority,
        "channel": campaign.channel,
        "recipients": campaign.recipients,
        "send_at": campaign.send_at.isoformat() if campaign.send_at else None,
        "schedule_timezone": campaign.schedule_timezone,
        "send_at_local": local_send_at(campaign),
        "counts": counts,
        "error": campaign.error,
    }


def local_send_at(campaign: Campaign) -> str | None:
    """When the campaign is (or was) to be sent, as read in the zone it was scheduled in:
    ``2027-01-05 09:00 Asia/Bangkok`` (UTC when no zone was named)."""
    if campaign.send_at is None:
        return None
    zone = campaign.schedule_timezone or "UTC"
    return f"{campaign.send_at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"


def list_campaigns(session: Session, limit: int = 100) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(limit)))


@dataclass(frozen=True)
class Summary:
    """A campaign with what people read beside it: its template, who created and approved
    it, and its deliveries by state."""

    campaign: Campaign
    template: str
    template_version: int
    created_by: str | None
    approved_by: str | None
    counts: dict[str, int]


def summaries(session: Session, rows: list[Campaign]) -> list[Summary]:
    """One :class:`Summary` per campaign, in order, in four queries whatever their number."""
    names = auth.names(session, {c.created_by for c in rows} | {c.approved_by for c in rows})
    counts = deliveries.counts_for(session, [c.id for c in rows])
    versions = {
        version_id: (key, number)
        for version_id, key, number in session.execute(
            select(TemplateVersion.id, Template.key, TemplateVersion.version)
            .join(Template, Template.id == TemplateVersion.template_id)
            .where(TemplateVersion.id.in_({c.template_version_id for c in rows}))
        ).all()
    }
    return [
        Summary(
            campaign=c,
            template=versions.get(c.template_version_id, ("", 0))[0],
            template_version=versions.get(c.template_version_id, ("", 0))[1],
            created_by=names.get(c.created_by) if c.created_by else None,
            approved_by=names.get(c.approved_by) if c.approved_by else None,
            counts=counts[c.id],
        )
        for c in rows
    ]
