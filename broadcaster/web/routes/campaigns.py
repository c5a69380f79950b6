"""/api/v1/campaigns: create, preview, approve, schedule or launch, and every operator move
(pause, resume, cancel, retry-failed), the status, the deliveries by state, and the report
(JSON, CSV, XLSX).

Officials compose, schedule and approve; operators pause, resume, cancel and retry; admins
do both. Officials see their own campaigns and every draft (drafts are what a second
official approves). Each move writes an audit row in the same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from broadcaster.campaigns import actions, preview
from broadcaster.campaigns import report as reports
from broadcaster.campaigns import service as campaigns
from broadcaster.db import utcnow
from broadcaster.deliveries import service as deliveries
from broadcaster.models import Campaign
from broadcaster.monitoring import stats
from broadcaster.users import auth
from broadcaster.web.common import ERRORS, MAX_ID, Id, phone_for
from broadcaster.web.deps import Actor, Anyone, Db, Official, Operator, Rt

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"], responses=ERRORS)

StateName = Literal[
    "pending", "queued", "sending", "sent", "delivered", "undelivered", "failed", "skipped"
]


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    template: str = Field(min_length=1, max_length=100)
    communities: list[str] = Field(min_length=1, max_length=100)
    descendants: bool = True
    languages: list[str] = Field(default_factory=list, max_length=50)
    countries: list[str] = Field(default_factory=list, max_length=50)
    priority: Literal["urgent", "bulk"] = "bulk"
    channel: Literal["sms", "whatsapp", "preferred"] = "sms"
    variables: dict[str, str] = Field(default_factory=dict)
    quiet_hours: tuple[int, int] | None = Field(
        default=None, description="[start, end] local hours of each recipient: no sending then"
    )
    valid_hours: float | None = Field(
        default=None, gt=0, le=24 * 30, description="hours the message stays worth sending"
    )

    def fields(self) -> dict[str, Any]:
        """The campaign to create, as :func:`broadcaster.campaigns.actions.create` takes it."""
        return {
            "name": self.name,
            "template_key": self.template,
            "community_slugs": self.communities,
            "descendants": self.descendants,
            "languages": self.languages,
            "countries": self.countries,
            "priority": self.priority,
            "channel": self.channel,
            "variables": self.variables,
            "quiet_hours": self.quiet_hours,
            "valid_until": (
                utcnow() + timedelta(hours=self.valid_hours) if self.valid_hours else None
            ),
        }


class ScheduleIn(BaseModel):
    send_at: datetime | None = Field(
        default=None,
        description="when to send (ISO 8601), with an offset unless `timezone` is given; "
        "now when absent",
    )
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="the IANA zone `send_at` is a local time in (e.g. Asia/Bangkok); the "
        "campaign shows its time back in it",
    )


class Progress(BaseModel):
    done: int
    total: int
    percent: int


class CampaignOut(BaseModel):
    id: int
    name: str
    state: str
    priority: str
    channel: str
    template: str
    template_version: int
    recipients: int
    send_at: datetime | None
    schedule_timezone: str | None = Field(description="the zone it was scheduled in, if named")
    send_at_local: str | None = Field(
        description="send_at in that zone (UTC if none), e.g. '2027-01-05 09:00 Asia/Bangkok'"
    )
    created_at: datetime
    completed_at: datetime | None
    created_by: str | None
    approved_by: str | None
    error: str | None
    counts: dict[str, int]
    progress: Progress


class RetryOut(BaseModel):
    campaign: CampaignOut
    requeued: int


class DeliveryOut(BaseModel):
    id: int
    phone: str | None
    state: str
    reason: str | None
    error_code: int | None
    error_message: str | None
    attempts: int
    updated_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")


class ApprovalOut(BaseModel):
    needs_approval: bool
    rule: str
    recipients: int
    approved_by: str | None


def campaign_outs(session: Session, rows: list[Campaign]) -> list[CampaignOut]:
    return [
        CampaignOut(
            id=c.id,
            name=c.name,
            state=c.state,
            priority=c.priority,
            channel=c.channel,
            template=summary.template,
            template_version=summary.template_version,
            recipients=c.recipients,
            send_at=c.send_at,
            schedule_timezone=c.schedule_timezone,
            send_at_local=campaigns.local_send_at(c),
            created_at=c.created_at,
            completed_at=c.completed_at,
            created_by=summary.created_by,
            approved_by=summary.approved_by,
            error=c.error,
            counts=summary.counts,
            progress=Progress(**deliveries.progress(summary.counts)),
        )
        for summary in campaigns.summaries(session, rows)
        for c in (summary.campaign,)
    ]


def campaign_out(session: Session, campaign: Campaign) -> CampaignOut:
    return campaign_outs(session, [campaign])[0]


def deliveries_page(
    session: Session,
    caller: Actor,
    campaign_id: int,
    *,
    state: str | None,
    after: int,
    limit: int,
) -> DeliveryPage:
    rows = deliveries.listing(session, campaign_id, state=state, after=after, limit=limit + 1)
    items = [
        DeliveryOut(
            id=d.id,
            phone=phone_for(caller, phone),
            state=d.state,
            reason=d.reason,
            error_code=d.error_code,
            error_message=d.error_message,
            attempts=d.attempts,
            updated_at=d.updated_at,
        )
        for d, phone in rows[:limit]
    ]
    return DeliveryPage(items=items, next_after=items[-1].id if len(rows) > limit else None)


# -- routes ---------------------------------------------------------------------------


@router.get("")
def list_campaigns(
    caller: Anyone, session: Db, limit: int = Query(default=100, ge=1, le=500)
) -> list[CampaignOut]:
    return campaign_outs(session, actions.list_visible(session, caller, limit))


@router.get("/awaiting-approval")
def awaiting_approval(
    caller: Official, session: Db, limit: int = Query(default=50, ge=1, le=200)
) -> list[CampaignOut]:
    """Campaigns the two-person rule holds back that you may approve: drafts (and campaigns
    stopped because their audience grew) in your areas and organisation, not your own."""
    return campaign_outs(session, actions.awaiting_my_approval(session, caller, limit))


@router.post("", status_code=201)
def create_campaign(body: CampaignIn, caller: Official, session: Db) -> CampaignOut:
    return campaign_out(session, actions.create(session, caller, **body.fields()))


@router.get("/{campaign_id}")
def campaign_status(campaign_id: Id, caller: Anyone, session: Db) -> CampaignOut:
    return campaign_out(session, actions.get_visible(session, caller, campaign_id))


@router.get("/{campaign_id}/preview")
def preview_campaign(campaign_id: Id, caller: Anyone, session: Db, rt: Rt) -> dict[str, Any]:
    """Per language: text, encoding, segments, recipients, cost (in ``currency``), the
    hotline each recipient country is told; wording warnings; and for a draft, whether
    launching it needs a second official's approval (``approval``: why)."""
    actions.get_visible(session, caller, campaign_id)
    return preview.preview_campaign(
        session,
        campaign_id,
        prices=rt.settings.segment_prices,
        currency=rt.settings.currency,
        hotlines=rt.settings.hotlines,
        approval_threshold=rt.settings.approval_threshold,
    ).to_dict()


@router.get("/{campaign_id}/approval")
def approval(campaign_id: Id, caller: Anyone, session: Db, rt: Rt) -> ApprovalOut:
    """Whether the two-person rule applies to this campaign, and who approved it."""
    campaign = actions.get_visible(session, caller, campaign_id)
    rule = campaigns.approval_rule(session, campaign, rt.settings.approval_threshold)
    return ApprovalOut(
        needs_approval=bool(rule),
        rule=rule,
        recipients=campaigns.count_recipients(session, campaign),
        approved_by=auth.names(session, [campaign.approved_by]).get(campaign.approved_by or 0),
    )


@router.post("/{campaign_id}/approve")
def approve_campaign(campaign_id: Id, caller: Official, session: Db) -> CampaignOut:
    """Approve a draft as the second person (not its creator)."""
    return campaign_out(session, actions.approve(session, caller, campaign_id))


@router.post("/{campaign_id}/schedule")
def schedule_campaign(
    campaign_id: Id, body: ScheduleIn, caller: Official, session: Db, rt: Rt
) -> CampaignOut:
    campaign = actions.schedule(
        session,
        caller,
        campaign_id,
        body.send_at,
        rt.settings.approval_threshold,
        timezone=body.timezone,
    )
    return campaign_out(session, campaign)


@router.post("/{campaign_id}/launch")
def launch_campaign(campaign_id: Id, caller: Official, session: Db, rt: Rt) -> CampaignOut:
    """Schedule for now: the scheduler picks it up within seconds."""
    campaign = actions.schedule(session, caller, campaign_id, None, rt.settings.approval_threshold)
    return campaign_out(session, campaign)


@router.post("/{campaign_id}/pause")
def pause_campaign(campaign_id: Id, caller: Anyone, session: Db) -> CampaignOut:
    return campaign_out(session, actions.operate(session, caller, campaign_id, "pause"))


@router.post("/{campaign_id}/resume")
def resume_campaign(campaign_id: Id, caller: Anyone, session: Db) -> CampaignOut:
    return campaign_out(session, actions.operate(session, caller, campaign_id, "resume"))


@router.post("/{campaign_id}/cancel")
def cancel_campaign(campaign_id: Id, caller: Anyone, session: Db) -> CampaignOut:
    return campaign_out(session, actions.operate(session, caller, campaign_id, "cancel"))


@router.post("/{campaign_id}/retry-failed")
def retry_failed(campaign_id: Id, caller: Operator, session: Db) -> RetryOut:
    """Queue again the failures a retry may overcome (never permanent refusals)."""
    count = actions.retry(session, caller, campaign_id)
    return RetryOut(
        campaign=campaign_out(session, campaigns.get(session, campaign_id)), requeued=count
    )


@router.get("/{campaign_id}/deliveries")
def list_deliveries(
    campaign_id: Id,
    caller: Anyone,
    session: Db,
    state: StateName | None = None,
    after: int = Query(default=0, ge=0, le=MAX_ID, description="the last id of the previous page"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> DeliveryPage:
    actions.get_visible(session, caller, campaign_id)
    return deliveries_page(session, caller, campaign_id, state=state, after=after, limit=limit)


@router.get("/{campaign_id}/failures")
def campaign_failures(campaign_id: Id, caller: Anyone, session: Db) -> list[dict[str, Any]]:
    """Failed and undelivered deliveries grouped by provider error code, with its message."""
    actions.get_visible(session, caller, campaign_id)
    return [vars(f) for f in stats.failures(session, campaign_id)]


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def report_file(report: reports.Report, kind: str) -> Response:
    """The report as a download: ``csv`` (UTF-8) or ``xlsx``."""
    name = f"campaign-{report.campaign_id}-report.{kind}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if kind == "xlsx":
        return Response(reports.to_xlsx(report), media_type=XLSX, headers=disposition)
    return Response(
        reports.to_csv(report), media_type="text/csv; charset=utf-8", headers=disposition
    )


@router.get("/{campaign_id}/report")
def campaign_report(campaign_id: Id, caller: Anyone, session: Db) -> dict[str, Any]:
    """Deliveries by outcome (delivered, sent, pending, failed, undelivered, opted out,
    skipped), in total and by area (the audience's community tree), language, country and
    channel."""
    return actions.report(session, caller, campaign_id).to_dict()


@router.get(
    "/{campaign_id}/report.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def campaign_report_csv(campaign_id: Id, caller: Anyone, session: Db) -> Response:
    """The report as one CSV table, every cell safe to open in a spreadsheet."""
    return report_file(actions.report(session, caller, campaign_id, export="csv"), "csv")


@router.get(
    "/{campaign_id}/report.xlsx",
    response_class=Response,
    responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}}},
)
def campaign_report_xlsx(campaign_id: Id, caller: Anyone, session: Db) -> Response:
    """The report as a workbook: a summary and one sheet per breakdown."""
    return report_file(actions.report(session, caller, campaign_id, export="xlsx"), "xlsx")
