"""/api/v1/audit: the audit log for admins, as JSON pages or a CSV file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel

from broadcaster.audit import service as audit
from broadcaster.models import AuditEvent
from broadcaster.web.common import ERRORS, MAX_ID
from broadcaster.web.deps import Admin, Db

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ERRORS)


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


@router.get("")
def list_audit(
    _caller: Admin,
    session: Db,
    action: str | None = Query(default=None, max_length=64),
    before: int | None = Query(default=None, ge=1, le=MAX_ID, description="an id: older rows"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[AuditOut]:
    return [_out(e) for e in audit.events(session, action=action, before=before, limit=limit)]


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
    rows = audit.events(session, action=action, limit=limit)
    caller.record(session, "audit.export", "audit", None, rows=len(rows))
    return Response(
        audit.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="riskcast-audit.csv"'},
    )
