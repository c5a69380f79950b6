"""The audit log: every action of an official or operator, who, what, when, from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from broadcaster.models import AuditEvent


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str | None = None,
    object_id: object = None,
    detail: dict[str, Any] | None = None,
    source: str | None = None,
    user_id: int | None = None,
) -> AuditEvent:
    """Add an audit row to the caller's transaction (it commits with the action itself)."""
    event = AuditEvent(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        detail=detail or {},
        source=source,
        user_id=user_id,
    )
    session.add(event)
    return event
