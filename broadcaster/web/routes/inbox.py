"""/api/v1/inbox: replies people sent (keywords are handled; the rest waits here), and tags."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from broadcaster.inbound import inbox
from broadcaster.models import InboundMessage
from broadcaster.web.common import ERRORS, MAX_ID, Id, phone_for, text_for
from broadcaster.web.deps import Actor, Db, Official

router = APIRouter(prefix="/api/v1/inbox", tags=["inbox"], responses=ERRORS)

Tag = Literal["question", "rumour", "complaint", "other"]  # inbox.TAGS


class InboundOut(BaseModel):
    id: int
    from_phone: str
    body: str
    keyword: str | None
    tag: str | None
    received_at: datetime


class TagIn(BaseModel):
    tag: Tag | None


def out(caller: Actor, m: InboundMessage) -> InboundOut:
    return InboundOut(
        id=m.id,
        from_phone=phone_for(caller, m.from_phone) or "",
        body=text_for(caller, m.body),
        keyword=m.keyword,
        tag=m.tag,
        received_at=m.received_at,
    )


@router.get("")
def list_inbox(
    caller: Official,
    session: Db,
    tag: Tag | None = None,
    untagged: bool = False,
    before: int | None = Query(default=None, ge=1, le=MAX_ID),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[InboundOut]:
    rows = inbox.messages(session, caller, tag=tag, untagged=untagged, before=before, limit=limit)
    return [out(caller, m) for m in rows]


@router.put("/{message_id}/tag")
def tag_message(message_id: Id, body: TagIn, caller: Official, session: Db) -> InboundOut:
    """Tag a reply: question, rumour, complaint or other (null clears it)."""
    return out(caller, inbox.set_tag(session, caller, message_id, body.tag))
