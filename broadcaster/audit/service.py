"""The audit log: every action of an official or operator, who, what, when, from where.

One function writes it, :meth:`Actor.record`, whichever door the action came through: the
API, the dashboard and the command line act as the signed-in user.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from broadcaster import spreadsheet
from broadcaster.models import AuditEvent, Role

CSV_COLUMNS = ("id", "at", "actor", "action", "object_type", "object_id", "source", "detail")


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where: what the audit log records. ``user_id`` is None for an
    actor with no account (a failed sign-in, retention)."""

    user_id: int | None
    name: str
    role: str
    source: str | None
    # Whom they work for, and the community paths ("/1/4/") of their areas; None is
    # national: every community (see broadcaster.areas).
    organisation_id: int | None = None
    areas: tuple[str, ...] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def national(self) -> bool:
        return self.areas is None

    def record(
        self,
        session: Session,
        action: str,
        object_type: str | None = None,
        object_id: object = None,
        **detail: Any,
    ) -> AuditEvent:
        """Add an audit row to the caller's transaction (it commits with the action itself)."""
        event = AuditEvent(
            actor=self.name,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            detail=detail,
            source=self.source,
            user_id=self.user_id,
        )
        session.add(event)
        return event


def count_since(session: Session, action: str, since: datetime, *who: ColumnElement[bool]) -> int:
    """How many ``action`` events the log holds since ``since``, of whoever ``who`` selects
    (the log is shared by every process, so a limit counted here holds across them)."""
    stmt = (
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == action, AuditEvent.at > since, *who)
    )
    return session.scalar(stmt) or 0


def events(
    session: Session, *, action: str | None = None, before: int | None = None, limit: int = 100
) -> list[AuditEvent]:
    """The newest events first, optionally of one action and before an id."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if before:
        stmt = stmt.where(AuditEvent.id < before)
    return list(session.scalars(stmt))


def to_csv(rows: list[AuditEvent]) -> str:
    """The events as CSV, every cell safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = spreadsheet.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in rows:
        writer.writerow(
            [
                e.id,
                e.at.isoformat(),
                e.actor,
                e.action,
                e.object_type or "",
                e.object_id or "",
                e.source or "",
                json.dumps(e.detail or {}, ensure_ascii=False, sort_keys=True),
            ]
        )
    return out.getvalue()
