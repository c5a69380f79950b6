"""What operators watch: queue depths in Redis, deliveries by state, failures by error code
(deliveries in doubt are :mod:`broadcaster.deliveries.in_doubt`'s). Plain functions over a session, shared by the API, the dashboard,
``/metrics`` and ``riskcast queue``.

The broker's queues are Redis lists named after the queue (``urgent``, ``bulk``,
``control``), so their depth is an ``LLEN``. Without a Redis URL (the in-process
``riskcast serve``) depths are unknown, not zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster.models import Campaign, Delivery, DeliveryState

log = logging.getLogger(__name__)

QUEUES = ("urgent", "bulk", "control")
FAILED_STATES = (DeliveryState.FAILED.value, DeliveryState.UNDELIVERED.value)


@dataclass(frozen=True)
class QueueDepths:
    depths: dict[str, int | None]
    error: str | None = None


def queue_depths(redis_url: str | None) -> QueueDepths:
    if not redis_url:
        return QueueDepths(
            dict.fromkeys(QUEUES), "no Redis configured (RISKCAST_REDIS_URL or a redis broker)"
        )
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return QueueDepths({q: int(client.llen(q)) for q in QUEUES})
    except redis.RedisError as exc:
        log.warning("queue depth unavailable: %s", exc.__class__.__name__)
        return QueueDepths(dict.fromkeys(QUEUES), f"Redis unavailable: {exc.__class__.__name__}")
    finally:
        client.close()


def deliveries_by_state(session: Session, campaign_id: int | None = None) -> dict[str, int]:
    counts = {s.value: 0 for s in DeliveryState}
    stmt = select(Delivery.state, func.count()).group_by(Delivery.state)
    if campaign_id is not None:
        stmt = stmt.where(Delivery.campaign_id == campaign_id)
    for state, n in session.execute(stmt):
        counts[state] = n
    return counts


def by_state_and_priority(session: Session) -> list[tuple[str, str, int]]:
    """(delivery state, campaign priority, count) over every delivery."""
    rows = session.execute(
        select(Delivery.state, Campaign.priority, func.count())
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .group_by(Delivery.state, Campaign.priority)
    )
    return [(state, priority, n) for state, priority, n in rows]


@dataclass(frozen=True)
class FailureGroup:
    error_code: int | None
    reason: str | None
    message: str | None
    count: int


def failures(session: Session, campaign_id: int | None = None) -> list[FailureGroup]:
    """Failed and undelivered deliveries grouped by provider error code (and our reason),
    with the provider's explanation as the workers recorded it on the delivery."""
    stmt = (
        select(
            Delivery.error_code,
            Delivery.reason,
            func.max(Delivery.error_message),
            func.count(),
        )
        .where(Delivery.state.in_(FAILED_STATES))
        .group_by(Delivery.error_code, Delivery.reason)
        .order_by(func.count().desc())
    )
    if campaign_id is not None:
        stmt = stmt.where(Delivery.campaign_id == campaign_id)
    return [
        FailureGroup(code, reason, message, n) for code, reason, message, n in session.execute(stmt)
    ]


def campaigns_by_state(session: Session) -> dict[str, int]:
    """How many campaigns are in each state (states with none are absent)."""
    rows = session.execute(select(Campaign.state, func.count()).group_by(Campaign.state)).all()
    return {str(state): int(n) for state, n in rows}
