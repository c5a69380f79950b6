"""/api/v1/audit: the audit log for admins, as JSON pages or a CSV file."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.api.common import ERRORS, MAX_ID
from broadcaster.api.deps import Admin, Db
from broadcaster.models import AuditEvent

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ERRORS)

CSV_COLUMNS = ("id", "at", "actor", "action", "object_type", "object_id", "source", "detail")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    user_id: int | None
    action: str
    object_type: str | None
    object_id: str | None
    detail: dict[str, Any]
    source: str | None


def events(
    session: Session, *, action: str | None = None, before: int | None = None, limit: int = 100
) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if before:
        stmt = stmt.where(AuditEvent.id < before)
    return list(session.scalars(stmt))


def _out(e: AuditEvent) -> AuditOut:
    return AuditOut(
        id=e.id,
        at=e.at,
        actor=e.actor,
        user_id=e.user_id,
        action=e.action,
        object_type=e.object_type,
        object_id=e.object_id,
        detail=e.detail or {},
        source=e.source,
    )


def to_csv(rows: list[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
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


@router.get("")
def list_audit(
    _caller: Admin,
    session: Db,
    action: str | None = Query(default=None, max_length=64),
    before: int | None = Query(default=None, ge=1, le=MAX_ID, description="an id: older rows"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[AuditOut]:
    return [_out(e) for e in events(session, action=action, before=before, limit=limit)]


@router.get(
    "/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_audit(
    caller: Admin,
    session: Db,
    action: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=100_000, ge=1, le=1_000_000),
) -> Response:
    rows = events(session, action=action, limit=limit)
    caller.record(session, "audit.export", "audit", None, rows=len(rows))
    return Response(
        to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="riskcast-audit.csv"'},
    )
