"""Worker heartbeats: once a worker is ready, a thread of its main process writes a
:class:`broadcaster.monitoring.service.WorkerBeat` (hostname, pid, queues, concurrency, start time,
tasks taken) every ``RISKCAST_HEARTBEAT_INTERVAL`` seconds, and the worker removes it when it
stops. Connected to Celery's ``worker_ready`` and ``worker_shutdown`` signals in
:mod:`workers.app`, so it covers ``riskcast worker`` and the worker of ``riskcast serve``."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from celery.worker import state as worker_state

from broadcaster.config import get_settings
from broadcaster.db import utcnow
from broadcaster.monitoring.service import MISSED_BEATS, HeartbeatStore, WorkerBeat, heartbeat_store

log = logging.getLogger(__name__)


def tasks_taken() -> int:
    """Tasks this worker process has taken since it started (Celery's own count)."""
    return int(worker_state.all_total_count[0])


class Heartbeat:
    """Writes one worker's beat now and every ``interval`` seconds until :meth:`stop`."""

    def __init__(
        self,
        store: HeartbeatStore,
        *,
        hostname: str,
        queues: tuple[str, ...],
        concurrency: int,
        interval: float,
        pid: int | None = None,
        tasks: Callable[[], int] = tasks_taken,
    ) -> None:
        self.store = store
        self.hostname = hostname
        self.pid = pid if pid is not None else os.getpid()
        self.queues = queues
        self.concurrency = concurrency
        self.interval = interval
        self.tasks = tasks
        self.started_at: datetime = utcnow()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._failing = False

    def beat(self) -> WorkerBeat:
        beat = WorkerBeat(
            hostname=self.hostname,
            pid=self.pid,
            queues=self.queues,
            concurrency=self.concurrency,
            started_at=self.started_at,
            seen_at=utcnow(),
            tasks=self.tasks(),
        )
        self.store.put(beat, ttl=self.interval * MISSED_BEATS)
        return beat

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.beat()
                if self._failing:
                    log.info("worker heartbeat written again")
                self._failing = False
            except Exception as exc:  # a heartbeat never stops the worker
                if not self._failing:
                    log.warning("worker heartbeat not written: %s", exc.__class__.__name__)
                self._failing = True
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            self.store.remove(self.hostname, self.pid)
        except Exception as exc:  # the key expires on its own anyway
            log.warning("worker heartbeat not removed: %s", exc.__class__.__name__)
        finally:
            self.store.close()


_running: dict[str, Heartbeat] = {}
_lock = threading.Lock()


def on_worker_ready(sender: Any, **_: Any) -> None:
    """``worker_ready``: ``sender`` is the worker's consumer."""
    settings = get_settings()
    controller = sender.controller
    queues = tuple(sorted(sender.app.amqp.queues.consume_from))
    heartbeat = Heartbeat(
        heartbeat_store(settings.effective_redis_url),
        hostname=str(sender.hostname),
        queues=queues,
        concurrency=int(controller.concurrency or 0),
        interval=settings.heartbeat_interval,
    )
    with _lock:
        previous = _running.pop(heartbeat.hostname, None)
        _running[heartbeat.hostname] = heartbeat
    if previous is not None:
        previous.stop()
    heartbeat.start()


def on_worker_shutdown(sender: Any, **_: Any) -> None:
    """``worker_shutdown``: ``sender`` is the worker controller."""
    with _lock:
        heartbeat = _running.pop(str(getattr(sender, "hostname", "")), None)
    if heartbeat is not None:
        heartbeat.stop()
