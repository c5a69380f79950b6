"""Fan-out: turn a campaign's audience into delivery rows, one page at a time.

Contacts are streamed in id order (keyset pagination) so memory does not grow with the
audience; each page is rendered (once per distinct language and variables), inserted in
bulk with the unique (campaign, contact) key, and grouped into send batches. The cursor is
saved in the same transaction as the rows, so a fan-out that dies resumes where it was and
re-running a page creates nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broadcaster import campaigns, communities
from broadcaster.db import utcnow
from broadcaster.models import (
    Campaign,
    CampaignMessage,
    CampaignState,
    Channel,
    Community,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryState,
    Membership,
    TemplateVersion,
)
from broadcaster.quiet import in_quiet_hours
from messages import TemplateError, choose_language, render, segments, variables_used


@dataclass
class Page:
    created: int = 0
    batches: list[str] = field(default_factory=list)
    done: bool = False
    priority: str = "bulk"


def new_batch_token() -> str:
    return uuid.uuid4().hex


def _insert(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def eligible_contacts(
    campaign: Campaign, community_ids: list[int], after: int, limit: int
) -> Select[*tuple[Any, ...]]:
    """Active members of the audience, in id order after ``after``, with their community."""
    audience = campaign.audience
    first_community = (
        select(func.min(Membership.community_id))
        .where(Membership.contact_id == Contact.id, Membership.community_id.in_(community_ids))
        .correlate(Contact)
        .scalar_subquery()
    )
    stmt: Select[*tuple[Any, ...]] = (
        select(
            Contact.id,
            Contact.name,
            Contact.language,
            Contact.timezone,
            Contact.channel,
            Community.name.label("community_name"),
            Community.language.label("community_language"),
            Community.timezone.label("community_timezone"),
        )
        .join(Community, Community.id == first_community)
        .where(Contact.id > after, Contact.status == ContactStatus.ACTIVE.value)
        .order_by(Contact.id)
        .limit(limit)
    )
    if audience.get("languages"):
        stmt = stmt.where(Contact.language.in_(audience["languages"]))
    if audience.get("countries"):
        stmt = stmt.where(Contact.country.in_(audience["countries"]))
    return stmt


def delivery_channel(campaign_channel: str, contact_channel: str | None) -> str:
    """The channel a contact is reached on first: the campaign's, or the contact's own."""
    if campaign_channel == Channel.PREFERRED:
        return Channel.WHATSAPP.value if contact_channel == Channel.WHATSAPP else Channel.SMS.value
    return campaign_channel


def _digest(language: str, variables: dict[str, str]) -> str:
    raw = json.dumps([language, sorted(variables.items())], ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


Wanted = dict[str, tuple[str, dict[str, str]]]  # digest -> (language, variables)


def _plan(
    campaign: Campaign, version: TemplateVersion, rows: Sequence[Row[Any]], now: datetime
) -> tuple[list[tuple[int, str, bool]], Wanted]:
    """Per contact: which body (by digest) and whether quiet hours hold it back now."""
    bodies = version.bodies()
    used = {lang: variables_used(body) for lang, body in bodies.items()}
    wanted: Wanted = {}
    planned = []
    for row in rows:
        language, _fell_back = choose_language(
            bodies, row.language, row.community_language, version.default_language
        )
        values = {k: v for k, v in campaign.variables.items() if k in used[language]}
        if "name" in used[language]:
            values["name"] = row.name or ""
        if "community" in used[language]:
            values["community"] = row.community_name
        digest = _digest(language, values)
        wanted.setdefault(digest, (language, values))
        quiet = campaign.quiet_start is not None and in_quiet_hours(
            now, row.timezone or row.community_timezone, campaign.quiet_start, campaign.quiet_end
        )
        planned.append((row.id, digest, quiet))
    return planned, wanted


def _message_ids(
    session: Session, campaign_id: int, bodies: dict[str, str], wanted: Wanted
) -> dict[str, int]:
    """Ids of the rendered bodies for ``wanted``, rendering and storing the new ones once."""
    ids = dict(
        session.execute(
            select(CampaignMessage.digest, CampaignMessage.id).where(
                CampaignMessage.campaign_id == campaign_id,
                CampaignMessage.digest.in_(list(wanted)),
            )
        ).all()
    )
    new = []
    for digest, (language, values) in wanted.items():
        if digest in ids:
            continue
        text = render(bodies[language], values)
        seg = segments(text)
        new.append(
            {
                "campaign_id": campaign_id,
                "digest": digest,
                "language": language,
                "body": text,
                "encoding": seg.encoding,
                "parts": seg.parts,
            }
        )
    if new:
        inserted = session.execute(
            _insert(session, CampaignMessage)
            .values(new)
            .on_conflict_do_nothing()
            .returning(CampaignMessage.digest, CampaignMessage.id)
        )
        ids.update(dict(inserted.all()))
    if len(ids) < len(wanted):
        # Another fan-out of this campaign stored some at the same moment.
        ids.update(
            session.execute(
                select(CampaignMessage.digest, CampaignMessage.id).where(
                    CampaignMessage.campaign_id == campaign_id,
                    CampaignMessage.digest.in_(list(wanted)),
                )
            ).all()
        )
    return ids


def fanout_page(session: Session, campaign_id: int, *, page_size: int, batch_size: int) -> Page:
    """Create the deliveries for the next page of the audience. The caller commits."""
    campaign = session.scalar(
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if campaign is None or campaign.state != CampaignState.FANNING_OUT:
        return Page(done=True)
    version = session.get_one(TemplateVersion, campaign.template_version_id)
    bodies = version.bodies()
    community_ids = communities.expand_ids(
        session, campaign.audience["communities"], descendants=campaign.audience["descendants"]
    )
    rows = session.execute(
        eligible_contacts(campaign, community_ids, campaign.fanout_cursor, page_size)
    ).all()
    page = Page(priority=campaign.priority)
    if not rows:
        campaigns.move(
            session, campaign.id, CampaignState.SENDING, only_from=[CampaignState.FANNING_OUT]
        )
        campaigns.complete_if_done(session, campaign.id)
        page.done = True
        return page

    now = utcnow()
    planned, wanted = _plan(campaign, version, rows, now)
    try:
        message_ids = _message_ids(session, campaign.id, bodies, wanted)
    except TemplateError as exc:
        # Never an empty or broken message: stop and say why; an operator decides.
        campaigns.stop(session, campaign.id, error=f"a message could not be rendered: {exc}")
        page.done = True
        return page

    values_rows = []
    token = new_batch_token()
    in_batch = 0
    for (contact_id, digest, quiet), row in zip(planned, rows, strict=True):
        if quiet:
            state, batch, queued_at = DeliveryState.PENDING.value, None, None
        else:
            if in_batch == batch_size:
                token, in_batch = new_batch_token(), 0
            state, batch, queued_at = DeliveryState.QUEUED.value, token, now
            in_batch += 1
        values_rows.append(
            {
                "campaign_id": campaign.id,
                "contact_id": contact_id,
                "message_id": message_ids[digest],
                "channel": delivery_channel(campaign.channel, row.channel),
                "state": state,
                "batch": batch,
                "queued_at": queued_at,
                "created_at": now,
                "updated_at": now,
            }
        )
    created = session.execute(
        _insert(session, Delivery)
        .values(values_rows)
        .on_conflict_do_nothing(
            index_elements=["campaign_id", "contact_id"], index_where=Delivery.fallback_of.is_(None)
        )
        .returning(Delivery.batch)
    ).all()
    page.created = len(created)
    page.batches = sorted({b for (b,) in created if b is not None})
    campaign.fanout_cursor = rows[-1].id
    campaign.recipients += page.created
    session.flush()
    if len(rows) < page_size:
        campaigns.move(
            session, campaign.id, CampaignState.SENDING, only_from=[CampaignState.FANNING_OUT]
        )
        page.done = True
    return page
