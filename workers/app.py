"""The Celery application: the only place Celery is configured.

Queues: ``urgent`` and ``bulk`` carry campaign work (a 200,000-message bulk campaign never
sits in front of an urgent alert); ``control`` carries operational tasks. The ticks do not
queue at all: they run in the scheduler process (:mod:`workers.scheduler`).
Late acks with reject-on-worker-lost put a killed worker's task back; the database, not
the queue, decides whether anything is still to be sent.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from kombu import Exchange, Queue

from broadcaster.config import Settings, get_settings
from workers import heartbeat
from workers.queues import QUEUES


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.broker_url or "memory://"
    transport: dict[str, Any] = {
        # Redis redelivers an unacked message after this; the reconciler covers the rest.
        "visibility_timeout": settings.visibility_timeout,
    }
    if broker.startswith("memory"):
        transport["polling_interval"] = 0.05
    return {
        "broker_url": broker,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "bulk",
        "task_default_exchange": "",
        "task_default_routing_key": "bulk",
        # Every queue on the anonymous exchange: a message goes straight to the list named
        # by its queue, with no binding to look up. Bindings live in Redis, and after a
        # FLUSHALL or a restart a publish through a named exchange would find none and be
        # dropped without a word.
        "task_queues": [Queue(name, Exchange(""), routing_key=name) for name in QUEUES],
        "task_create_missing_queues": False,
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }


celery_app = Celery("riskcast", include=["workers.tasks"])


@celery_app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    # Read the environment when Celery first needs its configuration, not at import, so a
    # bad setting is reported by the CLI as one line naming the variable.
    sender.conf.update(celery_config(get_settings()))


# Every worker process, and the worker thread of `riskcast serve`, reports itself alive.
signals.worker_ready.connect(heartbeat.on_worker_ready, dispatch_uid="riskcast-heartbeat")
signals.worker_shutdown.connect(heartbeat.on_worker_shutdown, dispatch_uid="riskcast-heartbeat")
