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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, String, any_, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broadcaster.campaigns import service as campaigns
from broadcaster.campaigns.audience import eligible_contacts
from broadcaster.campaigns.quiet import in_quiet_hours
from broadcaster.communities import service as communities
from broadcaster.config import get_settings
from broadcaster.db import utcnow
from broadcaster.models import (
    Campaign,
    CampaignMessage,
    CampaignState,
    Channel,
    Contact,
    Delivery,
    DeliveryState,
    TemplateVersion,
)
from broadcaster.orm import table_of
from messages import TemplateError, choose_language, render, segments, variables_used


@dataclass
class Page:
    created: int = 0
    batches: list[str] = field(default_factory=list)
    done: bool = False
    priority: str = "bulk"


def new_batch_token() -> str:
    return uuid.uuid4().hex


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# On PostgreSQL a page is written by one statement per table with every column bound as one
# array: planning and sending stay the same size whatever the page size. The arrays are
# bound as array literals built here (joins run in C), which costs a small part of what
# adapting thousands of list items one by one does.
_TEXTS = postgresql.ARRAY(String)


def _int_array(values: Sequence[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def _text_array(values: Sequence[str | None]) -> str:
    """Each value double-quoted, with ``\\`` and ``"`` escaped; None is NULL."""
    return (
        "{"
        + ",".join(
            "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
        + "}"
    )


_INSERT_MESSAGES = text(
    "INSERT INTO campaign_message (campaign_id, digest, language, body, encoding, parts)"
    " SELECT :campaign, m.* FROM unnest(CAST(:digests AS text[]), CAST(:languages AS text[]),"
    " CAST(:bodies AS text[]), CAST(:encodings AS text[]), CAST(:parts AS integer[])) AS m"
    " ON CONFLICT (campaign_id, digest) DO NOTHING RETURNING digest, id"
)
_INSERT_DELIVERIES = text(
    "WITH created AS ("
    " INSERT INTO delivery (campaign_id, contact_id, message_id, channel, state, batch,"
    " attempts, queued_at, created_at, updated_at)"
    " SELECT :campaign, d.contact_id, d.message_id, d.channel, d.state, d.batch, 0,"
    " CASE WHEN d.state = :queued THEN CAST(:now AS timestamptz) END, :now, :now"
    " FROM unnest(CAST(:contacts AS bigint[]), CAST(:messages AS bigint[]),"
    " CAST(:channels AS text[]), CAST(:states AS text[]), CAST(:batches AS text[]))"
    " AS d(contact_id, message_id, channel, state, batch)"
    " ON CONFLICT (campaign_id, contact_id) WHERE fallback_of IS NULL DO NOTHING"
    " RETURNING batch)"
    " SELECT batch, count(*) FROM created GROUP BY batch"
)


def delivery_channel(campaign_channel: str, contact_channel: str | None) -> str:
    """The channel a contact is reached on first: the campaign's, or the contact's own."""
    if campaign_channel == Channel.PREFERRED:
        return Channel.WHATSAPP.value if contact_channel == Channel.WHATSAPP else Channel.SMS.value
    return campaign_channel


_JSON = json.JSONEncoder(ensure_ascii=False)


def _digest(language: str, variables: dict[str, str]) -> str:
    raw = _JSON.encode([language, sorted(variables.items())])
    return hashlib.sha256(raw.encode()).hexdigest()


Wanted = dict[str, tuple[str, dict[str, str]]]  # digest -> (language, variables)


class _Digests:
    """:func:`_digest` for one language whose only per-contact variables are ``per_contact``:
    the JSON is the same but for those values, so it is built once with placeholders and
    each contact's values are spliced in (same digests, a fraction of the work)."""

    def __init__(self, language: str, fixed: dict[str, str], per_contact: list[str]) -> None:
        self.language = language
        self.fixed = fixed
        marks = {name: f"\x00{name}\x00" for name in per_contact}
        self.pieces: list[str] | None = None
        if not any("\x00" in v for v in fixed.values()):
            raw = _JSON.encode([language, sorted({**fixed, **marks}.items())])
            order = sorted(per_contact)
            pieces = [raw]
            for name in order:
                head, _, tail = pieces.pop().partition(_JSON.encode(marks[name]))
                pieces += [head, tail]
            self.pieces = pieces
            self.order = order

    def digest(self, values: dict[str, str]) -> str:
        if self.pieces is None:
            return _digest(self.language, values)
        parts = [self.pieces[0]]
        for name, piece in zip(self.order, self.pieces[1:], strict=True):
            parts.append(_JSON.encode(values[name]))
            parts.append(piece)
        return hashlib.sha256("".join(parts).encode()).hexdigest()


def _plan(
    campaign: Campaign,
    version: TemplateVersion,
    rows: Sequence[Row[Any]],
    now: datetime,
    hotlines: Mapping[str, str] | None = None,
) -> tuple[list[tuple[int, str, bool]], Wanted]:
    """Per contact: which body (by digest) and whether quiet hours hold it back now.

    What is the same for many contacts is worked out once per page: the language for each
    (contact language, community language) pair, the campaign's own variables per
    language, and quiet hours per time zone. ``hotlines`` (country -> number, see
    :func:`broadcaster.campaigns.service.local_hotlines`) gives the contacts of those
    countries, each row's last column, their own ``hotline``.
    """
    hotlines = hotlines or {}
    bodies = version.bodies()
    used = {lang: variables_used(body) for lang, body in bodies.items()}
    per_contact = ("community", "name", "hotline") if hotlines else ("community", "name")
    digests = {
        lang: _Digests(
            lang,
            {k: v for k, v in campaign.variables.items() if k in names},
            [name for name in per_contact if name in names],
        )
        for lang, names in used.items()
    }
    quiet_start, quiet_end = campaign.quiet_start, campaign.quiet_end
    languages: dict[tuple[str | None, str | None], str] = {}
    quiet_in: dict[str, bool] = {}
    wanted: Wanted = {}
    planned = []
    for row in rows:
        contact_id, name, contact_language, timezone, _channel = tuple(row)[:5]
        community_name, community_language, community_timezone = tuple(row)[5:8]
        language = languages.get((contact_language, community_language))
        if language is None:
            language, _fell_back = choose_language(
                bodies, contact_language, community_language, version.default_language
            )
            languages[(contact_language, community_language)] = language
        names = used[language]
        maker = digests[language]
        values = maker.fixed
        local = bool(hotlines) and "hotline" in names
        if "name" in names or "community" in names or local:
            values = dict(values)
            if "name" in names:
                values["name"] = name or ""
            if "community" in names:
                values["community"] = community_name
            if local:
                values["hotline"] = hotlines.get(row[-1], values["hotline"])
        digest = maker.digest(values)
        if digest not in wanted:
            wanted[digest] = (language, values)
        quiet = False
        if quiet_start is not None:
            zone = timezone or community_timezone
            known = quiet_in.get(zone)
            if known is None:
                known = quiet_in[zone] = in_quiet_hours(now, zone, quiet_start, quiet_end)
            quiet = known
        planned.append((contact_id, digest, quiet))
    return planned, wanted


def _stored_ids(session: Session, campaign_id: int, digests: list[str]) -> dict[str, int]:
    return dict(
        session.execute(
            select(CampaignMessage.digest, CampaignMessage.id).where(
                CampaignMessage.campaign_id == campaign_id,
                CampaignMessage.digest == any_(bindparam("digests", digests, type_=_TEXTS))
                if _is_postgresql(session)
                else CampaignMessage.digest.in_(digests),
            )
        ).all()
    )


Rendered = list[tuple[str, str, str, str, int]]  # digest, language, body, encoding, parts


def _render(bodies: dict[str, str], wanted: Wanted) -> Rendered:
    """Each wanted body rendered once, with its SMS encoding and parts."""
    rendered: Rendered = []
    for digest, (language, values) in wanted.items():
        body = render(bodies[language], values)
        seg = segments(body)
        rendered.append((digest, language, body, seg.encoding, seg.parts))
    return rendered


def _message_ids(session: Session, campaign_id: int, rendered: Rendered) -> dict[str, int]:
    """Ids of the rendered bodies: stored now, or looked up when stored already (a re-run
    page)."""
    ids = _store_messages(session, campaign_id, rendered)
    if len(ids) < len(rendered):
        ids.update(_stored_ids(session, campaign_id, [r[0] for r in rendered if r[0] not in ids]))
    return ids


def _store_messages(
    session: Session, campaign_id: int, new: list[tuple[str, str, str, str, int]]
) -> dict[str, int]:
    """Insert rendered bodies (those not stored yet); digest -> id of those inserted."""
    if _is_postgresql(session):
        digests, languages, texts, encodings, parts = (list(c) for c in zip(*new, strict=True))
        rows = session.execute(
            _INSERT_MESSAGES,
            {
                "campaign": campaign_id,
                "digests": _text_array(digests),
                "languages": _text_array(languages),
                "bodies": _text_array(texts),
                "encodings": _text_array(encodings),
                "parts": _int_array(parts),
            },
        )
        return dict(rows.all())
    keys = ("digest", "language", "body", "encoding", "parts")
    inserted = session.connection().execute(
        sqlite.insert(table_of(CampaignMessage))
        .on_conflict_do_nothing()
        .returning(CampaignMessage.digest, CampaignMessage.id),
        [{"campaign_id": campaign_id, **dict(zip(keys, row, strict=True))} for row in new],
    )
    return dict(inserted.all())


@dataclass
class _Deliveries:
    """One page of delivery rows, column by column."""

    contact_ids: list[int] = field(default_factory=list)
    message_ids: list[int] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    batches: list[str | None] = field(default_factory=list)


def _store_deliveries(
    session: Session, campaign_id: int, rows: _Deliveries, now: datetime
) -> list[tuple[str | None, int]]:
    """Insert the page's deliveries, skipping people who have one already (a re-run page);
    (batch, deliveries created) for each batch."""
    if _is_postgresql(session):
        created = session.execute(
            _INSERT_DELIVERIES,
            {
                "campaign": campaign_id,
                "now": now,
                "queued": DeliveryState.QUEUED.value,
                "contacts": _int_array(rows.contact_ids),
                "messages": _int_array(rows.message_ids),
                "channels": _text_array(rows.channels),
                "states": _text_array(rows.states),
                "batches": _text_array(rows.batches),
            },
        )
        return [(batch, int(n)) for batch, n in created.all()]
    columns = zip(
        rows.contact_ids, rows.message_ids, rows.channels, rows.states, rows.batches, strict=True
    )
    inserted = session.connection().execute(
        sqlite.insert(table_of(Delivery))
        .on_conflict_do_nothing(
            index_elements=["campaign_id", "contact_id"], index_where=Delivery.fallback_of.is_(None)
        )
        .returning(Delivery.batch),
        [
            {
                "campaign_id": campaign_id,
                "contact_id": contact_id,
                "message_id": message_id,
                "channel": channel,
                "state": state,
                "batch": batch,
                "attempts": 0,
                "queued_at": now if state == DeliveryState.QUEUED.value else None,
                "created_at": now,
                "updated_at": now,
            }
            for contact_id, message_id, channel, state, batch in columns
        ],
    )
    counts: dict[str | None, int] = {}
    for (batch,) in inserted.all():
        counts[batch] = counts.get(batch, 0) + 1
    return list(counts.items())


@dataclass
class Prepared:
    """A page read, planned and rendered, not written yet (see :func:`write_page`)."""

    after: int
    page_size: int
    now: datetime
    contacts: list[tuple[int, str | None]] = field(default_factory=list)  # id, own channel
    planned: list[tuple[int, str, bool]] = field(default_factory=list)
    rendered: Rendered = field(default_factory=list)
    error: TemplateError | None = None

    @property
    def full(self) -> bool:
        return len(self.contacts) == self.page_size


def prepare_page(session: Session, campaign: Campaign, after: int, page_size: int) -> Prepared:
    """Read the page of the audience after ``after``, plan and render it. Writes nothing."""
    version = session.get_one(TemplateVersion, campaign.template_version_id)
    community_ids = communities.expand_ids(
        session, campaign.audience["communities"], descendants=campaign.audience["descendants"]
    )
    audience = eligible_contacts(campaign, community_ids, after, page_size)
    hotlines = campaigns.local_hotlines(campaign, version, get_settings().hotlines)
    if hotlines:
        audience = audience.add_columns(Contact.country)
    rows = session.execute(audience).all()
    prepared = Prepared(after=after, page_size=page_size, now=utcnow())
    prepared.contacts = [(row[0], row[4]) for row in rows]
    prepared.planned, wanted = _plan(campaign, version, rows, prepared.now, hotlines)
    try:
        prepared.rendered = _render(version.bodies(), wanted)
    except TemplateError as exc:
        prepared.error = exc
    return prepared


def write_page(session: Session, campaign: Campaign, prepared: Prepared, batch_size: int) -> Page:
    """Store a prepared page: bodies, deliveries in send batches, and the cursor, all in the
    caller's transaction. ``campaign`` is locked and still at ``prepared.after``."""
    page = Page(priority=campaign.priority)
    if not prepared.contacts:
        campaigns.move(
            session, campaign.id, CampaignState.SENDING, only_from=[CampaignState.FANNING_OUT]
        )
        campaigns.complete_if_done(session, campaign.id)
        page.done = True
        return page
    if prepared.error is not None:
        # Never an empty or broken message: stop and say why; an operator decides.
        campaigns.stop(
            session, campaign.id, error=f"a message could not be rendered: {prepared.error}"
        )
        page.done = True
        return page

    unapproved = campaigns.check_fanout(session, campaign, len(prepared.contacts))
    if unapproved:
        # The two-person rule, checked again where the messages are made: an audience that
        # grew after its approval (or past the threshold) is not sent without a new one.
        campaigns.stop(session, campaign.id, error=f"{campaigns.AWAITING_APPROVAL}: {unapproved}")
        page.done = True
        return page

    message_ids = _message_ids(session, campaign.id, prepared.rendered)
    deliveries = _Deliveries()
    token = new_batch_token()
    in_batch = 0
    campaign_channel = campaign.channel
    for (contact_id, digest, quiet), (_id, channel) in zip(
        prepared.planned, prepared.contacts, strict=True
    ):
        if quiet:
            state, batch = DeliveryState.PENDING.value, None
        else:
            if in_batch == batch_size:
                token, in_batch = new_batch_token(), 0
            state, batch = DeliveryState.QUEUED.value, token
            in_batch += 1
        deliveries.contact_ids.append(contact_id)
        deliveries.message_ids.append(message_ids[digest])
        deliveries.channels.append(delivery_channel(campaign_channel, channel))
        deliveries.states.append(state)
        deliveries.batches.append(batch)
    created = _store_deliveries(session, campaign.id, deliveries, prepared.now)
    page.created = sum(n for _, n in created)
    page.batches = sorted(b for b, _ in created if b is not None)
    campaign.fanout_cursor = prepared.contacts[-1][0]
    campaign.recipients += page.created
    session.flush()
    if not prepared.full:
        campaigns.move(
            session, campaign.id, CampaignState.SENDING, only_from=[CampaignState.FANNING_OUT]
        )
        page.done = True
    return page


def _locked_campaign(session: Session, campaign_id: int) -> Campaign | None:
    """The campaign, locked, if it is fanning out."""
    campaign = session.scalar(
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if campaign is None or campaign.state != CampaignState.FANNING_OUT:
        return None
    return campaign


def fanout_page(session: Session, campaign_id: int, *, page_size: int, batch_size: int) -> Page:
    """Create the deliveries for the next page of the audience. The caller commits."""
    campaign = _locked_campaign(session, campaign_id)
    if campaign is None:
        return Page(done=True)
    prepared = prepare_page(session, campaign, campaign.fanout_cursor, page_size)
    return write_page(session, campaign, prepared, batch_size)


def fan_out(
    open_session: Callable[[], AbstractContextManager[Session]],
    campaign_id: int,
    *,
    page_size: int,
    batch_size: int,
    each: Callable[[Session, Page], object],
) -> int:
    """Fan a campaign out page by page, each page in a transaction of its own that commits
    when ``each(session, page)`` returns; the number of deliveries created.

    On PostgreSQL the next page is read, planned and rendered in a second thread (with its
    own connection, reading only) while this one writes the current page, so the Python
    work and the database's overlap. A page prepared from a cursor that has moved since
    (another fan-out of the campaign got there first) is prepared again.
    """
    with open_session() as session:
        pipelined = _is_postgresql(session)
    created = 0
    if not pipelined:
        while True:
            with open_session() as session:
                page = fanout_page(session, campaign_id, page_size=page_size, batch_size=batch_size)
                each(session, page)
            created += page.created
            if page.done:
                return created

    def prepare(after: int) -> Prepared | None:
        with open_session() as session:
            campaign = session.get(Campaign, campaign_id)
            return None if campaign is None else prepare_page(session, campaign, after, page_size)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fanout-prepare") as pool:
        ahead: Future[Prepared | None] | None = None
        while True:
            with open_session() as session:
                campaign = _locked_campaign(session, campaign_id)
                if campaign is None:
                    page = Page(done=True)
                else:
                    prepared = ahead.result() if ahead is not None else None
                    if prepared is None or prepared.after != campaign.fanout_cursor:
                        prepared = prepare_page(
                            session, campaign, campaign.fanout_cursor, page_size
                        )
                    ahead = None
                    if prepared.full and prepared.error is None:
                        ahead = pool.submit(prepare, prepared.contacts[-1][0])
                    page = write_page(session, campaign, prepared, batch_size)
                each(session, page)
            created += page.created
            if page.done:
                return created
