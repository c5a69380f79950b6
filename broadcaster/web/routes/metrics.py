"""``/metrics`` for Prometheus: what the database and Redis can tell at scrape time.

Gauges, read when Prometheus scrapes (one grouped query each):

- ``riskcast_deliveries{state, priority}``: deliveries by state and campaign priority;
- ``riskcast_campaigns{state}``: campaigns by state;
- ``riskcast_queue_depth{queue}``: messages waiting in each broker queue (Redis ``LLEN``);
- ``riskcast_delivery_errors{error_code}``: failed and undelivered deliveries by the
  provider's error code, as the workers recorded it;
- ``riskcast_in_doubt`` and ``riskcast_in_doubt_oldest_seconds``: deliveries in doubt
  (``sending`` with no provider SID past the in-doubt age: the provider may have them, and
  the reconciler is asking its read API) and the oldest one's age;
- ``riskcast_workers_alive``: worker processes whose heartbeat has not expired
  (:mod:`broadcaster.monitoring.service`); absent when Redis cannot be read.

Send latency, provider errors as they happen and rate-limiter waits happen in the worker
processes, which this API process cannot observe; they belong in the workers' own exporter
(Flower turns Celery's task events on when it starts, and shows the workers and tasks
meanwhile; ``RISKCAST_TASK_EVENTS=1`` keeps them on from the start).

Scraping needs an operator's or admin's API token (``authorization`` in the scrape config).
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from broadcaster.deliveries import in_doubt
from broadcaster.models import CampaignState, DeliveryState, Priority
from broadcaster.monitoring import service as monitoring
from broadcaster.monitoring import stats
from broadcaster.runtime import Runtime
from broadcaster.web.common import ERRORS
from broadcaster.web.deps import Db, Operator, Rt

metrics_router = APIRouter(tags=["metrics"], responses=ERRORS)


class DatabaseCollector(Collector):
    """Reads the gauges from one session when the registry is collected."""

    def __init__(self, session: Session, runtime: Runtime) -> None:
        self.session = session
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        deliveries = GaugeMetricFamily(
            "riskcast_deliveries",
            "Deliveries by state and campaign priority.",
            labels=["state", "priority"],
        )
        seen: dict[tuple[str, str], int] = {
            (s.value, p.value): 0 for s in DeliveryState for p in Priority
        }
        for state, priority, n in stats.by_state_and_priority(self.session):
            seen[(state, priority)] = n
        for (state, priority), n in sorted(seen.items()):
            deliveries.add_metric([str(state), str(priority)], n)
        yield deliveries

        campaigns = GaugeMetricFamily("riskcast_campaigns", "Campaigns by state.", labels=["state"])
        counts: dict[str, int] = {s.value: 0 for s in CampaignState}
        counts.update(stats.campaigns_by_state(self.session))
        for state, n in sorted(counts.items()):
            campaigns.add_metric([state], n)
        yield campaigns

        depth = GaugeMetricFamily(
            "riskcast_queue_depth", "Messages waiting in each broker queue.", labels=["queue"]
        )
        depths = stats.queue_depths(self.runtime.settings.effective_redis_url).depths
        for queue, waiting in depths.items():
            if waiting is not None:
                depth.add_metric([queue], waiting)
        yield depth

        errors = GaugeMetricFamily(
            "riskcast_delivery_errors",
            "Failed and undelivered deliveries by provider error code ('none' without one).",
            labels=["error_code"],
        )
        by_code: dict[str, int] = {}
        for group in stats.failures(self.session):
            code = str(group.error_code) if group.error_code is not None else "none"
            by_code[code] = by_code.get(code, 0) + group.count
        for code, n in sorted(by_code.items()):
            errors.add_metric([code], n)
        yield errors

        doubt = in_doubt.summary(self.session, self.runtime.settings.in_doubt_after, limit=0)
        yield GaugeMetricFamily(
            "riskcast_in_doubt",
            "Deliveries in doubt: sending with no provider SID past the in-doubt age, "
            "waiting for the provider's read API (never resent blindly).",
            value=doubt.count,
        )
        yield GaugeMetricFamily(
            "riskcast_in_doubt_oldest_seconds",
            "Age of the oldest delivery in doubt (0 when there is none).",
            value=doubt.oldest_seconds or 0.0,
        )

        alive = monitoring.workers_alive(self.runtime.settings.effective_redis_url).count
        if alive is not None:
            yield GaugeMetricFamily(
                "riskcast_workers_alive",
                "Worker processes whose heartbeat has not expired.",
                value=alive,
            )


def render(session: Session, runtime: Runtime) -> bytes:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(session, runtime))
    return generate_latest(registry)


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(_caller: Operator, session: Db, rt: Rt) -> Response:
    """Prometheus text format."""
    return Response(render(session, rt), media_type=CONTENT_TYPE_LATEST)
