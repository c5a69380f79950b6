"""The inbox: messages people sent (keywords are answered as they arrive; everything waits
here), for officials to read and tag."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.audit.service import Actor
from broadcaster.errors import NotFound
from broadcaster.models import Contact, InboundMessage

TAGS = ("question", "rumour", "complaint", "other")


def _in_scope(caller: Actor) -> ColumnElement[bool]:
    if caller.is_admin or caller.national:
        return true()
    return InboundMessage.contact_id.in_(select(Contact.id).where(scope.contact_clause(caller)))


def messages(
    session: Session,
    caller: Actor,
    *,
    tag: str | None = None,
    untagged: bool = False,
    before: int | None = None,
    limit: int = 100,
) -> list[InboundMessage]:
    """The newest messages first, from people in ``caller``'s areas (a national person also
    sees messages from numbers riskcast does not know)."""
    stmt = (
        select(InboundMessage)
        .where(_in_scope(caller))
        .order_by(InboundMessage.id.desc())
        .limit(limit)
    )
    if tag:
        stmt = stmt.where(InboundMessage.tag == tag)
    if untagged:
        stmt = stmt.where(InboundMessage.tag.is_(None))
    if before:
        stmt = stmt.where(InboundMessage.id < before)
    return list(session.scalars(stmt))


def set_tag(session: Session, caller: Actor, message_id: int, tag: str | None) -> InboundMessage:
    message = session.scalar(
        select(InboundMessage).where(InboundMessage.id == message_id, _in_scope(caller))
    )
    if message is None:
        raise NotFound(f"inbound message {message_id} does not exist")
    message.tag = tag
    session.flush()
    caller.record(session, "inbox.tag", "inbound_message", message_id, tag=tag)
    return message
