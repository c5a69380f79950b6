"""The inbox: messages people sent (keywords are answered as they arrive; everything waits
here), for officials to read and tag."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.audit.service import Actor
from broadcaster.errors import NotFound
from broadcaster.models import InboundMessage

TAGS = ("question", "rumour", "complaint", "other")


def messages(
    session: Session,
    *,
    tag: str | None = None,
    untagged: bool = False,
    before: int | None = None,
    limit: int = 100,
) -> list[InboundMessage]:
    stmt = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
    if tag:
        stmt = stmt.where(InboundMessage.tag == tag)
    if untagged:
        stmt = stmt.where(InboundMessage.tag.is_(None))
    if before:
        stmt = stmt.where(InboundMessage.id < before)
    return list(session.scalars(stmt))


def set_tag(session: Session, caller: Actor, message_id: int, tag: str | None) -> InboundMessage:
    message = session.get(InboundMessage, message_id)
    if message is None:
        raise NotFound(f"inbound message {message_id} does not exist")
    message.tag = tag
    session.flush()
    caller.record(session, "inbox.tag", "inbound_message", message_id, tag=tag)
    return message
