"""/api/v1/queue and /api/v1/stats: what operators watch."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.orm import Session

from broadcaster.api import stats
from broadcaster.api.common import ERRORS, phone_for
from broadcaster.api.deps import Db, Operator, Rt

router = APIRouter(prefix="/api/v1", tags=["queue"], responses=ERRORS)


class QueueOut(BaseModel):
    depths: dict[str, int | None]
    error: str | None
    deliveries: dict[str, int]


class StuckOut(BaseModel):
    id: int
    campaign_id: int
    phone: str | None
    attempts: int
    sending_since: datetime | None


class FailureOut(BaseModel):
    error_code: int | None
    reason: str | None
    message: str | None
    count: int


class StatsOut(BaseModel):
    queue: QueueOut
    by_priority: dict[str, dict[str, int]]
    failures: list[FailureOut]
    stuck_sending: int
    stuck: list[StuckOut]


def queue_snapshot(session: Session, redis_url: str | None) -> QueueOut:
    depths = stats.queue_depths(redis_url)
    return QueueOut(
        depths=depths.depths, error=depths.error, deliveries=stats.deliveries_by_state(session)
    )


@router.get("/queue")
def queue(_caller: Operator, session: Db, rt: Rt) -> QueueOut:
    """Per-queue depth in Redis (null when unknown) and every delivery counted by state."""
    return queue_snapshot(session, rt.settings.effective_redis_url)


@router.get("/stats")
def stats_view(caller: Operator, session: Db, rt: Rt) -> StatsOut:
    """Queues, deliveries by state and priority, failures by error code, stuck sends."""
    by_priority: dict[str, dict[str, int]] = {}
    for state, priority, n in stats.by_state_and_priority(session):
        by_priority.setdefault(priority, {})[state] = n
    total, stuck = stats.stuck_sending(session, older_than=rt.settings.sending_timeout)
    return StatsOut(
        queue=queue_snapshot(session, rt.settings.effective_redis_url),
        by_priority=by_priority,
        failures=[FailureOut(**vars(f)) for f in stats.failures(session)],
        stuck_sending=total,
        stuck=[
            StuckOut(
                id=s.id,
                campaign_id=s.campaign_id,
                phone=phone_for(caller, s.phone),
                attempts=s.attempts,
                sending_since=s.sending_at,
            )
            for s in stuck
        ],
    )
