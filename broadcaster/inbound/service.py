"""Messages people send us: act on their keywords, keep everything in the inbox.

The words and reply texts live in :mod:`messages.keywords` (pure); this module does what
they mean to the database:

- STOP (and its Lao, Thai... words): the contact is opted out, with time and source. A
  number we do not know yet is recorded as opted out too, so importing it later never
  subscribes it (see :func:`broadcaster.contacts.service.add_contact`).
- START: an opted-out contact is active again. A blocked contact stays blocked.
- HELP: answered with the hotline (of the sender's country: ``RISKCAST_HOTLINES``);
  nothing changes.
- JOIN <code>: the community whose slug is the code gains the contact; an unknown number
  becomes a contact (consent source ``keyword``, language from the words used, country
  from the number), an opted-out one is opted in again (joining is asking to receive).
  The English words tell nothing of a language (every reply and poster asks people to
  send them), so a contact who used them and has no language of their own is answered,
  and later sent campaigns, in the community's language.
- LEAVE <code>: the membership goes.

Every message is stored once per provider SID (a repeated webhook changes nothing) with
its keyword; messages without one (and JOIN/LEAVE with an unknown code) are what officials
see in their inbox. Changes are written to the audit log with the sender's masked number.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broadcaster.audit.service import Actor
from broadcaster.contacts import service as contacts
from broadcaster.db import utcnow
from broadcaster.models import (
    Community,
    ConsentSource,
    Contact,
    ContactStatus,
    InboundMessage,
    Membership,
)
from broadcaster.phones import PhoneError, country_of, mask_phone, normalize_phone
from messages.keywords import (
    Keyword,
    Match,
    Reply,
    guess_language,
    parse,
    reply_language,
    telling_language,
)
from messages.keywords import reply_text as _reply_text

log = logging.getLogger(__name__)

WHATSAPP = "whatsapp:"
KEYWORD_SOURCE = ConsentSource.KEYWORD.value


@dataclass(frozen=True)
class InboundResult:
    """What became of one inbound message.

    ``reply`` is the text to answer with (TwiML), or None: a duplicate, or a keyword
    Twilio's Advanced Opt-Out has already answered.
    """

    keyword: Keyword | None
    contact_id: int | None
    duplicate: bool
    reply: str | None = None
    language: str | None = None


@dataclass
class _Sender:
    raw: str
    phone: str | None  # E.164, or None if the address is no phone number (a short code)
    channel: str  # "sms" or "whatsapp"

    @property
    def actor(self) -> str:
        return "phone:" + mask_phone(self.phone or self.raw.removeprefix(WHATSAPP))

    @property
    def source(self) -> str:
        return f"twilio:{self.channel}"

    @property
    def stored(self) -> str:
        if self.phone is None:
            return self.raw
        return WHATSAPP + self.phone if self.channel == "whatsapp" else self.phone


def _sender(from_: str, region: str) -> _Sender:
    channel = "whatsapp" if from_.strip().lower().startswith(WHATSAPP) else "sms"
    try:
        phone: str | None = normalize_phone(from_, region, require_mobile=False)
    except PhoneError:
        phone = None
    return _Sender(raw=from_, phone=phone, channel=channel)


def community_by_code(session: Session, code: str) -> Community | None:
    """The community whose slug is ``code``, ignoring case, then ignoring ``-`` and ``_``
    ("village12" finds "village-12") when that leaves exactly one."""
    code = code.strip().lower()
    exact = session.scalar(select(Community).where(func.lower(Community.slug) == code))
    if exact is not None:
        return exact
    bare = code.replace("-", "").replace("_", "")
    squeezed = func.replace(func.replace(func.lower(Community.slug), "-", ""), "_", "")
    rows = session.scalars(select(Community).where(squeezed == bare).limit(2)).all()
    return rows[0] if len(rows) == 1 else None


def _store(
    session: Session, sid: str, sender: _Sender, to: str, body: str
) -> InboundMessage | None:
    """Insert the message, or None if this SID is stored already (a webhook retried).

    The insert goes first, in a savepoint: the unique SID makes a concurrent duplicate
    wait for the first and then fail here, so its keyword is never acted on twice.
    """
    if session.scalar(select(InboundMessage.id).where(InboundMessage.provider_sid == sid)):
        return None
    # Addresses of other channels ("messenger:...") can be longer than a phone number.
    message = InboundMessage(
        provider_sid=sid, from_phone=sender.stored[:40], to_phone=to[:40], body=body
    )
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        return None
    return message


class _Handler:
    """One inbound message, acted on."""

    def __init__(
        self,
        session: Session,
        sender: _Sender,
        contact: Contact | None,
        match: Match | None,
        body: str,
        hotline: str,
    ) -> None:
        self.session = session
        self.sender = sender
        self.contact = contact
        self.match = match
        self.body = body
        self.hotline = hotline
        self.stored_keyword: Keyword | None = match.keyword if match else None
        self.community: Community | None = None  # the one JOIN or LEAVE named

    @property
    def language(self) -> str:
        """The contact's language, else that of a word which tells one, else the named
        community's, else the message's."""
        word = self.match.language if self.match else None
        return reply_language(
            self.contact.language if self.contact else None,
            telling_language(word),
            self.community.language if self.community else None,
            word,
            guess_language(self.body),
        )

    def text(self, reply: Reply) -> str:
        community = self.community
        return _reply_text(
            reply,
            self.language,
            hotline=self.hotline,
            community=community.name if community else "",
            code=community.slug if community else (self.match.code or "" if self.match else ""),
        )

    def audit(self, action: str, **detail: object) -> None:
        assert self.contact is not None  # noqa: S101 -- every audited action has a contact
        sender = Actor(user_id=None, name=self.sender.actor, role="", source=self.sender.source)
        sender.record(
            self.session,
            action,
            "contact",
            self.contact.id,
            **{"source": KEYWORD_SOURCE, "channel": self.sender.channel, **detail},
        )

    def new_contact(self, *, status: ContactStatus) -> Contact | None:
        """A contact for an unknown sender, or None if the sender is no phone number."""
        phone = self.sender.phone
        if phone is None:
            return None
        try:
            country: str | None = country_of(phone)
        except PhoneError:
            country = None
        now = utcnow()
        language = telling_language(self.match.language if self.match else None)
        contact = Contact(
            phone=phone,
            country=country,
            language=language,
            channel=self.sender.channel,
            status=status.value,
            last_activity_at=now,
        )
        if status is ContactStatus.OPTED_OUT:
            contact.opted_out_at = now
            contact.opted_out_source = KEYWORD_SOURCE
        else:
            contact.consent_source = KEYWORD_SOURCE
            contact.consent_at = now
        self.session.add(contact)
        self.session.flush()
        self.contact = contact
        self.audit("contact.add", created=True, status=contact.status, language=language)
        return contact

    # -- keywords ----------------------------------------------------------------------
    def stop(self) -> Reply:
        if self.contact is None:
            if self.new_contact(status=ContactStatus.OPTED_OUT) is not None:
                self.audit("contact.opt_out")
        elif contacts.opt_out(self.session, self.contact, source=KEYWORD_SOURCE):
            self.audit("contact.opt_out")
        return Reply.STOPPED

    def start(self) -> Reply:
        if self.contact is None:
            return Reply.MISSING_CODE  # nothing to resume: tell them how to join
        if self.contact.status == ContactStatus.BLOCKED:
            return Reply.HELP
        if contacts.opt_in(self.session, self.contact, source=KEYWORD_SOURCE):
            self.audit("contact.opt_in")
        return Reply.STARTED

    def join(self, community: Community) -> Reply:
        if self.contact is None and self.new_contact(status=ContactStatus.ACTIVE) is None:
            return Reply.HELP
        assert self.contact is not None  # noqa: S101 -- made just above
        if self.contact.status == ContactStatus.BLOCKED:
            return Reply.HELP
        if contacts.opt_in(self.session, self.contact, source=KEYWORD_SOURCE):
            self.audit("contact.opt_in")
        if self.session.get(Membership, (self.contact.id, community.id)) is None:
            self.session.add(Membership(contact_id=self.contact.id, community_id=community.id))
            self.session.flush()
            self.audit("membership.join", community=community.slug)
        return Reply.JOINED

    def leave(self, community: Community) -> Reply:
        if self.contact is not None:
            gone = self.session.execute(
                delete(Membership)
                .where(
                    Membership.contact_id == self.contact.id,
                    Membership.community_id == community.id,
                )
                .execution_options(synchronize_session="fetch")
            )
            if gone.rowcount:  # type: ignore[attr-defined]
                self.audit("membership.leave", community=community.slug)
        return Reply.LEFT

    def act(self) -> str:
        match = self.match
        if match is None:
            return ""
        if match.keyword is Keyword.STOP:
            reply = self.stop()
        elif match.keyword is Keyword.START:
            reply = self.start()
        elif match.keyword is Keyword.HELP:
            reply = Reply.HELP
        elif match.code is None:
            reply = Reply.MISSING_CODE
        else:
            community = self.community = community_by_code(self.session, match.code)
            if community is None:
                # A code we do not know: an official may want to help, so it goes to the inbox.
                self.stored_keyword = None
                reply = Reply.UNKNOWN_CODE
            elif match.keyword is Keyword.JOIN:
                reply = self.join(community)
            else:
                reply = self.leave(community)
        return self.text(reply)


def _hotline(sender: _Sender, hotline: str, hotlines: Mapping[str, str] | None) -> str:
    if not hotlines or sender.phone is None:
        return hotline
    try:
        return hotlines.get(country_of(sender.phone), hotline)
    except PhoneError:
        return hotline


def receive(
    session: Session,
    *,
    sid: str,
    from_: str,
    to: str,
    body: str,
    region: str,
    hotline: str,
    hotlines: Mapping[str, str] | None = None,
    opt_out_type: str | None = None,
) -> InboundResult:
    """Store an inbound message once (by provider SID), act on its keyword, say what to reply.

    Replies name ``hotline``, or the one ``hotlines`` lists for the country of the sender's
    number (``Settings.hotlines``).

    ``opt_out_type`` is Twilio's ``OptOutType`` (STOP, START, HELP), sent when a Messaging
    Service's Advanced Opt-Out recognised the message: Twilio has acted and answered, so
    we record the same (even for a word of its list that ours lacks) and stay quiet.
    """
    sender = _sender(from_, region)
    message = _store(session, sid, sender, to, body)
    if message is None:
        log.info("inbound %s from %s is a duplicate; ignored", sid, sender.actor)
        return InboundResult(None, None, duplicate=True)
    match = parse(body)
    twilio_type = (opt_out_type or "").strip().upper()
    answered_by_twilio = twilio_type in {"STOP", "START", "HELP"}
    if answered_by_twilio and (match is None or match.keyword.value.upper() != twilio_type):
        match = Match(Keyword(twilio_type.lower()), guess_language(body))
    contact = (
        session.scalar(select(Contact).where(Contact.phone == sender.phone))
        if sender.phone
        else None
    )
    handler = _Handler(session, sender, contact, match, body, _hotline(sender, hotline, hotlines))
    reply = handler.act() or None
    contact = handler.contact
    if contact is not None:
        contact.last_activity_at = utcnow()
    message.contact_id = contact.id if contact else None
    message.keyword = handler.stored_keyword.value if handler.stored_keyword else None
    session.flush()
    keyword = handler.stored_keyword
    log.info(
        "inbound %s from %s: %s",
        sid,
        sender.actor,
        keyword.value if keyword else "to the inbox",
    )
    return InboundResult(
        keyword=keyword,
        contact_id=contact.id if contact else None,
        duplicate=False,
        reply=None if answered_by_twilio else reply,
        language=handler.language if reply else None,
    )
