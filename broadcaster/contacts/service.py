"""Contacts: add or update a person by number, their memberships, opt-out and opt-in.

A contact's ``country`` always comes from the number itself (``+66...`` is ``TH``), so a
Lao worker with a Thai SIM is a Thai contact in a Lao community: a cross-border contact,
selected by an audience's country filter. The ``country`` given when adding a contact is
the region a number typed *without* a country code was written in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.audit import service as audit
from broadcaster.audit.service import Actor
from broadcaster.communities.service import check_timezone, get_by_slug
from broadcaster.db import utcnow
from broadcaster.errors import InvalidInput, NotFound, TooMany
from broadcaster.models import AuditEvent, ConsentSource, Contact, ContactStatus, Membership
from broadcaster.phones import BULLET, PhoneError, country_of, normalize_phone
from messages import LanguageError, normalize_language


def parse_region(value: str, field: str = "country") -> str:
    """A two-letter region code ("la" -> "LA"), or InvalidInput naming ``field``."""
    code = value.strip().upper()
    if len(code) != 2 or code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(
            f"{value!r} is not a known two-letter country code (e.g. LA, TH)", field=field
        )
    return code


def find_by_phone(session: Session, phone: str, region: str, actor: Actor) -> Contact:
    """The contact with this number, in ``actor``'s areas (else NotFound, as if absent)."""
    try:
        e164 = normalize_phone(phone, region)
    except PhoneError as exc:
        raise InvalidInput(str(exc), field="phone") from None
    contact = session.scalar(
        select(Contact).where(Contact.phone == e164, scope.contact_clause(actor))
    )
    if contact is None:
        raise NotFound("no contact with that number")
    return contact


# The channels a person can prefer (used by campaigns on the ``preferred`` channel).
CONTACT_CHANNELS = ("sms", "whatsapp")


def check_target(session: Session, actor: Actor, communities: Iterable[str]) -> None:
    """Forbidden unless ``actor`` may put a contact in these communities: all in their
    areas, and at least one when they work over areas (a contact in no community would be
    outside every area)."""
    slugs = list(communities)
    if not slugs and not (actor.is_admin or actor.national):
        raise InvalidInput("name a community in your areas", field="communities")
    scope.check_communities(session, actor, [get_by_slug(session, s).id for s in slugs])


def _checked(
    language: str | None, channel: str | None, timezone: str | None
) -> tuple[str | None, str | None, str | None]:
    """A contact's language (normalised), channel and time zone, each checked if given."""
    if language is not None:
        try:
            language = normalize_language(language)
        except LanguageError as exc:
            raise InvalidInput(str(exc), field="language") from None
    if channel is not None and channel not in CONTACT_CHANNELS:
        raise InvalidInput(f"{channel!r} is not one of sms, whatsapp", field="channel")
    if timezone is not None:
        timezone = check_timezone(timezone)
    return language, channel, timezone


def add_contact(
    session: Session,
    phone: str,
    *,
    region: str,
    name: str | None = None,
    language: str | None = None,
    communities: Iterable[str] = (),
    consent_source: str = ConsentSource.OFFICIAL.value,
    country: str | None = None,
    channel: str | None = None,
    timezone: str | None = None,
) -> tuple[Contact, bool]:
    """Add a contact, or update the one with that number. Returns (contact, created).

    ``country`` (two letters) is where a number typed without a country code comes from;
    it defaults to ``region``. ``timezone`` is the person's own IANA zone (quiet hours and
    local-time sends go by it, else by their first community's). The stored country is
    derived from the number. An opted-out
    or blocked contact stays so: adding them again never re-subscribes them.
    """
    if country:
        region = parse_region(country)
    try:
        e164 = normalize_phone(phone, region)
    except PhoneError as exc:
        raise InvalidInput(str(exc), field="phone") from None
    language, channel, timezone = _checked(language, channel, timezone)
    community_rows = [get_by_slug(session, slug) for slug in communities]
    contact = session.scalar(select(Contact).where(Contact.phone == e164))
    created = contact is None
    if contact is None:
        contact = Contact(
            phone=e164,
            country=country_of(e164),
            status=ContactStatus.ACTIVE.value,
            consent_source=consent_source,
            consent_at=utcnow(),
        )
        session.add(contact)
    if contact.country is None:
        contact.country = country_of(e164)
    if name is not None:
        contact.name = name
    if language is not None:
        contact.language = language
    if channel is not None:
        contact.channel = channel
    if timezone is not None:
        contact.timezone = timezone
    session.flush()
    for community in community_rows:
        if session.get(Membership, (contact.id, community.id)) is None:
            session.add(Membership(contact_id=contact.id, community_id=community.id))
    session.flush()
    return contact, created


def opt_out(session: Session, contact: Contact, *, source: str) -> bool:
    """Record an opt-out; True when the contact was not opted out before."""
    if contact.status == ContactStatus.OPTED_OUT:
        return False
    contact.status = ContactStatus.OPTED_OUT.value
    contact.opted_out_at = utcnow()
    contact.opted_out_source = source
    session.flush()
    return True


def opt_in(session: Session, contact: Contact, *, source: str) -> bool:
    """Record an opt-in (START); a blocked contact stays blocked."""
    if contact.status != ContactStatus.OPTED_OUT:
        return False
    contact.status = ContactStatus.ACTIVE.value
    contact.consent_source = source
    contact.consent_at = utcnow()
    session.flush()
    return True


# A search answers "is this person a contact?", never "which numbers start with 856 20 5":
# it takes a whole number or a name, so it cannot reveal a number digit by digit. Each is
# audited (without what was searched for) and a person makes at most this many a minute.
SEARCHES_PER_MINUTE = 30
MIN_NAME = 2
MIN_WHOLE_DIGITS = 7


def _whole_number(text: str, region: str) -> str | None:
    """The E.164 number ``text`` is, or None if it holds no digit (a name); InvalidInput for
    part of a number."""
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    if BULLET in text or len(digits) < MIN_WHOLE_DIGITS:
        raise InvalidInput(
            "search by a whole number (any format) or by name: part of a number is not searched",
            field="q",
        )
    try:
        return normalize_phone(text, region, require_mobile=False)
    except PhoneError as exc:
        raise InvalidInput(str(exc), field="q") from None


def search(
    session: Session, actor: Actor, text: str, region: str, *, limit: int, now: datetime
) -> list[Contact]:
    """Contacts with this whole number (any format) or whose name holds ``text``; lowest
    ids first. Audited without ``text``; TooMany past :data:`SEARCHES_PER_MINUTE`."""
    text = text.strip()
    if actor.user_id is not None:
        recent = audit.count_since(
            session,
            "contact.search",
            now - timedelta(minutes=1),
            AuditEvent.user_id == actor.user_id,
        )
        if recent >= SEARCHES_PER_MINUTE:
            raise TooMany(
                f"at most {SEARCHES_PER_MINUTE} contact searches a minute; try again shortly",
                retry_after=60,
            )
    number = _whole_number(text, region)
    if number is not None:
        where = Contact.phone == number
    elif len(text) >= MIN_NAME:
        where = func.lower(Contact.name).contains(text.lower(), autoescape=True)
    else:
        raise InvalidInput(f"give at least {MIN_NAME} letters of a name", field="q")
    rows = list(
        session.scalars(
            select(Contact)
            .where(where, scope.contact_clause(actor))
            .order_by(Contact.id)
            .limit(limit)
        )
    )
    actor.record(
        session,
        "contact.search",
        "contact",
        None,
        by="number" if number is not None else "name",
        found=len(rows),
    )
    return rows
