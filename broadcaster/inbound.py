"""Messages people send: opt-out, opt-in and help keywords; everything else to the inbox."""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster import contacts
from broadcaster.db import utcnow
from broadcaster.models import ConsentSource, Contact, InboundMessage
from broadcaster.phones import PhoneError, normalize_phone


class Keyword(enum.StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


# Twilio's default words plus Lao and Thai equivalents. Matching ignores case and spaces.
KEYWORDS: dict[Keyword, frozenset[str]] = {
    Keyword.STOP: frozenset(
        {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "ຢຸດ", "ເຊົາ", "หยุด", "ยกเลิก"}
    ),
    Keyword.START: frozenset({"start", "yes", "unstop", "ເລີ່ມ", "ເລີ່ມຕົ້ນ", "เริ่ม", "ใช่"}),
    Keyword.HELP: frozenset({"help", "info", "ຊ່ວຍ", "ຊ່ວຍເຫຼືອ", "ช่วย", "ช่วยเหลือ"}),
}


def keyword_of(body: str) -> Keyword | None:
    text = "".join(unicodedata.normalize("NFC", body).split()).casefold()
    for keyword, words in KEYWORDS.items():
        if text in words:
            return keyword
    return None


@dataclass(frozen=True)
class InboundResult:
    keyword: Keyword | None
    contact_id: int | None
    duplicate: bool


def receive(
    session: Session, *, sid: str, from_: str, to: str, body: str, region: str
) -> InboundResult:
    """Store an inbound message once (by provider SID) and act on its keyword."""
    if session.scalar(select(InboundMessage.id).where(InboundMessage.provider_sid == sid)):
        return InboundResult(None, None, duplicate=True)
    try:
        phone = normalize_phone(from_.removeprefix("whatsapp:"), region, require_mobile=False)
    except PhoneError:
        phone = None
    contact = session.scalar(select(Contact).where(Contact.phone == phone)) if phone else None
    keyword = keyword_of(body)
    if contact is not None:
        contact.last_activity_at = utcnow()
        if keyword is Keyword.STOP:
            contacts.opt_out(session, contact, source=ConsentSource.KEYWORD.value)
        elif keyword is Keyword.START:
            contacts.opt_in(session, contact, source=ConsentSource.KEYWORD.value)
    session.add(
        InboundMessage(
            provider_sid=sid,
            contact_id=contact.id if contact else None,
            from_phone=phone or from_,
            to_phone=to,
            body=body,
            keyword=keyword.value if keyword else None,
        )
    )
    session.flush()
    return InboundResult(keyword, contact.id if contact else None, duplicate=False)
