"""/api/v1/queue, /api/v1/stats and /api/v1/workers: what operators watch."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.orm import Session

from broadcaster.areas import scope
from broadcaster.deliveries import in_doubt
from broadcaster.monitoring import service as monitoring
from broadcaster.monitoring import stats
from broadcaster.web.common import ERRORS, phone_for
from broadcaster.web.deps import Db, Operator, Rt

router = APIRouter(prefix="/api/v1", tags=["queue"], responses=ERRORS)


class InDoubtOut(BaseModel):
    """Deliveries in doubt: ``sending`` with no provider SID past the in-doubt age, waiting
    for the provider's read API to say whether it has them (never resent blindly)."""

    count: int
    oldest_seconds: float | None
    last_note: str | None
    last_lookup_at: datetime | None


class InDoubtDeliveryOut(BaseModel):
    id: int
    campaign_id: int
    phone: str | None
    sending_since: datetime
    lookups: int
    looked_up_at: datetime | None
    note: str | None


class QueueOut(BaseModel):
    depths: dict[str, int | None]
    error: str | None
    deliveries: dict[str, int]
    in_doubt: InDoubtOut


class FailureOut(BaseModel):
    error_code: int | None
    reason: str | None
    message: str | None
    count: int


class StatsOut(BaseModel):
    queue: QueueOut
    by_priority: dict[str, dict[str, int]]
    failures: list[FailureOut]
    in_doubt_deliveries: list[InDoubtDeliveryOut]
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


def in_doubt_out(summary: in_doubt.InDoubtSummary) -> InDoubtOut:
    return InDoubtOut(
        count=summary.count,
        oldest_seconds=summary.oldest_seconds,
        last_note=summary.last_note,
        last_lookup_at=summary.last_lookup_at,
    )


def queue_snapshot(
    session: Session, redis_url: str | None, summary: in_doubt.InDoubtSummary
) -> QueueOut:
    depths = stats.queue_depths(redis_url)
    return QueueOut(
        depths=depths.depths,
        error=depths.error,
        deliveries=stats.deliveries_by_state(session),
        in_doubt=in_doubt_out(summary),
    )


@router.get("/queue")
def queue(_caller: Operator, session: Db, rt: Rt) -> QueueOut:
    """Per-queue depth in Redis (null when unknown), every delivery counted by state, and
    the deliveries in doubt (how many, the oldest's age, what the last lookup said)."""
    summary = in_doubt.summary(session, rt.settings.in_doubt_after, limit=0)
    return queue_snapshot(session, rt.settings.effective_redis_url, summary)


@router.get("/stats")
def stats_view(caller: Operator, session: Db, rt: Rt) -> StatsOut:
    """Queues, deliveries by state and priority, failures by error code, the oldest
    deliveries in doubt with what their last lookup said, and deliveries sent in each of
    the last 60 minutes (oldest first)."""
    by_priority: dict[str, dict[str, int]] = {}
    for state, priority, n in stats.by_state_and_priority(session):
        by_priority.setdefault(priority, {})[state] = n
    # Counts are the fleet's; the deliveries listed are of campaigns in the caller's areas.
    summary = in_doubt.summary(
        session, rt.settings.in_doubt_after, campaigns=scope.campaign_clause(caller)
    )
    return StatsOut(
        queue=queue_snapshot(session, rt.settings.effective_redis_url, summary),
        by_priority=by_priority,
        failures=[FailureOut(**vars(f)) for f in stats.failures(session)],
        sent_per_minute=monitoring.sent_per_minute(session),
        in_doubt_deliveries=[
            InDoubtDeliveryOut(
                id=d.id,
                campaign_id=d.campaign_id,
                phone=phone_for(caller, d.phone),
                sending_since=d.sending_at,
                lookups=d.lookups,
                looked_up_at=d.looked_up_at,
                note=d.note,
            )
            for d in summary.deliveries
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
