"""Contacts: add or update a person by number, their memberships, opt-out and opt-in.

A contact's ``country`` always comes from the number itself (``+66...`` is ``TH``), so a
Lao worker with a Thai SIM is a Thai contact in a Lao community: a cross-border contact,
selected by an audience's country filter. The ``country`` given when adding a contact is
the region a number typed *without* a country code was written in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.communities.service import get_by_slug
from broadcaster.db import utcnow
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import ConsentSource, Contact, ContactStatus, Membership
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


def find_by_phone(session: Session, phone: str, region: str) -> Contact:
    try:
        e164 = normalize_phone(phone, region)
    except PhoneError as exc:
        raise InvalidInput(str(exc), field="phone") from None
    contact = session.scalar(select(Contact).where(Contact.phone == e164))
    if contact is None:
        raise NotFound("no contact with that number")
    return contact


# The channels a person can prefer (used by campaigns on the ``preferred`` channel).
CONTACT_CHANNELS = ("sms", "whatsapp")


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
) -> tuple[Contact, bool]:
    """Add a contact, or update the one with that number. Returns (contact, created).

    ``country`` (two letters) is where a number typed without a country code comes from;
    it defaults to ``region``. The stored country is derived from the number. An opted-out
    or blocked contact stays so: adding them again never re-subscribes them.
    """
    if country:
        region = parse_region(country)
    try:
        e164 = normalize_phone(phone, region)
    except PhoneError as exc:
        raise InvalidInput(str(exc), field="phone") from None
    if language is not None:
        try:
            language = normalize_language(language)
        except LanguageError as exc:
            raise InvalidInput(str(exc), field="language") from None
    if channel is not None and channel not in CONTACT_CHANNELS:
        raise InvalidInput(f"{channel!r} is not one of sms, whatsapp", field="channel")
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


def _pattern(q: str, region: str) -> tuple[str, str] | None:
    """("exact", e164) or ("like", pattern) for a search text; None if it names nothing."""
    text = q.strip()
    if BULLET in text:
        head, _, _ = text.partition(BULLET)
        tail = text.rsplit(BULLET, 1)[1]
        prefix = re.sub(r"\D", "", head)
        suffix = re.sub(r"\D", "", tail)
        if not suffix:
            return None
        return "like", f"+{prefix}%{suffix}" if prefix else f"%{suffix}"
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    if len(digits) <= 6 and not text.startswith("+"):
        return "like", f"%{digits}"
    try:
        return "exact", normalize_phone(text, region, require_mobile=False)
    except PhoneError as exc:
        raise InvalidInput(str(exc), field="q") from None


def search(session: Session, text: str, region: str, *, limit: int) -> list[Contact]:
    """Contacts whose number matches ``text``: a masked number as the service shows it
    (``+856 20 ••• ••34``), its last digits, or a whole number; lowest ids first."""
    found = _pattern(text, region)
    if found is None:
        return []
    kind, value = found
    where = Contact.phone == value if kind == "exact" else Contact.phone.like(value)
    return list(session.scalars(select(Contact).where(where).order_by(Contact.id).limit(limit)))
