"""/api/v1/queue, /api/v1/stats and /api/v1/workers: what operators watch."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.orm import Session

from broadcaster import monitoring
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
    sent_per_minute: list[int]


class WorkerOut(BaseModel):
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    seen_at: datetime
    tasks: int


class WorkersOut(BaseModel):
    alive: int | None
    workers: list[WorkerOut]
    error: str | None


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
    """Queues, deliveries by state and priority, failures by error code, stuck sends, and
    deliveries sent in each of the last 60 minutes (oldest first)."""
    by_priority: dict[str, dict[str, int]] = {}
    for state, priority, n in stats.by_state_and_priority(session):
        by_priority.setdefault(priority, {})[state] = n
    total, stuck = stats.stuck_sending(session, older_than=rt.settings.sending_timeout)
    return StatsOut(
        queue=queue_snapshot(session, rt.settings.effective_redis_url),
        by_priority=by_priority,
        failures=[FailureOut(**vars(f)) for f in stats.failures(session)],
        stuck_sending=total,
        sent_per_minute=monitoring.sent_per_minute(session),
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


@router.get("/workers")
def workers(_caller: Operator, rt: Rt) -> WorkersOut:
    """Worker processes alive: those whose heartbeat (hostname, pid, queues, concurrency,
    start time, tasks taken) came within the last three RISKCAST_HEARTBEAT_INTERVALs.
    ``alive`` is null when Redis cannot be read."""
    seen = monitoring.workers_alive(rt.settings.effective_redis_url)
    return WorkersOut(
        alive=seen.count,
        workers=[WorkerOut(**{**vars(w), "queues": list(w.queues)}) for w in seen.workers],
        error=seen.error,
    )
