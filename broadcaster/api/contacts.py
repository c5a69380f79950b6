"""/api/v1/contacts: search by masked number or last digits, and add one contact.

Numbers are shown masked to everyone but admins. A search takes what an official sees
(``+856 20 ••• ••34``), the last digits (``34``, ``5534``) or a whole number.
"""

from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from broadcaster import contacts
from broadcaster.api.common import ERRORS, phone_for
from broadcaster.api.deps import Anyone, Caller, Db, Official, Rt
from broadcaster.errors import InvalidInput
from broadcaster.models import Contact
from broadcaster.phones import BULLET, PhoneError, normalize_phone

router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"], responses=ERRORS)


class ContactOut(BaseModel):
    id: int
    phone: str
    name: str | None
    language: str | None
    country: str | None
    channel: str
    status: str


class ContactIn(BaseModel):
    phone: str = Field(min_length=1, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, max_length=16)
    communities: list[str] = Field(default_factory=list, max_length=100)
    channel: Literal["sms", "whatsapp"] | None = None


def _out(caller: Caller, c: Contact) -> ContactOut:
    return ContactOut(
        id=c.id,
        phone=phone_for(caller, c.phone) or "",
        name=c.name,
        language=c.language,
        country=c.country,
        channel=c.channel,
        status=c.status,
    )


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


@router.get("")
def search_contacts(
    caller: Anyone,
    session: Db,
    rt: Rt,
    q: str = Query(
        min_length=1, max_length=40, description="masked number, last digits or a number"
    ),
    limit: int = Query(default=50, ge=1, le=200),
) -> list[ContactOut]:
    found = _pattern(q, rt.settings.default_region)
    if found is None:
        return []
    kind, value = found
    where = Contact.phone == value if kind == "exact" else Contact.phone.like(value)
    rows = session.scalars(select(Contact).where(where).order_by(Contact.id).limit(limit))
    return [_out(caller, c) for c in rows]


@router.post("", status_code=201)
def add_contact(body: ContactIn, caller: Official, session: Db, rt: Rt) -> ContactOut:
    contact, created = contacts.add_contact(
        session,
        body.phone,
        region=rt.settings.default_region,
        name=body.name,
        language=body.language,
        communities=body.communities,
        channel=body.channel,
    )
    caller.record(session, "contact.add", "contact", contact.id, created=created)
    return _out(caller, contact)
